"""Every record of the data model survives the one storage codec unchanged.

Stores persist these records as JSON and decode them on another worker, possibly after a
restart; a field that does not round-trip is silently lost state. The sample table below must
name every ``msgspec.Struct`` defined in :mod:`lash.types` — a new record without a sample fails
:func:`test_every_record_has_a_sample`.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lash.types
from lash.types import (
    AgentFrameRecord,
    AgentFrameTask,
    AssistantOutput,
    AssistantProseDelta,
    AttachmentItem,
    AttachmentPart,
    AttachmentRef,
    AttachmentSource,
    AttemptRecord,
    CancellationEvidence,
    CancelOutcome,
    CancelTarget,
    ChildUsage,
    ClaimInfo,
    CodeBlockCompleted,
    CodeBlockStarted,
    ErrorEvent,
    EventPayload,
    ExecutionEvidence,
    ExecutionSummary,
    ExternalUrlSource,
    FinalValue,
    GraphAppend,
    GraphDelta,
    GraphReplaceFull,
    GraphUnchanged,
    InlineSource,
    InputItem,
    LeaseAcquired,
    LeaseBusy,
    LeaseClaim,
    LeaseOwner,
    LlmCallRecord,
    LlmRequest,
    LlmResponse,
    LocalProcessLiveness,
    MergeKey,
    Message,
    MessagePayload,
    ModelAttemptReset,
    ModelCapabilities,
    ModelRequestStarted,
    ModelSpec,
    NodePayload,
    NormalizedError,
    Part,
    PendingTurnInput,
    PendingTurnInputDraft,
    PersistedSession,
    PluginPayload,
    PluginRuntime,
    ProcessWake,
    ProviderFailure,
    QueueClaimCompletion,
    QueuedInputAccepted,
    QueuedMessagesCommitted,
    QueuedPayload,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    QueuedWorkItem,
    QueuedWorkStarted,
    ReasoningDelta,
    ReasoningDeltaEvent,
    ReasoningPart,
    ResponseCompleted,
    RetryDecision,
    RetryStatus,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionCheckpoint,
    SessionCommand,
    SessionConfig,
    SessionLease,
    SessionMeta,
    SessionNode,
    StoredSource,
    StreamEvent,
    SuffixCancelResult,
    TextDelta,
    TextItem,
    TextPart,
    TokenLedgerEntry,
    TokenUsage,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallOutput,
    ToolCallPart,
    ToolCallRecord,
    ToolCallStarted,
    ToolResultPart,
    ToolSpec,
    ToolValue,
    TurnActivity,
    TurnCommitStamp,
    TurnEvent,
    TurnInput,
    TurnInputClaim,
    TurnInputClaimCompletion,
    TurnInputIngress,
    TurnIssue,
    TurnOutcome,
    TurnResult,
    UsageEvent,
    UsageReport,
    UsageReported,
    UsageRow,
    VacuumReport,
    decode,
    encode,
    merge_ledger,
    to_builtins,
)

# --- fully populated samples ------------------------------------------------------------

USAGE = TokenUsage(
    input_tokens=11,
    cache_read_input_tokens=7,
    cache_write_input_tokens=3,
    output_tokens=20,
    reasoning_output_tokens=5,
)
REF = AttachmentRef(id="ab" * 32, media_type="image/png", byte_len=42, label="chart")
TEXT = TextPart(text="hello ✓")
REASONING = ReasoningPart(text="thinking", replay={"signature": "sig", "blocks": [1, 2]})
CALL = ToolCallPart(id="call-1", name="lookup", arguments={"q": "x", "n": [1, 2.5, None]})
CALL_RAW = ToolCallPart(id="call-2", name="lookup", arguments={}, raw_arguments='{"q":')
RESULT = ToolResultPart(tool_call_id="call-1", name="lookup", content="42", is_error=True)
ATTACH = AttachmentPart(ref=REF)
USER = Message(id="m-1", role="user", parts=(TEXT, ATTACH))
ASSISTANT = Message(id="m-2", role="assistant", parts=(REASONING, TEXT, CALL, CALL_RAW))
TOOL = Message(id="m-3", role="tool", parts=(RESULT,), transient=True)
INLINE = InlineSource(media_type="text/plain", data=b"\x00\x01bytes\xff", label="f.txt")
STORED = StoredSource(ref=REF)
EXTERNAL = ExternalUrlSource(media_type="image/jpeg", url="https://example.invalid/a.jpg")
TURN_INPUT = TurnInput(
    items=(
        TextItem(text="hi"),
        AttachmentItem(source=INLINE),
        AttachmentItem(source=STORED),
        AttachmentItem(source=EXTERNAL),
    ),
    protocol_turn_options={"mode": "plan"},
    trace_turn_id="turn-7",
)
CAPS = ModelCapabilities(
    reasoning_efforts=("low", "high"),
    default_reasoning_effort="low",
    cache_control="anthropic",
    parallel_tool_calls=False,
    stream_termination="eof_tolerated",
)
TOOL_SPEC = ToolSpec(
    name="lookup",
    description="Look something up.",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
EVIDENCE = ExecutionEvidence(
    served_model="m-2024",
    provider_response_id="resp-1",
    provider_request_id="req-1",
    reasoning_output_tokens=5,
    provider_finish_reason="stop",
)
RESPONSE = LlmResponse(
    parts=(TEXT, REASONING, CALL), usage=USAGE, terminal_reason="tool_use", evidence=EVIDENCE
)
NORMALIZED = NormalizedError(
    kind="http",
    message="rate limited",
    code="429",
    http_status=429,
    retry_after_s=1.5,
    provider_request_id="req-2",
    raw="{}",
)
RETRY = RetryDecision(scheduled=True, delay_s=0.25, reason="rate_limited")
ATTEMPT = AttemptRecord(
    ordinal=1,
    started_at_ms=1_700_000_000_000,
    duration_ms=120,
    outcome="failed",
    protocol_position="output_started",
    retry_budget_consumed=False,
    retry_decision=RETRY,
    error=NORMALIZED,
    evidence=EVIDENCE,
    usage=USAGE,
)
CALL_RECORD = LlmCallRecord(call_id="llm-1", attempts=(ATTEMPT,), label="main", model="m")
TOOL_OUTPUT = ToolCallOutput(
    status="failure",
    payload={"message": "nope", "detail": [1]},
    error_code="E1",
    control={"stop": True},
    attempts=2,
    retryable=True,
    retry_after_ms=500,
)
TOOL_RECORD = ToolCallRecord(
    call_id="call-1",
    name="lookup",
    arguments={"q": "x"},
    status="cancelled",
    output={"partial": True},
    error_code="cancelled",
    duration_ms=9,
    attempts=3,
)
CANCEL_EVIDENCE = CancellationEvidence(
    request_id="req-9", origin="ui", reason="stop button", requested_at_ms=5
)
ISSUE = TurnIssue(
    kind="provider",
    message="boom",
    code="llm_provider",
    terminal_reason="provider_error",
    raw="raw",
    retryable=True,
    provider_failure_kind="transport",
)
LEDGER = TokenLedgerEntry(source="subagent", model="m-small", usage=USAGE)
OUTCOME = TurnOutcome.frame_switch("frame-2", "continue", (USER,))
RESULT_RECORD = TurnResult(
    session_id="s",
    turn_id="t",
    outcome=TurnOutcome.stopped("cancelled", value={"why": 1}, tool_name="stopper"),
    assistant_output=AssistantOutput(safe_text="a", raw_text="a!", state="recovered_from_error"),
    usage=USAGE,
    children_usage=(LEDGER,),
    llm_calls=(CALL_RECORD,),
    tool_calls=(TOOL_RECORD,),
    issues=(ISSUE,),
    cancellation=CANCEL_EVIDENCE,
    execution=ExecutionSummary(
        had_tool_calls=True, had_code_execution=True, started_at_ms=1, duration_ms=2
    ),
    head_revision=4,
    turn_index=3,
)
OWNER = LeaseOwner(
    owner_id="worker-1",
    incarnation_id="inc-1",
    liveness=LocalProcessLiveness(host_id="h", boot_id="b", pid=123, process_start=456),
)
LEASE = SessionLease(
    session_id="s",
    owner=OWNER,
    lease_token="tok",
    fencing_token=9,
    claimed_at_ms=100,
    expires_at_ms=200,
)
FENCE = LEASE.fence()
CLAIM = ClaimInfo(
    claim_id="c-1", lease_token="tok", owner_id="worker-1", session_lease_generation=9
)
INGRESS = TurnInputIngress.active_turn("turn-1", "before_completion")
PENDING = PendingTurnInput(
    input_id="in-1",
    session_id="s",
    enqueue_seq=4,
    ingress=INGRESS,
    state="pending_active",
    enqueued_at_ms=77,
    input=TURN_INPUT,
    source_key="m-42",
    claim=CLAIM,
    claim_fencing_token=9,
)
PROCESS_WAKE = ProcessWake(wake={"process_id": "p-1", "signal": "done"})
FRAME_TASK = AgentFrameTask(frame_id="f-2", task="summarise", protocol_turn_options={"a": 1})
COMMAND = SessionCommand(command="reset_session", reason="user asked")
MERGE = MergeKey(kind="group", group="g-1")
BATCH_DRAFT = QueuedWorkBatchDraft(
    session_id="s",
    payloads=(PROCESS_WAKE, FRAME_TASK, COMMAND),
    source_key="k",
    delivery_policy="after_current_turn_commit",
    slot_policy="join",
    merge_key=MERGE,
    available_at_ms=10,
)
BATCH = QueuedWorkBatch(
    batch_id="b-1",
    session_id="s",
    enqueue_seq=2,
    items=(QueuedWorkItem(item_id="i-1", payload=PROCESS_WAKE),),
    delivery_policy="earliest_safe_boundary",
    slot_policy="exclusive",
    merge_key=MergeKey(kind="never"),
    available_at_ms=0,
    enqueued_at_ms=3,
    source_key="k",
    claim=CLAIM,
    claim_fencing_token=9,
)
NODE_USER = SessionNode(
    node_id="n-1",
    payload=MessagePayload(message=USER),
    agent_frame_id="s:frame:initial",
    caused_by="turn:t",
    timestamp_ms=1,
)
NODE_EVENT = SessionNode(
    node_id="n-2",
    parent_node_id="n-1",
    payload=EventPayload(name="compaction", body={"kept": 3}),
    timestamp_ms=2,
)
NODE_PLUGIN = SessionNode(
    node_id="n-3",
    parent_node_id="n-2",
    payload=PluginPayload(plugin_type="memory", body=["fact"]),
)
FRAME = AgentFrameRecord(
    frame_id="f-2",
    session_id="s",
    reason="compaction",
    previous_frame_id="s:frame:initial",
    status="closed",
    caused_by="turn:t",
    created_at_ms=5,
    task="continue",
    protocol_turn_options={"x": True},
)
CHECKPOINT = SessionCheckpoint(
    turn_index=3,
    token_usage=USAGE,
    last_prompt_usage=USAGE,
    protocol_turn_options={"mode": "plan"},
    plugin_state={"memory": {"facts": ["a"]}},
    tool_state={"shell": {"cwd": "/"}},
    execution_state={"machine": {"phase": "done"}},
)
STAMP = TurnCommitStamp(session_id="s", turn_id="t", turn_commit_hash="00" * 32)
COMMIT = RuntimeCommit(
    session_id="s",
    graph=GraphAppend(nodes=(NODE_USER, NODE_EVENT, NODE_PLUGIN), leaf_node_id="n-3"),
    checkpoint=CHECKPOINT,
    config=SessionConfig(provider_id="openai", model="m"),
    expected_head_revision=3,
    lease=FENCE,
    release_lease=True,
    agent_frames=(FRAME,),
    current_agent_frame_id="f-2",
    usage_deltas=(LEDGER,),
    turn_commit=STAMP,
    completed_queue_claims=(
        QueueClaimCompletion(claim_id="c-1", lease_token="tok", batch_ids=("b-1",)),
    ),
    completed_turn_input_claims=(
        TurnInputClaimCompletion(claim_id="c-2", lease_token="tok", input_ids=("in-1",)),
    ),
    enqueued_queue_batches=(BATCH_DRAFT,),
    interrupted_turn_input_turn_id="t-0",
    committed_attachment_ids=("ab" * 32,),
    result={"turn_id": "t", "nested": {"ok": True}},
)
REPORT = UsageReport.from_entries(
    [LEDGER, TokenLedgerEntry(source="turn", model="m", usage=TokenUsage(input_tokens=1))]
)
ACTIVITY = TurnActivity(
    id="a-1", correlation_id="c-1", event=AssistantProseDelta(text="hi"), turn_id="t"
)

SAMPLES: list[Any] = [
    # messages
    REF,
    TEXT,
    REASONING,
    CALL,
    CALL_RAW,
    RESULT,
    ATTACH,
    USER,
    ASSISTANT,
    TOOL,
    Message(id="m-empty", role="system"),
    INLINE,
    STORED,
    EXTERNAL,
    TextItem(text="t"),
    AttachmentItem(source=EXTERNAL),
    TURN_INPUT,
    TurnInput(),
    # llm
    CAPS,
    ModelSpec("gpt-x", context_window=400_000, max_output_tokens=8000, reasoning="high"),
    ModelSpec("gpt-x", capabilities=CAPS),
    TOOL_SPEC,
    LlmRequest(
        model="m",
        messages=(USER, ASSISTANT, TOOL),
        system="be brief",
        tools=(TOOL_SPEC,),
        tool_choice="required",
        max_output_tokens=100,
        reasoning="low",
        capabilities=CAPS,
        session_id="s",
        agent_frame_id="f",
        request_id="r",
        options={"temperature": 0.5},
    ),
    EVIDENCE,
    RESPONSE,
    TextDelta(text="he"),
    ReasoningDelta(text="hm"),
    ToolCallDelta(index=0, id="call-1", name="lookup", arguments='{"q"'),
    UsageReported(usage=USAGE),
    ResponseCompleted(response=RESPONSE),
    ProviderFailure(
        kind="quota",
        message="over quota",
        retryable=False,
        code="insufficient_quota",
        http_status=429,
        retry_after_s=30.0,
        hard_quota=True,
        terminal_reason="provider_error",
        provider_request_id="req",
        raw="{}",
    ),
    NORMALIZED,
    RETRY,
    ATTEMPT,
    CALL_RECORD,
    # usage
    USAGE,
    TokenUsage(),
    LEDGER,
    UsageRow(source="turn", model="m", usage=USAGE, total_tokens=USAGE.total()),
    REPORT,
    # tools & outcomes
    TOOL_OUTPUT,
    TOOL_RECORD,
    OUTCOME,
    TurnOutcome.assistant_message("done"),
    TurnOutcome.tool_value("finish", {"v": 1}),
    TurnOutcome.final_value([1, 2]),
    ISSUE,
    CANCEL_EVIDENCE,
    AssistantOutput(safe_text="x", raw_text="x", state="usable"),
    ExecutionSummary(had_tool_calls=True),
    RESULT_RECORD,
    # events
    QueuedWorkStarted(boundary="idle", batch_ids=("b",), causes=({"kind": "wake"},)),
    ModelRequestStarted(protocol_iteration=2),
    AssistantProseDelta(text="hi"),
    ReasoningDeltaEvent(text="hm"),
    ModelAttemptReset(assistant_prose_correlation_ids=("c1",), reasoning_correlation_ids=("c2",)),
    CodeBlockStarted(language="lashlang", code="x = 1", graph_key="g"),
    CodeBlockCompleted(
        language="lashlang",
        output="1",
        success=False,
        duration_ms=3,
        error="oops",
        tool_call_ids=("call-1",),
        graph_key="g",
    ),
    ToolCallStarted(
        name="lookup", args={"q": "x"}, call_id="call-1", graph_key="g", parent_call_id="p"
    ),
    ToolCallCompleted(
        name="lookup",
        args={"q": "x"},
        output=TOOL_OUTPUT,
        duration_ms=4,
        call_id="call-1",
        graph_key="g",
        parent_call_id="p",
    ),
    FinalValue(value={"answer": 42}),
    ToolValue(tool_name="finish", value="v"),
    UsageEvent(protocol_iteration=1, usage=USAGE, cumulative=USAGE + USAGE),
    ChildUsage(
        session_id="child",
        source="subagent",
        model="m",
        protocol_iteration=1,
        usage=USAGE,
        cumulative=USAGE,
    ),
    RetryStatus(wait_seconds=1.5, attempt=2, max_attempts=4, reason="rate_limited"),
    PluginRuntime(plugin_id="plan", event={"step": 1}),
    QueuedInputAccepted(checkpoint="after_work", inputs=("in-1",)),
    QueuedMessagesCommitted(checkpoint="before_completion", messages=(USER,)),
    ErrorEvent(message="warn", code="w1"),
    ACTIVITY,
    # graph
    MessagePayload(message=ASSISTANT),
    EventPayload(name="e"),
    PluginPayload(plugin_type="p", body={"k": "v"}),
    NODE_USER,
    NODE_EVENT,
    NODE_PLUGIN,
    FRAME,
    AgentFrameRecord(frame_id="s:frame:initial", session_id="s"),
    # leases
    OWNER.liveness,
    OWNER,
    LeaseOwner(owner_id="o", incarnation_id="i"),
    FENCE,
    LEASE,
    LeaseAcquired(lease=LEASE),
    LeaseBusy(holder=LEASE),
    # ingress
    INGRESS,
    TurnInputIngress.next_turn(),
    CLAIM,
    PendingTurnInputDraft(
        session_id="s", input=TURN_INPUT, ingress=INGRESS, input_id="in-1", source_key="k"
    ),
    PENDING,
    TurnInputClaim(
        session_id="s",
        claim_id="c",
        lease_token="tok",
        session_lease_generation=9,
        inputs=(PENDING,),
    ),
    CancelTarget(source_key="m-42"),
    CancelOutcome(
        status="already_claimed", input=PENDING, target=CancelTarget(input_id="in-1"), claim=CLAIM
    ),
    SuffixCancelResult(anchor_found=True, outcomes=(CancelOutcome(status="not_found"),)),
    VacuumReport(removed_node_count=3, removed_pending_turn_input_tombstone_count=2),
    PROCESS_WAKE,
    FRAME_TASK,
    COMMAND,
    MERGE,
    BATCH_DRAFT,
    QueuedWorkItem(item_id="i", payload=COMMAND),
    BATCH,
    QueuedWorkClaim(
        session_id="s",
        claim_id="c",
        lease_token="tok",
        fencing_token=9,
        session_lease_generation=9,
        batches=(BATCH,),
    ),
    # commits
    GraphUnchanged(leaf_node_id="n-1"),
    GraphUnchanged(),
    GraphAppend(nodes=(NODE_USER,), leaf_node_id="n-1"),
    GraphReplaceFull(nodes=(NODE_USER, NODE_EVENT), leaf_node_id="n-2"),
    SessionConfig(provider_id="p", model="m"),
    CHECKPOINT,
    SessionCheckpoint(),
    STAMP,
    QueueClaimCompletion(claim_id="c", lease_token="t", batch_ids=("b",)),
    TurnInputClaimCompletion(claim_id="c", lease_token="t", input_ids=("i",)),
    COMMIT,
    RuntimeCommit(session_id="s", graph=GraphUnchanged(), checkpoint=SessionCheckpoint()),
    RuntimeCommitResult(head_revision=4, enqueued_queue_batches=(BATCH,), result={"a": 1}),
    SessionMeta(
        session_id="s", created_at_ms=1, model="m", name="chat", parent_session_id="parent"
    ),
    PersistedSession(
        session_id="s",
        head_revision=4,
        nodes=(NODE_USER, NODE_EVENT),
        leaf_node_id="n-2",
        checkpoint=CHECKPOINT,
        config=SessionConfig(model="m"),
        agent_frames=(FRAME,),
        current_agent_frame_id="f-2",
        token_ledger=(LEDGER,),
    ),
]

# Tagged unions a record is stored under (decoded without knowing the concrete class).
UNIONS: list[tuple[Any, tuple[type, ...]]] = [
    (Part, (TextPart, ReasoningPart, ToolCallPart, ToolResultPart, AttachmentPart)),
    (AttachmentSource, (InlineSource, StoredSource, ExternalUrlSource)),
    (InputItem, (TextItem, AttachmentItem)),
    (StreamEvent, (TextDelta, ReasoningDelta, ToolCallDelta, UsageReported, ResponseCompleted)),
    (NodePayload, (MessagePayload, EventPayload, PluginPayload)),
    (GraphDelta, (GraphUnchanged, GraphAppend, GraphReplaceFull)),
    (QueuedPayload, (ProcessWake, AgentFrameTask, SessionCommand)),
    (LeaseClaim, (LeaseAcquired, LeaseBusy)),
    (
        TurnEvent,
        (
            QueuedWorkStarted,
            ModelRequestStarted,
            AssistantProseDelta,
            ReasoningDeltaEvent,
            ModelAttemptReset,
            CodeBlockStarted,
            CodeBlockCompleted,
            ToolCallStarted,
            ToolCallCompleted,
            FinalValue,
            ToolValue,
            UsageEvent,
            ChildUsage,
            RetryStatus,
            PluginRuntime,
            QueuedInputAccepted,
            QueuedMessagesCommitted,
            ErrorEvent,
        ),
    ),
]


def _record_classes() -> set[type]:
    found: set[type] = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("lash.types") or name == "lash.types._base":
            continue
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, msgspec.Struct)
                and obj.__module__ == name
                and not obj.__name__.startswith("_")
            ):
                found.add(obj)
    return found


def _id(value: Any) -> str:
    return type(value).__name__


def test_every_record_has_a_sample() -> None:
    classes = _record_classes()
    assert len(classes) > 90  # the discovery itself works
    missing = sorted(c.__name__ for c in classes - {type(s) for s in SAMPLES})
    assert missing == []


@pytest.mark.parametrize("record", SAMPLES, ids=_id)
def test_record_round_trips_through_the_codec(record: Any) -> None:
    data = encode(record)
    assert isinstance(data, bytes)
    decoded = decode(data, type=type(record))
    assert decoded == record
    assert type(decoded) is type(record)
    # decoding is deterministic: re-encoding gives the same bytes
    assert encode(decoded) == data
    # str input decodes the same as bytes
    assert decode(data.decode(), type=type(record)) == record


@pytest.mark.parametrize("record", SAMPLES, ids=_id)
def test_record_round_trips_through_builtins(record: Any) -> None:
    builtins = to_builtins(record)
    assert msgspec.convert(builtins, type=type(record)) == record


@pytest.mark.parametrize(("union", "members"), UNIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_tagged_unions_decode_to_the_right_member(union: Any, members: tuple[type, ...]) -> None:
    samples = [s for s in SAMPLES if type(s) in members]
    assert {type(s) for s in samples} == set(members)  # every member sampled
    for sample in samples:
        decoded = decode(encode(sample), type=union)
        assert type(decoded) is type(sample)
        assert decoded == sample


def test_records_are_frozen() -> None:
    with pytest.raises(AttributeError):
        USER.id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        USAGE.input_tokens = 0  # type: ignore[misc]


def test_defaults_are_encoded_and_optional_on_decode() -> None:
    # defaults are always written, so canonical JSON never depends on how a value was built
    assert to_builtins(TokenUsage()) == {
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_output_tokens": 0,
    }
    assert decode(encode(Message(id="m", role="user"))) == {
        "id": "m",
        "role": "user",
        "parts": [],
        "transient": False,
    }
    # ... and a row written before a defaulted field existed still decodes
    assert decode(b'{"id":"m","role":"user"}', type=Message) == Message(id="m", role="user")
    assert decode(b"{}", type=TokenUsage) == TokenUsage()


def test_tags_are_on_the_wire() -> None:
    assert to_builtins(TEXT) == {"kind": "text", "text": "hello ✓"}
    assert to_builtins(TextItem(text="t")) == {"type": "text", "text": "t"}
    assert to_builtins(AssistantProseDelta(text="x")) == {
        "type": "assistant_prose_delta",
        "text": "x",
    }
    assert to_builtins(GraphUnchanged()) == {"kind": "unchanged", "leaf_node_id": None}


def test_inline_bytes_survive_json() -> None:
    decoded = decode(encode(INLINE), type=InlineSource)
    assert decoded.data == b"\x00\x01bytes\xff"


def test_decode_validates() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"id":"m","role":"robot"}', type=Message)
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"kind":"nope","text":"x"}', type=Part)
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"input_tokens":"many"}', type=TokenUsage)
    with pytest.raises(msgspec.DecodeError):
        decode(b"{not json", type=TokenUsage)


def test_package_exports_the_codec() -> None:
    assert lash.types.encode is encode
    assert lash.types.decode is decode


# --- outcomes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "cancelled",
        "incomplete",
        "invalid_input",
        "max_turns",
        "tool_failure",
        "provider_error",
        "plugin_abort",
        "runtime_error",
        "submitted_error",
        "tool_error",
    ],
)
def test_every_stop_reason_is_accepted(reason: str) -> None:
    outcome = TurnOutcome.stopped(reason)
    assert outcome.kind == "stopped" and outcome.reason == reason
    assert not outcome.is_success
    assert decode(encode(outcome), type=TurnOutcome) == outcome


@pytest.mark.parametrize("reason", ["assistant_message", "final_value", "tool_value"])
def test_every_finish_reason_is_accepted(reason: str) -> None:
    outcome = TurnOutcome(kind="finished", reason=reason)
    assert outcome.is_success


def test_unknown_stop_reason_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stop reason 'exploded'"):
        TurnOutcome.stopped("exploded")
    with pytest.raises(ValueError, match="unknown stop reason"):
        TurnOutcome(kind="stopped", reason="assistant_message")


def test_unknown_finish_reason_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown finish reason 'cancelled'"):
        TurnOutcome(kind="finished", reason="cancelled")


def test_unknown_reasons_are_rejected_on_decode() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown stop reason"):
        decode(b'{"kind":"stopped","reason":"exploded"}', type=TurnOutcome)
    with pytest.raises(msgspec.ValidationError, match="unknown finish reason"):
        decode(b'{"kind":"finished","reason":"whatever"}', type=TurnOutcome)
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"kind":"paused","reason":"cancelled"}', type=TurnOutcome)


def test_turn_result_accessors() -> None:
    assert RESULT_RECORD.assistant_text == "a"
    assert RESULT_RECORD.errors == (ISSUE,)
    assert RESULT_RECORD.total_usage() == USAGE + USAGE
    assert not RESULT_RECORD.is_success()
    assert CANCEL_EVIDENCE.is_internal is False
    assert CancellationEvidence(request_id="internal:t").is_internal


def test_message_accessors() -> None:
    assert ASSISTANT.text == "hello ✓"
    assert ASSISTANT.tool_calls == (CALL, CALL_RAW)
    assert ASSISTANT.reasoning == "thinking"
    assert TOOL.text == "42" and TOOL.tool_call_id == "call-1"
    assert USER.attachments == (REF,) and USER.tool_call_id is None
    assert REF.uri == f"lash-attachment://sha256/{'ab' * 32}"
    assert TURN_INPUT.plain_text == "hi"
    assert TurnInput.of("x") == TurnInput.text("x")
    assert TurnInput().is_empty


# --- hypothesis: generated messages, parts and usage round-trip -------------------------

_json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ids = st.text(min_size=1, max_size=12)
_counts = st.integers(min_value=0, max_value=2**40)
usages = st.builds(
    TokenUsage,
    input_tokens=_counts,
    cache_read_input_tokens=_counts,
    cache_write_input_tokens=_counts,
    output_tokens=_counts,
    reasoning_output_tokens=_counts,
)
parts: st.SearchStrategy[Any] = st.one_of(
    st.builds(TextPart, text=st.text()),
    st.builds(ReasoningPart, text=st.text(), replay=_json),
    st.builds(
        ToolCallPart,
        id=_ids,
        name=_ids,
        arguments=st.dictionaries(st.text(max_size=8), _json, max_size=4),
        raw_arguments=st.none() | st.text(),
    ),
    st.builds(
        ToolResultPart, tool_call_id=_ids, name=_ids, content=st.text(), is_error=st.booleans()
    ),
    st.builds(
        AttachmentPart,
        ref=st.builds(
            AttachmentRef,
            id=_ids,
            media_type=_ids,
            byte_len=_counts,
            label=st.none() | st.text(),
        ),
    ),
)
messages = st.builds(
    Message,
    id=_ids,
    role=st.sampled_from(["system", "user", "assistant", "tool"]),
    parts=st.lists(parts, max_size=5).map(tuple),
    transient=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_generated_messages_round_trip(message: Message) -> None:
    assert decode(encode(message), type=Message) == message


@settings(max_examples=150, deadline=None)
@given(parts)
def test_generated_parts_round_trip_through_the_union(part: Any) -> None:
    decoded = decode(encode(part), type=Part)
    assert type(decoded) is type(part) and decoded == part


@settings(max_examples=150, deadline=None)
@given(usages)
def test_generated_usage_round_trips(usage: TokenUsage) -> None:
    assert decode(encode(usage), type=TokenUsage) == usage


@settings(max_examples=50, deadline=None)
@given(st.lists(messages, max_size=4), usages)
def test_generated_llm_exchange_round_trips(history: list[Message], usage: TokenUsage) -> None:
    request = LlmRequest(model="m", messages=tuple(history))
    assert decode(encode(request), type=LlmRequest) == request
    response = LlmResponse(
        parts=tuple(p for m in history for p in m.parts if isinstance(p, TextPart | ToolCallPart)),
        usage=usage,
    )
    assert decode(encode(response), type=LlmResponse) == response


# --- usage arithmetic, the ledger and reports -------------------------------------------


def test_usage_addition_and_subtraction_are_per_bucket() -> None:
    a = TokenUsage(
        input_tokens=1,
        cache_read_input_tokens=2,
        cache_write_input_tokens=3,
        output_tokens=4,
        reasoning_output_tokens=1,
    )
    b = TokenUsage(
        input_tokens=10,
        cache_read_input_tokens=20,
        cache_write_input_tokens=30,
        output_tokens=40,
        reasoning_output_tokens=15,
    )
    assert a + b == TokenUsage(
        input_tokens=11,
        cache_read_input_tokens=22,
        cache_write_input_tokens=33,
        output_tokens=44,
        reasoning_output_tokens=16,
    )
    assert (a + b) - b == a
    assert b - a == TokenUsage(
        input_tokens=9,
        cache_read_input_tokens=18,
        cache_write_input_tokens=27,
        output_tokens=36,
        reasoning_output_tokens=14,
    )


def test_total_counts_reasoning_once() -> None:
    usage = TokenUsage(
        input_tokens=100,
        cache_read_input_tokens=50,
        cache_write_input_tokens=25,
        output_tokens=40,
        reasoning_output_tokens=30,  # 30 of the 40 output tokens were reasoning
    )
    assert usage.input_total() == 175
    assert usage.total() == 215  # not 245: reasoning is inside output
    assert TokenUsage(reasoning_output_tokens=9).total() == 0


def test_is_zero() -> None:
    assert TokenUsage().is_zero()
    assert not TokenUsage(reasoning_output_tokens=1).is_zero()
    assert (USAGE - USAGE).is_zero()


@settings(max_examples=100, deadline=None)
@given(usages, usages, usages)
def test_usage_sum_is_a_commutative_monoid(a: TokenUsage, b: TokenUsage, c: TokenUsage) -> None:
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + TokenUsage() == a
    assert (a + b).total() == a.total() + b.total()
    assert (a + b) - b == a


def test_merge_ledger_merges_by_source_and_model_in_first_seen_order() -> None:
    u1 = TokenUsage(input_tokens=1, output_tokens=2)
    u2 = TokenUsage(input_tokens=10, output_tokens=20, reasoning_output_tokens=5)
    entries = [
        TokenLedgerEntry(source="turn", model="big", usage=u1),
        TokenLedgerEntry(source="subagent", model="small", usage=u2),
        TokenLedgerEntry(source="turn", model="small", usage=u1),
        TokenLedgerEntry(source="turn", model="big", usage=u2),
        TokenLedgerEntry(source="subagent", model="small", usage=u1),
    ]
    assert merge_ledger(entries) == [
        TokenLedgerEntry(source="turn", model="big", usage=u1 + u2),
        TokenLedgerEntry(source="subagent", model="small", usage=u2 + u1),
        TokenLedgerEntry(source="turn", model="small", usage=u1),
    ]


def test_merge_ledger_drops_zero_entries() -> None:
    u = TokenUsage(output_tokens=3)
    merged = merge_ledger(
        [
            TokenLedgerEntry(source="turn", model="m", usage=TokenUsage()),
            TokenLedgerEntry(source="compaction", model="m", usage=u),
            TokenLedgerEntry(source="observer", model="m", usage=u),
            TokenLedgerEntry(source="observer", model="m", usage=TokenUsage() - u),
        ]
    )
    assert merged == [TokenLedgerEntry(source="compaction", model="m", usage=u)]
    assert merge_ledger([]) == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            TokenLedgerEntry,
            source=st.sampled_from(["turn", "subagent", "compaction"]),
            model=st.sampled_from(["a", "b"]),
            usage=usages,
        ),
        max_size=12,
    )
)
def test_merge_ledger_preserves_totals(entries: list[TokenLedgerEntry]) -> None:
    merged = merge_ledger(entries)
    keys = [(e.source, e.model) for e in merged]
    assert len(keys) == len(set(keys))
    assert all(not e.usage.is_zero() for e in merged)
    assert sum((e.usage for e in merged), TokenUsage()) == sum(
        (e.usage for e in entries), TokenUsage()
    )
    assert merge_ledger(merged) == merged  # idempotent


def test_usage_report_groups_by_source_model_and_both() -> None:
    a = TokenUsage(input_tokens=100, output_tokens=10, reasoning_output_tokens=4)
    b = TokenUsage(input_tokens=7, cache_read_input_tokens=3, output_tokens=1)
    report = UsageReport.from_entries(
        [
            TokenLedgerEntry(source="turn", model="big", usage=a),
            TokenLedgerEntry(source="subagent", model="small", usage=b),
            TokenLedgerEntry(source="turn", model="small", usage=b),
            TokenLedgerEntry(source="turn", model="big", usage=a),
            TokenLedgerEntry(source="turn", model="none", usage=TokenUsage()),
        ]
    )
    assert report.entry_count == 3
    assert report.usage == a + a + b + b
    assert report.total_tokens == 2 * 110 + 2 * 11
    assert report.by_source == (
        UsageRow(source="turn", usage=a + a + b, total_tokens=231),
        UsageRow(source="subagent", usage=b, total_tokens=11),
    )
    assert report.by_model == (
        UsageRow(model="big", usage=a + a, total_tokens=220),
        UsageRow(model="small", usage=b + b, total_tokens=22),
    )
    assert report.by_source_model == (
        UsageRow(source="turn", model="big", usage=a + a, total_tokens=220),
        UsageRow(source="subagent", model="small", usage=b, total_tokens=11),
        UsageRow(source="turn", model="small", usage=b, total_tokens=11),
    )
    assert decode(encode(report), type=UsageReport) == report


def test_empty_usage_report() -> None:
    report = UsageReport.from_entries([])
    assert report.entry_count == 0
    assert report.usage == TokenUsage() and report.total_tokens == 0
    assert report.by_source == report.by_model == report.by_source_model == ()
