"""``turn_commit_hash``: the semantic fingerprint that makes a replayed turn commit idempotent.

A store answers a second commit of the same turn with the stored result only when the hashes
agree, and rejects it (``runtime_turn_commit_conflict``) when they differ. So the hash must
ignore everything a replay regenerates (ids, timestamps, the lease it runs under, the head it
expects, the result it reports) and must change with anything the turn actually said or did.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.types import (
    AgentFrameRecord,
    EventPayload,
    GraphAppend,
    GraphReplaceFull,
    LeaseFence,
    LeaseOwner,
    Message,
    MessagePayload,
    QueueClaimCompletion,
    RuntimeCommit,
    SessionCheckpoint,
    SessionConfig,
    SessionNode,
    TextPart,
    TokenLedgerEntry,
    TokenUsage,
    ToolCallPart,
    ToolResultPart,
    TurnCommitStamp,
    decode,
    encode,
    turn_commit_hash,
)

SESSION = "s-1"
FRAME = f"{SESSION}:frame:initial"


def build(
    *,
    ids: tuple[str, ...] = ("n1", "n2", "n3", "n4"),
    message_ids: tuple[str, ...] = ("m1", "m2", "m3", "m4"),
    base_ms: int = 1_700_000_000_000,
    parent_of_first: str | None = "n0",
    user_text: str = "what is 6 * 7?",
    args: dict[str, Any] | None = None,
    tool_output: str = "42",
    answer: str = "It is 42.",
    usage: TokenUsage | None = None,
    checkpoint: SessionCheckpoint | None = None,
    **fields: Any,
) -> RuntimeCommit:
    """A commit appending one turn: user, assistant tool call, tool result, assistant reply."""
    messages = [
        Message(id=message_ids[0], role="user", parts=(TextPart(text=user_text),)),
        Message(
            id=message_ids[1],
            role="assistant",
            parts=(
                ToolCallPart(
                    id="call-1",
                    name="multiply",
                    arguments=args if args is not None else {"a": 6, "b": 7},
                ),
            ),
        ),
        Message(
            id=message_ids[2],
            role="tool",
            parts=(ToolResultPart(tool_call_id="call-1", name="multiply", content=tool_output),),
        ),
        Message(id=message_ids[3], role="assistant", parts=(TextPart(text=answer),)),
    ]
    parents = [parent_of_first, *ids[:-1]]
    nodes = tuple(
        SessionNode(
            node_id=node_id,
            parent_node_id=parent,
            payload=MessagePayload(message=message),
            agent_frame_id=FRAME,
            caused_by="turn:t-1",
            timestamp_ms=base_ms + i,
        )
        for i, (node_id, parent, message) in enumerate(zip(ids, parents, messages, strict=True))
    )
    turn_usage = usage if usage is not None else TokenUsage(input_tokens=30, output_tokens=12)
    values: dict[str, Any] = {
        "session_id": SESSION,
        "graph": GraphAppend(nodes=nodes, leaf_node_id=ids[-1]),
        "checkpoint": checkpoint
        if checkpoint is not None
        else SessionCheckpoint(
            turn_index=2, token_usage=turn_usage, plugin_state={"memory": {"facts": 1}}
        ),
        "config": SessionConfig(provider_id="scripted", model="m"),
        "agent_frames": (
            AgentFrameRecord(frame_id=FRAME, session_id=SESSION, created_at_ms=base_ms - 5),
        ),
        "current_agent_frame_id": FRAME,
        "usage_deltas": (TokenLedgerEntry(source="turn", model="m", usage=turn_usage),),
    }
    values.update(fields)
    return RuntimeCommit(**values)


BASE = build()
BASE_HASH = turn_commit_hash(BASE)
assert isinstance(BASE.graph, GraphAppend)
BASE_NODES = BASE.graph.nodes


def fence(token: str, generation: int) -> LeaseFence:
    return LeaseFence(
        session_id=SESSION,
        owner=LeaseOwner(owner_id=f"worker-{token}", incarnation_id=f"inc-{token}"),
        lease_token=token,
        fencing_token=generation,
    )


def test_hash_is_a_sha256_hex_digest_and_deterministic() -> None:
    assert len(BASE_HASH) == 64
    assert int(BASE_HASH, 16) >= 0
    assert turn_commit_hash(build()) == BASE_HASH


def test_hash_survives_the_storage_codec() -> None:
    # the store recomputes or compares hashes of commits it decoded
    stored = decode(encode(BASE), type=RuntimeCommit)
    assert turn_commit_hash(stored) == BASE_HASH


# --- what a replay may change --------------------------------------------------------------

VOLATILE_VARIANTS: dict[str, RuntimeCommit] = {
    "node ids and parent ids": build(ids=("x1", "x2", "x3", "x4")),
    "the parent of the first node": build(parent_of_first="elsewhere"),
    "a root append": build(parent_of_first=None),
    "the leaf": msgspec.structs.replace(
        BASE,
        graph=GraphAppend(nodes=BASE_NODES, leaf_node_id="n2"),
    ),
    "timestamps": build(base_ms=1_800_000_000_000),
    "message ids": build(message_ids=("a", "b", "c", "d")),
    "the lease fence": build(lease=fence("tok-b", 9)),
    "releasing the lease": build(lease=fence("tok-a", 1), release_lease=True),
    "the expected head revision": build(expected_head_revision=41),
    "the stamp": build(
        turn_commit=TurnCommitStamp(session_id=SESSION, turn_id="t-1", turn_commit_hash="ff" * 32)
    ),
    "the result": build(result={"turn_id": "t-1", "assistant_text": "anything", "n": [1, 2]}),
    "everything volatile at once": build(
        ids=("y1", "y2", "y3", "y4"),
        message_ids=("p", "q", "r", "s"),
        base_ms=5,
        parent_of_first="root",
        lease=fence("tok-z", 77),
        release_lease=True,
        expected_head_revision=3,
        turn_commit=TurnCommitStamp(session_id=SESSION, turn_id="t-1", turn_commit_hash="x"),
        result="different",
    ),
}


@pytest.mark.parametrize("what", list(VOLATILE_VARIANTS))
def test_replay_volatile_fields_do_not_change_the_hash(what: str) -> None:
    variant = VOLATILE_VARIANTS[what]
    assert variant != BASE  # the variant really differs
    assert turn_commit_hash(variant) == BASE_HASH


def test_argument_key_order_does_not_change_the_hash() -> None:
    assert turn_commit_hash(build(args={"b": 7, "a": 6})) == BASE_HASH


def test_stamped_carries_the_hash_and_keeps_it() -> None:
    stamped = BASE.stamped("t-1")
    assert stamped.turn_commit == TurnCommitStamp(
        session_id=SESSION, turn_id="t-1", turn_commit_hash=BASE_HASH
    )
    assert turn_commit_hash(stamped) == BASE_HASH
    # a replay with regenerated ids stamps the same hash
    replay = build(ids=("r1", "r2", "r3", "r4"), message_ids=("q1", "q2", "q3", "q4"))
    assert replay.stamped("t-1").turn_commit == stamped.turn_commit


def test_hash_does_not_mutate_the_commit() -> None:
    before = encode(BASE)
    turn_commit_hash(BASE)
    assert encode(BASE) == before


# --- what a replay must not change ---------------------------------------------------------

SEMANTIC_VARIANTS: dict[str, RuntimeCommit] = {
    "user text": build(user_text="what is 6 * 8?"),
    "assistant text": build(answer="It is 41."),
    "tool arguments": build(args={"a": 6, "b": 8}),
    "an extra tool argument": build(args={"a": 6, "b": 7, "c": 0}),
    "tool output": build(tool_output="41"),
    "usage": build(usage=TokenUsage(input_tokens=30, output_tokens=13)),
    "reasoning usage": build(
        usage=TokenUsage(input_tokens=30, output_tokens=12, reasoning_output_tokens=1)
    ),
    "usage deltas only": build(
        usage_deltas=(TokenLedgerEntry(source="subagent", model="m", usage=TokenUsage()),)
    ),
    "checkpoint turn index": build(checkpoint=SessionCheckpoint(turn_index=3)),
    "checkpoint plugin state": build(
        checkpoint=SessionCheckpoint(
            turn_index=2,
            token_usage=TokenUsage(input_tokens=30, output_tokens=12),
            plugin_state={"memory": {"facts": 2}},
        )
    ),
    "the model": build(config=SessionConfig(provider_id="scripted", model="other")),
    "the current frame": build(current_agent_frame_id="f-2"),
    "settled claims": build(
        completed_queue_claims=(QueueClaimCompletion(claim_id="c", lease_token="t", batch_ids=()),)
    ),
    "committed attachments": build(committed_attachment_ids=("ab" * 32,)),
    "a graph reset instead of an append": msgspec.structs.replace(
        BASE,
        graph=GraphReplaceFull(nodes=BASE_NODES, leaf_node_id="n4"),
    ),
    "one node fewer": msgspec.structs.replace(
        BASE,
        graph=GraphAppend(nodes=BASE_NODES[:3], leaf_node_id="n3"),
    ),
    "an extra event node": msgspec.structs.replace(
        BASE,
        graph=GraphAppend(
            nodes=(
                *BASE_NODES,
                SessionNode(
                    node_id="n5", parent_node_id="n4", payload=EventPayload(name="compacted")
                ),
            ),
            leaf_node_id="n5",
        ),
    ),
    "another session": build(session_id="s-2"),
}


@pytest.mark.parametrize("what", list(SEMANTIC_VARIANTS))
def test_semantic_changes_change_the_hash(what: str) -> None:
    assert turn_commit_hash(SEMANTIC_VARIANTS[what]) != BASE_HASH


def test_semantic_variants_are_pairwise_distinct() -> None:
    hashes = [turn_commit_hash(c) for c in SEMANTIC_VARIANTS.values()]
    for (a, ha), (b, hb) in itertools.combinations(zip(SEMANTIC_VARIANTS, hashes, strict=True), 2):
        assert ha != hb, f"{a!r} and {b!r} hash the same"


def test_message_order_matters() -> None:
    nodes = BASE_NODES
    swapped = msgspec.structs.replace(
        BASE, graph=GraphAppend(nodes=(nodes[0], nodes[2], nodes[1], nodes[3]), leaf_node_id="n4")
    )
    assert turn_commit_hash(swapped) != BASE_HASH


_fresh_ids = st.lists(st.text(min_size=1, max_size=10), min_size=4, max_size=4, unique=True).map(
    tuple
)


@settings(max_examples=60, deadline=None)
@given(
    ids=_fresh_ids,
    message_ids=_fresh_ids,
    base_ms=st.integers(min_value=0, max_value=2**50),
    head=st.none() | st.integers(min_value=0, max_value=10**6),
    token=st.text(min_size=1, max_size=8),
)
def test_any_regeneration_of_ids_and_times_hashes_the_same(
    ids: tuple[str, ...],
    message_ids: tuple[str, ...],
    base_ms: int,
    head: int | None,
    token: str,
) -> None:
    replay = build(
        ids=ids,
        message_ids=message_ids,
        base_ms=base_ms,
        expected_head_revision=head,
        lease=fence(token, len(token)),
    )
    assert turn_commit_hash(replay) == BASE_HASH


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30).filter(lambda t: t != "It is 42."))
def test_any_answer_change_changes_the_hash(answer: str) -> None:
    assert turn_commit_hash(build(answer=answer)) != BASE_HASH
