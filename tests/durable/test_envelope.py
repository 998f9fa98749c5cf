"""Canonical envelopes, their hashes, and the content-free paths where two of them differ."""

from __future__ import annotations

from typing import Any

import pytest

from lash.durable.envelope import canonical_json, diverging_paths, envelope_hash
from lash.durable.outcome import dump_outcome, load_outcome
from lash.types import LlmResponse, ProviderFailure, TextPart, ToolCallOutput


def test_canonical_json_sorts_keys_so_equal_envelopes_hash_the_same() -> None:
    a = canonical_json({"b": 1, "a": [1, 2]})
    b = canonical_json({"a": [1, 2], "b": 1})
    assert a == b == '{"a":[1,2],"b":1}'
    assert envelope_hash(a) == envelope_hash(b) != envelope_hash(canonical_json({"a": [2, 1]}))


@pytest.mark.parametrize(
    ("recorded", "fresh", "paths"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}, ["$.a.b[1]"]),
        ({"a": [1]}, {"a": [1, 2]}, ["$.a[1]"]),
        ({"a": 1}, {"b": 1}, ["$.a", "$.b"]),
        ({"a": 1}, {"a": "1"}, ["$.a"]),
        ({"a": 1}, {"a": True}, ["$.a"]),
        ({"odd key": 1}, {"odd key": 2}, ["$['odd key']"]),
    ],
)
def test_diverging_paths_name_where_two_envelopes_differ(
    recorded: Any, fresh: Any, paths: list[str]
) -> None:
    assert diverging_paths(recorded, fresh) == paths


def test_diverging_paths_stop_at_the_limit() -> None:
    recorded = {f"k{i}": i for i in range(10)}
    fresh = {f"k{i}": -i - 1 for i in range(10)}
    assert diverging_paths(recorded, fresh, limit=3) == ["$.k0", "$.k1", "$.k2"]


def test_outcomes_round_trip_through_plain_json_with_their_types() -> None:
    tp = LlmResponse | ProviderFailure | None
    for value in (
        LlmResponse(parts=(TextPart(text="x"),)),
        ProviderFailure(kind="http", message="m"),
        None,
    ):
        assert load_outcome(dump_outcome(value, tp), tp) == value
    output = ToolCallOutput(status="success", payload={"n": 1})
    assert load_outcome(dump_outcome(output, ToolCallOutput), ToolCallOutput) == output


def test_a_value_outside_the_declared_union_is_refused() -> None:
    with pytest.raises(TypeError, match="not a member"):
        dump_outcome("text", LlmResponse | ProviderFailure)
