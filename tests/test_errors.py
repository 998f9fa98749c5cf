"""The error model against the seed (`spec/seed-error.rs`) and DESIGN.md §5.

Callers match codes, never text, so every wire string is pinned here exactly: a renamed or
mistyped string would silently break hosts that persist or compare codes.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from lash.errors import (
    DurableStoreFacet,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
    StoreErrorKind,
)

# The seed's variants and their exact strings (RuntimeErrorCode::as_str), by member name.
SEED_CODES: dict[str, str] = {
    "MISSING_EXECUTION_SCOPE_ID": "missing_execution_scope_id",
    "EXECUTION_SCOPE_TURN_ID_MISMATCH": "execution_scope_turn_id_mismatch",
    "SESSION_EXECUTION_BUSY": "session_execution_busy",
    "SESSION_EXECUTION_LEASE_LOST": "session_execution_lease_lost",
    "MISSING_PROCESS_EXECUTION_ID": "missing_process_execution_id",
    "STORE_COMMIT_FAILED": "store_commit_failed",
    "PLUGIN_SESSION_MANAGER": "plugin_session_manager",
    "PLUGIN_FINALIZE_TURN": "plugin_finalize_turn",
    "PLUGIN_CHECKPOINT": "plugin_checkpoint",
    "PLUGIN_PREPARE_TURN": "plugin_prepare_turn",
    "CONTEXT_PREPARE_TURN": "context_prepare_turn",
    "PROTOCOL_TURN_EXTENSION": "protocol_turn_extension",
    "PROTOCOL_BEFORE_LLM_CALL": "protocol_before_llm_call",
    "TURN_STREAM_JOIN": "turn_stream_join",
    "EMPTY_AGENT_FRAME_RUN": "empty_agent_frame_run",
    "DURABLE_EFFECT_LIVE_PROTOCOL_EXTENSION": "durable_effect_live_protocol_extension",
    "DURABLE_EFFECT_LIVE_PLUGIN_INPUT": "durable_effect_live_plugin_input",
}

# DurableStoreFacet -> (full code string, the label used in the constructor's message).
FACETS: dict[DurableStoreFacet, tuple[str, str]] = {
    DurableStoreFacet.ATTACHMENT_STORE: (
        "durable_store_required:attachment_store",
        "attachment store",
    ),
    DurableStoreFacet.PROCESS_ENV_STORE: (
        "durable_store_required:process_env_store",
        "process env store",
    ),
    DurableStoreFacet.SESSION_STORE: ("durable_store_required:session_store", "session store"),
    DurableStoreFacet.PROCESS_REGISTRY: (
        "durable_store_required:process_registry",
        "process registry",
    ),
    DurableStoreFacet.TRIGGER_STORE: ("durable_store_required:trigger_store", "trigger store"),
}

ALL_KNOWN_STRINGS = [*SEED_CODES.values(), *(code for code, _ in FACETS.values())]

# core-runtime.md §4: the only codes no retry can fix.
TERMINAL_STRINGS = {
    "missing_execution_scope_id",
    "execution_scope_turn_id_mismatch",
    "missing_process_execution_id",
    "durable_effect_live_protocol_extension",
    "durable_effect_live_plugin_input",
    *(code for code, _ in FACETS.values()),
}
RETRYABLE_STRINGS = {"session_execution_busy", "session_execution_lease_lost"}


def _member(name: str) -> RuntimeErrorCode:
    code = getattr(RuntimeErrorCode, name)
    assert isinstance(code, RuntimeErrorCode)
    return code


# --- codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "wire"), sorted(SEED_CODES.items()))
def test_every_seed_variant_has_its_exact_string(name: str, wire: str) -> None:
    code = _member(name)
    assert str(code) == wire
    assert code.value == wire
    assert code.is_known
    assert code.facet is None


@pytest.mark.parametrize("facet", list(DurableStoreFacet))
def test_durable_store_required_has_one_code_per_facet(facet: DurableStoreFacet) -> None:
    wire, _ = FACETS[facet]
    code = RuntimeErrorCode.durable_store_required(facet)
    assert str(code) == wire
    assert facet.code == wire
    assert code.facet is facet
    assert code.is_known


def test_facet_enum_matches_the_seed() -> None:
    assert {f.name for f in DurableStoreFacet} == {
        "ATTACHMENT_STORE",
        "PROCESS_ENV_STORE",
        "SESSION_STORE",
        "PROCESS_REGISTRY",
        "TRIGGER_STORE",
    }
    assert {f.label for f in DurableStoreFacet} == {label for _, label in FACETS.values()}


def test_known_lists_exactly_the_seed_codes() -> None:
    assert sorted(str(c) for c in RuntimeErrorCode.known()) == sorted(ALL_KNOWN_STRINGS)
    assert len(set(RuntimeErrorCode.known())) == len(ALL_KNOWN_STRINGS)


@pytest.mark.parametrize("wire", ALL_KNOWN_STRINGS)
def test_parse_returns_the_named_code_and_round_trips(wire: str) -> None:
    code = RuntimeErrorCode.parse(wire)
    assert str(code) == wire
    assert RuntimeErrorCode.parse(str(code)) == code
    assert code.is_known
    if wire.startswith("durable_store_required:"):
        facet = DurableStoreFacet(wire.split(":", 1)[1])
        assert code is RuntimeErrorCode.durable_store_required(facet)
        assert code.facet is facet
    else:
        assert code is _member(wire.upper())


def test_parse_is_idempotent_on_codes() -> None:
    code = RuntimeErrorCode.SESSION_EXECUTION_BUSY
    assert RuntimeErrorCode.parse(code) is code


@pytest.mark.parametrize(
    "wire",
    [
        "plugin_defined_abort",
        "turn_control_unknown_or_revoked",
        "durable_store_required:mystery_store",  # looks like a facet code, is not one
        "STORE_COMMIT_FAILED",  # case matters: wire strings are snake_case
        "",
    ],
)
def test_unknown_strings_round_trip_unchanged(wire: str) -> None:
    code = RuntimeErrorCode.parse(wire)
    assert str(code) == wire
    assert not code.is_known
    assert code.facet is None
    assert code not in RuntimeErrorCode.known()
    assert RuntimeErrorCode.parse(str(code)) == code


def test_codes_compare_and_hash_by_value() -> None:
    parsed = RuntimeErrorCode.parse("store_commit_failed")
    fresh = RuntimeErrorCode("store_commit_failed")
    assert fresh == RuntimeErrorCode.STORE_COMMIT_FAILED == parsed
    assert hash(fresh) == hash(RuntimeErrorCode.STORE_COMMIT_FAILED)
    assert len({fresh, parsed, RuntimeErrorCode.STORE_COMMIT_FAILED}) == 1
    other_a = RuntimeErrorCode.parse("plugin_defined_abort")
    other_b = RuntimeErrorCode("plugin_defined_abort")
    assert other_a == other_b and hash(other_a) == hash(other_b)
    assert other_a != RuntimeErrorCode.parse("plugin_defined_abort_2")
    assert RuntimeErrorCode.STORE_COMMIT_FAILED != RuntimeErrorCode.SESSION_EXECUTION_BUSY
    # a code is not its string: callers match codes, never text
    assert RuntimeErrorCode.STORE_COMMIT_FAILED != "store_commit_failed"
    by_code = {RuntimeErrorCode.STORE_COMMIT_FAILED: "x"}
    assert by_code[RuntimeErrorCode.parse("store_commit_failed")] == "x"


def test_code_pickles_to_an_equal_code() -> None:
    for code in [*RuntimeErrorCode.known(), RuntimeErrorCode.parse("plugin_defined_abort")]:
        copy = pickle.loads(pickle.dumps(code))
        assert copy == code
        assert str(copy) == str(code)
    # named codes come back as the canonical instance
    busy = pickle.loads(pickle.dumps(RuntimeErrorCode.SESSION_EXECUTION_BUSY))
    assert busy is RuntimeErrorCode.SESSION_EXECUTION_BUSY


@pytest.mark.parametrize("wire", [*ALL_KNOWN_STRINGS, "plugin_defined_abort"])
def test_retryable_and_terminal_follow_the_catalog(wire: str) -> None:
    code = RuntimeErrorCode.parse(wire)
    assert code.is_retryable is (wire in RETRYABLE_STRINGS)
    assert code.is_terminal is (wire in TERMINAL_STRINGS)
    assert not (code.is_retryable and code.is_terminal)


def test_store_commit_failed_is_neither_retryable_nor_terminal() -> None:
    code = RuntimeErrorCode.STORE_COMMIT_FAILED
    assert not code.is_retryable
    assert not code.is_terminal


# --- LashRuntimeError -------------------------------------------------------------------


def test_error_carries_code_and_message() -> None:
    err = LashRuntimeError(RuntimeErrorCode.STORE_COMMIT_FAILED, "commit failed")
    assert isinstance(err, Exception)
    assert err.code is RuntimeErrorCode.STORE_COMMIT_FAILED
    assert err.message == "commit failed"
    assert str(err) == "store_commit_failed: commit failed"
    assert err.args == ("store_commit_failed: commit failed",)


def test_error_accepts_a_string_code() -> None:
    err = LashRuntimeError("session_execution_lease_lost", "lease lost")
    assert err.code is RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST
    assert str(err) == "session_execution_lease_lost: lease lost"
    other = LashRuntimeError("plugin_defined_abort", "stopped by plugin")
    assert str(other.code) == "plugin_defined_abort"
    assert str(other) == "plugin_defined_abort: stopped by plugin"


def test_is_code_matches_codes_and_their_strings() -> None:
    err = LashRuntimeError(RuntimeErrorCode.SESSION_EXECUTION_BUSY, "busy")
    assert err.is_code(RuntimeErrorCode.SESSION_EXECUTION_BUSY)
    assert err.is_code("session_execution_busy")
    assert not err.is_code(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST)
    assert not err.is_code("busy")
    facet_err = LashRuntimeError.durable_store_required(DurableStoreFacet.TRIGGER_STORE)
    trigger = RuntimeErrorCode.durable_store_required(DurableStoreFacet.TRIGGER_STORE)
    assert facet_err.is_code(trigger)
    assert not facet_err.is_code(
        RuntimeErrorCode.durable_store_required(DurableStoreFacet.SESSION_STORE)
    )


@pytest.mark.parametrize("wire", [*ALL_KNOWN_STRINGS, "plugin_defined_abort"])
def test_error_flags_follow_its_code(wire: str) -> None:
    err = LashRuntimeError(wire, "m")
    assert err.is_retryable is (wire in RETRYABLE_STRINGS)
    assert err.is_terminal is (wire in TERMINAL_STRINGS)


@pytest.mark.parametrize("facet", list(DurableStoreFacet))
def test_durable_store_required_constructor(facet: DurableStoreFacet) -> None:
    wire, label = FACETS[facet]
    err = LashRuntimeError.durable_store_required(facet)
    assert str(err.code) == wire
    assert err.code.facet is facet
    assert err.message == f"durable effect hosts require a durable {label}"
    assert str(err) == f"{wire}: durable effect hosts require a durable {label}"
    assert err.is_terminal and not err.is_retryable
    # the seed's durable_store_required_round_trips_per_facet
    decoded = LashRuntimeError.from_dict(json.loads(json.dumps(err.to_dict())))
    assert decoded.code == RuntimeErrorCode.durable_store_required(facet)


def test_durable_store_required_messages_are_exact() -> None:
    messages = {f: LashRuntimeError.durable_store_required(f).message for f in DurableStoreFacet}
    assert messages == {
        DurableStoreFacet.ATTACHMENT_STORE: (
            "durable effect hosts require a durable attachment store"
        ),
        DurableStoreFacet.PROCESS_ENV_STORE: (
            "durable effect hosts require a durable process env store"
        ),
        DurableStoreFacet.SESSION_STORE: "durable effect hosts require a durable session store",
        DurableStoreFacet.PROCESS_REGISTRY: (
            "durable effect hosts require a durable process registry"
        ),
        DurableStoreFacet.TRIGGER_STORE: "durable effect hosts require a durable trigger store",
    }


def test_missing_process_execution_id_constructor() -> None:
    err = LashRuntimeError.missing_process_execution_id()
    assert err.code is RuntimeErrorCode.MISSING_PROCESS_EXECUTION_ID
    assert err.message == "process execution requires a non-empty persisted process id"
    assert err.to_dict() == {
        "code": "missing_process_execution_id",
        "message": "process execution requires a non-empty persisted process id",
    }
    assert err.is_terminal


def test_lease_lost_and_commit_failed_serialise_as_stable_strings() -> None:
    lost = LashRuntimeError(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST, "lease lost")
    assert json.loads(json.dumps(lost.to_dict()))["code"] == "session_execution_lease_lost"
    failed = LashRuntimeError(RuntimeErrorCode.STORE_COMMIT_FAILED, "commit failed")
    assert failed.to_dict() == {"code": "store_commit_failed", "message": "commit failed"}


@pytest.mark.parametrize("wire", [*ALL_KNOWN_STRINGS, "plugin_defined_abort"])
def test_to_dict_from_dict_is_lossless(wire: str) -> None:
    err = LashRuntimeError(wire, f'message for {wire} — with ünïcode and "quotes"')
    data = err.to_dict()
    assert data == {"code": wire, "message": err.message}
    for decoded in (
        LashRuntimeError.from_dict(data),
        LashRuntimeError.from_dict(json.loads(json.dumps(data))),
    ):
        assert decoded.code == err.code
        assert decoded.message == err.message
        assert str(decoded) == str(err)
        assert decoded.to_dict() == data


def test_unknown_code_round_trips_through_from_dict() -> None:
    decoded = LashRuntimeError.from_dict(
        {"code": "plugin_defined_abort", "message": "stopped by plugin"}
    )
    assert decoded.code == RuntimeErrorCode.parse("plugin_defined_abort")
    assert str(decoded.code) == "plugin_defined_abort"
    assert not decoded.code.is_known


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"code": "store_commit_failed"},
        {"message": "no code"},
        {"code": None, "message": "m"},
        {"code": 3, "message": "m"},
        {"code": "store_commit_failed", "message": None},
        {"code": "store_commit_failed", "message": ["m"]},
    ],
)
def test_from_dict_rejects_missing_or_mistyped_fields(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'code' and 'message'"):
        LashRuntimeError.from_dict(data)


@pytest.mark.parametrize("data", [None, "store_commit_failed", ["code", "message"], 7])
def test_from_dict_rejects_non_mappings(data: Any) -> None:
    with pytest.raises(ValueError, match="runtime error"):
        LashRuntimeError.from_dict(data)


@pytest.mark.parametrize("wire", ["store_commit_failed", "durable_store_required:session_store"])
def test_error_pickles_losslessly(wire: str) -> None:
    err = LashRuntimeError(wire, "boom")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is LashRuntimeError
    assert copy.code == err.code
    assert copy.message == "boom"
    assert str(copy) == str(err)


def test_unknown_code_error_pickles_losslessly() -> None:
    err = LashRuntimeError("plugin_defined_abort", "stopped")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy.code) == "plugin_defined_abort"
    assert copy.to_dict() == err.to_dict()


def test_error_can_be_raised_and_matched_by_code() -> None:
    with pytest.raises(LashRuntimeError) as info:
        raise LashRuntimeError(RuntimeErrorCode.TURN_STREAM_JOIN, "task died")
    assert info.value.code == RuntimeErrorCode.TURN_STREAM_JOIN


# --- StoreError -------------------------------------------------------------------------


def test_lease_expiry_maps_to_lease_lost() -> None:
    err = StoreError(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, "lease of s expired")
    runtime = err.to_runtime_error()
    assert runtime.code is RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST
    assert runtime.message == "lease of s expired"
    assert runtime.is_retryable


@pytest.mark.parametrize(
    "kind", [k for k in StoreErrorKind if k is not StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED]
)
def test_every_other_store_error_maps_to_commit_failed(kind: StoreErrorKind) -> None:
    err = StoreError(kind, "something went wrong", session_id="s")
    runtime = err.to_runtime_error()
    assert runtime.code is RuntimeErrorCode.STORE_COMMIT_FAILED
    # the store kind stays visible in the message for operators
    assert runtime.message == f"{kind.value}: something went wrong"
    assert not runtime.is_retryable
    assert not runtime.is_terminal


def test_store_error_carries_kind_message_and_details() -> None:
    err = StoreError(StoreErrorKind.HEAD_REVISION_CONFLICT, "head moved", expected=3, actual=4)
    assert err.kind is StoreErrorKind.HEAD_REVISION_CONFLICT
    assert err.message == "head moved"
    assert err.details == {"expected": 3, "actual": 4}
    assert str(err) == "head_revision_conflict: head moved"
    assert err.retryable
    assert not StoreError(StoreErrorKind.CORRUPT, "bad row").retryable
    assert StoreError(StoreErrorKind.BACKEND, "io", retryable=True).retryable
