"""Turn machine rules: terminal reasons, ids and replay keys, cancellation, failures, snapshots."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lash.kernel import (
    Checkpoint,
    CheckpointDelivered,
    Done,
    EffectFailed,
    LlmCall,
    LlmCompleted,
    LlmFailed,
    MachineConfig,
    MachineState,
    MachineUsageError,
    Progress,
    ProtocolViolation,
    ToolBatch,
    ToolResult,
    ToolResults,
    TurnMachine,
    turn_replay_key,
)
from lash.types import (
    ErrorEvent,
    LlmResponse,
    Message,
    ModelRequestStarted,
    ProviderFailure,
    ReasoningPart,
    TextPart,
    TokenUsage,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    ToolValue,
    TurnOutcome,
    UsageEvent,
)

from .helpers import (
    call,
    config,
    errors,
    events,
    machine,
    ok_result,
    only,
    progress,
    prose,
    reasoning,
    roundtrip,
    step,
    unanswered_calls,
    user,
)


def completed(effect_id: int, *parts: Any, streamed: bool = False, **kw: Any) -> LlmCompleted:
    return LlmCompleted(
        effect_id=effect_id, response=LlmResponse(parts=parts, **kw), text_streamed=streamed
    )


def to_tools(m: TurnMachine, *calls: ToolCallPart) -> ToolBatch:
    llm = step(m.start())
    batch = step(m.handle(completed(llm.effect_id, *calls)))
    assert isinstance(batch, ToolBatch)
    return batch


def to_checkpoint(m: TurnMachine, kind: str) -> Checkpoint:
    if kind == "before_completion":
        llm = step(m.start())
        cp = step(m.handle(completed(llm.effect_id, TextPart(text="answer"))))
    else:
        batch = to_tools(m, call("c1"))
        cp = step(
            m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
        )
    assert isinstance(cp, Checkpoint) and cp.kind == kind
    return cp


# --- terminal reasons ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terminal", "reason"),
    [
        ("output_limit", "incomplete"),
        ("context_overflow", "provider_error"),
        ("content_filter", "provider_error"),
        ("provider_error", "provider_error"),
        ("cancelled", "cancelled"),
    ],
)
def test_forcing_terminal_reasons_stop_the_turn(terminal: str, reason: str) -> None:
    m = machine()
    llm = step(m.start())
    effects = m.handle(
        completed(llm.effect_id, TextPart(text="partial"), call("c1"), terminal_reason=terminal)
    )
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.stopped(reason)
    assert not only(effects, ToolBatch) and not only(effects, Checkpoint)
    assert unanswered_calls(m.turn_messages) == set()
    if terminal == "cancelled":
        assert done.issues == ()
    else:
        assert [(i.kind, i.code, i.terminal_reason) for i in done.issues] == [
            ("llm_provider", terminal, terminal)
        ]


@pytest.mark.parametrize("terminal", ["stop", "tool_use", "unknown"])
def test_non_forcing_terminal_reasons_hand_the_response_to_the_driver(terminal: str) -> None:
    m = machine()
    llm = step(m.start())
    effects = m.handle(completed(llm.effect_id, TextPart(text="fine"), terminal_reason=terminal))
    cp = step(effects)
    assert isinstance(cp, Checkpoint) and cp.kind == "before_completion"


@pytest.mark.parametrize(
    ("input_tokens", "reason"),
    [(949, "incomplete"), (950, "provider_error"), (1000, "provider_error")],
)
def test_output_limit_is_refined_to_context_overflow_when_the_prompt_filled_the_window(
    input_tokens: int, reason: str
) -> None:
    m = machine(context_window=1000)
    llm = step(m.start())
    usage = TokenUsage(
        input_tokens=input_tokens - 100, cache_read_input_tokens=100, output_tokens=5
    )
    effects = m.handle(
        completed(llm.effect_id, TextPart(text="x"), terminal_reason="output_limit", usage=usage)
    )
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped(reason)
    expected = "incomplete" if reason == "incomplete" else "context_overflow"
    assert done.issues[0].terminal_reason == (
        "output_limit" if expected == "incomplete" else expected
    )


def test_llm_failure_with_cancelled_terminal_reason_stops_cancelled_without_issue() -> None:
    m = machine()
    llm = step(m.start())
    failure = ProviderFailure(kind="stream", message="aborted", terminal_reason="cancelled")
    effects = m.handle(LlmFailed(effect_id=llm.effect_id, failure=failure))
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.stopped("cancelled")
    assert done.issues == () and errors(effects) == []


def test_llm_failure_without_code_uses_the_failure_kind() -> None:
    m = machine()
    llm = step(m.start())
    failure = ProviderFailure(kind="quota", message="slow down", retryable=True, raw="{}")
    done = step(m.handle(LlmFailed(effect_id=llm.effect_id, failure=failure)))
    assert isinstance(done, Done)
    (issue,) = done.issues
    assert (issue.code, issue.retryable, issue.raw, issue.message) == (
        "quota",
        True,
        "{}",
        "slow down",
    )


# --- usage, events, deltas ---------------------------------------------------------------


def test_usage_events_carry_the_iteration_and_the_running_total() -> None:
    m = machine()
    batch = to_tools(m, call("c1"))
    cp = step(
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
    )
    llm = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    effects = m.handle(
        completed(
            llm.effect_id, TextPart(text="done"), usage=TokenUsage(input_tokens=10, output_tokens=2)
        )
    )
    (usage,) = events(effects, UsageEvent)
    assert usage.protocol_iteration == 1
    assert usage.usage == TokenUsage(input_tokens=10, output_tokens=2)
    assert usage.cumulative == TokenUsage(input_tokens=10, output_tokens=2)
    assert m.cumulative_usage == usage.cumulative


def test_usage_accumulates_and_no_usage_event_without_reported_usage() -> None:
    m = machine()
    llm = step(m.start())
    effects = m.handle(
        completed(llm.effect_id, call("c1"), usage=TokenUsage(input_tokens=3, output_tokens=1))
    )
    assert len(events(effects, UsageEvent)) == 1
    batch = step(effects)
    cp = step(
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
    )
    llm = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    effects = m.handle(completed(llm.effect_id, TextPart(text="x")))
    assert events(effects, UsageEvent) == []
    assert m.cumulative_usage == TokenUsage(input_tokens=3, output_tokens=1)


def test_model_request_started_precedes_every_llm_call() -> None:
    m = machine()
    effects = m.start()
    assert isinstance(effects[-1], LlmCall)
    assert events(effects[-2:-1], ModelRequestStarted) == [
        ModelRequestStarted(protocol_iteration=0)
    ]


def test_unstreamed_text_and_reasoning_are_emitted_as_deltas_once() -> None:
    m = machine()
    llm = step(m.start())
    parts = (ReasoningPart(text="think"), TextPart(text="Hel"), TextPart(text="lo"))
    effects = m.handle(completed(llm.effect_id, *parts, streamed=False))
    assert prose(effects) == "Hello"
    assert reasoning(effects) == "think"
    m2 = machine()
    llm = step(m2.start())
    effects = m2.handle(completed(llm.effect_id, *parts, streamed=True))
    assert prose(effects) == "" and reasoning(effects) == ""


def test_prose_message_puts_reasoning_first_then_merged_text() -> None:
    m = machine()
    llm = step(m.start())
    parts = (TextPart(text="Hel"), ReasoningPart(text=" why "), TextPart(text="lo"))
    m.handle(completed(llm.effect_id, *parts))
    msg = m.turn_messages[-1]
    assert msg.role == "assistant"
    assert msg.parts == (ReasoningPart(text="why"), TextPart(text="Hel"), TextPart(text="lo"))


def test_tool_call_message_interleaves_reasoning_in_original_order() -> None:
    m = machine()
    llm = step(m.start())
    parts = (
        ReasoningPart(text="r0", replay={"id": "a"}),
        TextPart(text="Looking."),
        call("c1"),
        ReasoningPart(text="r1", replay={"id": "b"}),
        call("c2"),
        ReasoningPart(text="r2", replay={"id": "c"}),
    )
    batch = step(m.handle(completed(llm.effect_id, *parts)))
    assert isinstance(batch, ToolBatch)
    msg = m.turn_messages[-1]
    kinds = [
        p.text if isinstance(p, TextPart | ReasoningPart) else p.id  # type: ignore[union-attr]
        for p in msg.parts
    ]
    assert kinds == ["Looking.", "r0", "c1", "r1", "c2", "r2"]


def test_reasoning_only_response_is_an_answer_with_empty_text() -> None:
    m = machine()
    llm = step(m.start())
    cp = step(m.handle(completed(llm.effect_id, ReasoningPart(text="hmm"))))
    assert isinstance(cp, Checkpoint)
    done = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    assert isinstance(done, Done) and done.outcome == TurnOutcome.assistant_message("")


def test_blank_response_is_empty_unless_it_follows_a_tool_result() -> None:
    m = machine()
    llm = step(m.start())
    done = step(m.handle(completed(llm.effect_id, TextPart(text="  \n"), ReasoningPart(text=" "))))
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("provider_error")

    m = machine()
    batch = to_tools(m, call("c1"))
    cp = step(
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
    )
    llm = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    effects = m.handle(completed(llm.effect_id))
    cp = step(effects)
    assert isinstance(cp, Checkpoint) and cp.kind == "before_completion"
    assert errors(effects) == []
    done = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    assert isinstance(done, Done) and done.outcome == TurnOutcome.assistant_message("")
    assert done.issues == ()


# --- tools ---------------------------------------------------------------------------------


def test_tool_value_control_finishes_the_turn_first_success_wins() -> None:
    m = machine()
    a, b, c = call("a", "fail"), call("b", "submit"), call("c", "submit2")
    batch = to_tools(m, a, b, c)
    control = {"terminal": {"kind": "tool_value", "value": {"answer": 42}}}
    failed_with_control = ToolResult(
        call=a,
        output=ToolCallOutput(status="failure", control={"terminal": {"kind": "tool_value"}}),
        model_return=ToolResultPart(tool_call_id="a", name="fail", content="no", is_error=True),
    )
    results = (
        failed_with_control,
        ok_result(b, "done", control=control),
        ok_result(c, "done2", control={"terminal": {"kind": "tool_value", "value": 1}}),
    )
    effects = m.handle(ToolResults(effect_id=batch.effect_id, results=results))
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.tool_value("submit", {"answer": 42})
    assert events(effects, ToolValue) == []  # the tool host emits it live, not the machine
    assert unanswered_calls(m.turn_messages) == set()
    assert [x.tool_call_id for x in m.turn_messages if x.role == "tool"] == ["a", "b", "c"]


def test_failed_tool_output_control_is_ignored() -> None:
    m = machine()
    a = call("a", "submit")
    batch = to_tools(m, a)
    res = ok_result(a, control={"terminal": {"kind": "tool_value", "value": 1}})
    failed = type(res)(
        call=res.call,
        output=type(res.output)(status="failure", control=res.output.control),
        model_return=res.model_return,
    )
    cp = step(m.handle(ToolResults(effect_id=batch.effect_id, results=(failed,))))
    assert isinstance(cp, Checkpoint)


def test_tool_results_append_one_tool_message_per_result_in_call_order() -> None:
    m = machine()
    a, b = call("a"), call("b")
    batch = to_tools(m, a, b)
    effects = m.handle(
        ToolResults(effect_id=batch.effect_id, results=(ok_result(a, "A"), ok_result(b, "B")))
    )
    tail = m.turn_messages[-2:]
    assert [(t.role, t.tool_call_id, t.parts[0].content) for t in tail] == [  # type: ignore[union-attr]
        ("tool", "a", "A"),
        ("tool", "b", "B"),
    ]
    (p,) = progress(effects)
    assert p.messages == m.turn_messages
    assert effects.index(p) < effects.index(step(effects))


@pytest.mark.parametrize(
    "bad",
    [
        "missing",
        "extra",
        "reordered",
        "wrong_name",
        "wrong_return_id",
    ],
)
def test_tool_results_that_do_not_match_the_batch_are_a_protocol_violation(bad: str) -> None:
    m = machine()
    a, b = call("a"), call("b")
    batch = to_tools(m, a, b)
    results = [ok_result(a), ok_result(b)]
    if bad == "missing":
        results = results[:1]
    elif bad == "extra":
        results.append(ok_result(call("z")))
    elif bad == "reordered":
        results.reverse()
    elif bad == "wrong_name":
        results[1] = ok_result(call("b", "other"))
    else:
        r = results[1]
        results[1] = type(r)(
            call=r.call,
            output=r.output,
            model_return=ToolResultPart(tool_call_id="zz", name="read_file", content=""),
        )
    with pytest.raises(ProtocolViolation):
        m.handle(ToolResults(effect_id=batch.effect_id, results=tuple(results)))
    assert m.state is MachineState.FAILED
    assert m.outcome == TurnOutcome.stopped("runtime_error")
    assert unanswered_calls(m.turn_messages) == set()
    with pytest.raises(MachineUsageError):
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(a), ok_result(b))))
    with pytest.raises(MachineUsageError):
        m.cancel()
    assert m.state is MachineState.FAILED


def test_cancelled_tool_results_record_partial_results_and_fill_the_rest() -> None:
    m = machine()
    a, b, c = call("a"), call("b"), call("c")
    batch = to_tools(m, a, b, c)
    effects = m.handle(
        ToolResults(effect_id=batch.effect_id, results=(ok_result(b, "B"),), cancelled=True)
    )
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("cancelled")
    tools = [t for t in m.turn_messages if t.role == "tool"]
    assert [t.tool_call_id for t in tools] == ["b", "a", "c"]
    assert tools[0].parts[0].content == "B"  # type: ignore[union-attr]
    assert all(t.parts[0].is_error for t in tools[1:])  # type: ignore[union-attr]
    assert progress(effects) and progress(effects)[-1].messages == m.turn_messages


def test_duplicate_or_missing_tool_call_ids_in_a_response_are_a_protocol_violation() -> None:
    for calls in ((call("a"), call("a")), (call(""),)):
        m = machine()
        llm = step(m.start())
        with pytest.raises(ProtocolViolation):
            m.handle(completed(llm.effect_id, *calls))
        assert m.state is MachineState.FAILED
        assert unanswered_calls(m.turn_messages) == set()


def test_response_of_the_wrong_kind_is_a_protocol_violation() -> None:
    m = machine()
    llm = step(m.start())
    with pytest.raises(ProtocolViolation):
        m.handle(CheckpointDelivered(effect_id=llm.effect_id))
    assert m.state is MachineState.FAILED
    assert m.issues[-1].code == "protocol_violation"


# --- checkpoints ---------------------------------------------------------------------------


def test_after_work_delivery_appends_deduplicated_messages_and_continues() -> None:
    m = machine()
    cp = to_checkpoint(m, "after_work")
    injected = (user("steer", id="in-1"), user("steer", id="in-1"), user("dup", id="u1"))
    effects = m.handle(CheckpointDelivered(effect_id=cp.effect_id, messages=injected))
    llm = step(effects)
    assert isinstance(llm, LlmCall)
    assert llm.protocol_iteration == 1
    assert [x.id for x in m.turn_messages].count("in-1") == 1
    assert [x.id for x in m.turn_messages].count("u1") == 1
    assert llm.request.messages[-1].id == "in-1"
    assert progress(effects)[-1].messages == m.turn_messages


def test_before_completion_delivery_forces_another_model_round() -> None:
    m = machine()
    cp = to_checkpoint(m, "before_completion")
    effects = m.handle(
        CheckpointDelivered(effect_id=cp.effect_id, messages=(user("more", id="in-1"),))
    )
    llm = step(effects)
    assert isinstance(llm, LlmCall)
    assert llm.protocol_iteration == 1
    assert [x.role for x in llm.request.messages] == ["user", "assistant", "user"]
    assert m.outcome is None


def test_before_completion_delivery_at_the_cap_stops_max_turns() -> None:
    m = machine(max_turns=1)
    cp = to_checkpoint(m, "before_completion")
    effects = m.handle(
        CheckpointDelivered(effect_id=cp.effect_id, messages=(user("more", id="in-1"),))
    )
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("max_turns")
    assert m.turn_messages[-1].text.startswith("Turn limit reached (1)")
    assert m.turn_messages[-2].id == "in-1"


def test_delivery_of_only_known_messages_counts_as_empty() -> None:
    m = machine()
    cp = to_checkpoint(m, "before_completion")
    done = step(
        m.handle(CheckpointDelivered(effect_id=cp.effect_id, messages=(user("x", id="u1"),)))
    )
    assert isinstance(done, Done) and done.outcome == TurnOutcome.assistant_message("answer")


def test_max_turns_respects_the_protocol_iteration_offset() -> None:
    m = machine(max_turns=2, protocol_iteration_offset=5)
    effects = m.start()
    assert step(effects).protocol_iteration == 5  # type: ignore[union-attr]
    for _ in range(2):
        llm = step(effects)
        batch = step(m.handle(completed(llm.effect_id, call(f"c{llm.effect_id}"))))
        effects = m.handle(
            ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),))
        )
        if isinstance(step(effects), Checkpoint):
            effects = m.handle(CheckpointDelivered(effect_id=step(effects).effect_id))  # type: ignore[union-attr]
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("max_turns")
    assert m.protocol_iteration == 7


# --- effect failures -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["llm", "tools", "checkpoint"])
def test_effect_failed_stops_as_runtime_error(where: str) -> None:
    m = machine()
    if where == "llm":
        pending: Any = step(m.start())
    elif where == "tools":
        pending = to_tools(m, call("a"), call("b"))
    else:
        pending = to_checkpoint(m, "after_work")
    effects = m.handle(
        EffectFailed(effect_id=pending.effect_id, code="store_commit_failed", message="boom")
    )
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("runtime_error")
    (issue,) = done.issues
    assert (issue.kind, issue.code, issue.message) == (
        "runtime_effect_controller",
        "store_commit_failed",
        "boom",
    )
    assert events(effects, ErrorEvent) == [ErrorEvent(message="boom", code="store_commit_failed")]
    assert unanswered_calls(m.turn_messages) == set()


# --- ids, keys, stale responses ------------------------------------------------------------


def test_effect_ids_count_from_one_and_replay_keys_follow_lash_format() -> None:
    m = machine()
    llm = step(m.start())
    batch = step(m.handle(completed(llm.effect_id, call("c1"))))
    cp = step(
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
    )
    llm2 = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    got = [(e.effect_id, e.replay_key) for e in (llm, batch, cp, llm2)]  # type: ignore[union-attr]
    assert got == [
        (1, "sess-1:turn-1:3:0:llm_call:1"),
        (2, "sess-1:turn-1:3:0:tool_batch:2"),
        (3, "sess-1:turn-1:3:1:checkpoint:3"),
        (4, "sess-1:turn-1:3:1:llm_call:4"),
    ]
    assert got[0][1] == turn_replay_key("sess-1", "turn-1", 3, 0, "llm_call", 1)
    assert llm2.request.request_id == got[3][1]  # type: ignore[union-attr]


def test_message_ids_are_deterministic_across_identical_runs() -> None:
    def run() -> tuple[Message, ...]:
        m = machine()
        llm = step(m.start())
        batch = step(m.handle(completed(llm.effect_id, TextPart(text="t"), call("c1"))))
        m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(batch.calls[0]),)))
        return m.turn_messages

    first, second = run(), run()
    assert first == second
    assert [x.id for x in first] == ["u1", "turn-1:m1", "turn-1:m2"]


@pytest.mark.parametrize("state", ["llm", "tools", "before_completion", "after_work"])
def test_responses_with_another_effect_id_are_ignored(state: str) -> None:
    m = machine()
    if state == "llm":
        pending: Any = step(m.start())
    elif state == "tools":
        pending = to_tools(m, call("a"))
    else:
        pending = to_checkpoint(m, state)
    before = m.snapshot()
    for eid in (pending.effect_id - 1, pending.effect_id + 1, 0, 99):
        assert m.handle(completed(eid, TextPart(text="x"))) == []
        assert m.handle(EffectFailed(effect_id=eid, code="x", message="y")) == []
        assert m.handle(CheckpointDelivered(effect_id=eid)) == []
    assert m.snapshot() == before


def test_usage_errors_leave_the_state_unchanged() -> None:
    m = machine()
    with pytest.raises(MachineUsageError):
        m.handle(CheckpointDelivered(effect_id=1))
    assert m.state is MachineState.PREPARING
    step(m.start())
    with pytest.raises(MachineUsageError):
        m.start()
    with pytest.raises(MachineUsageError):
        m.handle("not a response")
    assert m.state is MachineState.WAITING_LLM


def test_finished_is_sticky() -> None:
    m = machine()
    cp = to_checkpoint(m, "before_completion")
    step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    snap = m.snapshot()
    for action in (
        m.start,
        m.cancel,
        lambda: m.handle(CheckpointDelivered(effect_id=cp.effect_id)),
    ):
        with pytest.raises(MachineUsageError):
            action()
    assert m.snapshot() == snap and m.state is MachineState.FINISHED


# --- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["preparing", "llm", "tools", "before_completion", "after_work"])
def test_cancel_from_every_waiting_state(state: str) -> None:
    m = machine()
    if state == "llm":
        step(m.start())
    elif state == "tools":
        to_tools(m, call("a"), call("b"))
    elif state != "preparing":
        to_checkpoint(m, state)
    effects = m.cancel()
    done = step(effects)
    assert isinstance(done, Done) and done.outcome == TurnOutcome.stopped("cancelled")
    assert m.state is MachineState.FINISHED and m.outcome == done.outcome
    assert unanswered_calls(m.turn_messages) == set()
    if state == "tools":
        (p,) = progress(effects)
        assert [t.tool_call_id for t in p.messages if t.role == "tool"] == ["a", "b"]
        assert all(t.parts[0].is_error for t in p.messages if t.role == "tool")  # type: ignore[union-attr]
    else:
        assert progress(effects) == []
    assert isinstance(effects[-1], Done)


# --- snapshots -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", ["preparing", "llm", "tools", "before_completion", "after_work", "done"]
)
def test_snapshot_round_trips_and_restored_machine_behaves_identically(state: str) -> None:
    m = machine(max_turns=3, context_window=5000, options={"temperature": 0.2})
    pending: Any = None
    if state == "llm":
        pending = step(m.start())
    elif state == "tools":
        pending = to_tools(m, call("a"))
    elif state in ("before_completion", "after_work"):
        pending = to_checkpoint(m, state)
    elif state == "done":
        step(m.start())
        m.cancel()
    r = roundtrip(m)
    assert r.snapshot() == m.snapshot()
    assert r.state is m.state and r.turn_messages == m.turn_messages
    assert r.pending_effect == m.pending_effect
    if pending is not None:
        assert m.pending_effect == pending
    if state == "preparing":
        assert r.start() == m.start()
    elif state == "llm":
        resp = completed(pending.effect_id, TextPart(text="ok"), usage=TokenUsage(output_tokens=1))
        assert r.handle(resp) == m.handle(resp)
    elif state == "tools":
        resp2 = ToolResults(effect_id=pending.effect_id, results=(ok_result(pending.calls[0]),))
        assert r.handle(resp2) == m.handle(resp2)
    elif state == "done":
        with pytest.raises(MachineUsageError):
            r.cancel()
    else:
        resp3 = CheckpointDelivered(effect_id=pending.effect_id)
        assert r.handle(resp3) == m.handle(resp3)
    assert r.snapshot() == m.snapshot()


def test_restore_rejects_an_inconsistent_snapshot() -> None:
    m = machine()
    step(m.start())
    snap = m.snapshot()
    bad = msgspec.structs.replace(snap, state=MachineState.WAITING_TOOLS)
    with pytest.raises(ValueError, match="inconsistent"):
        TurnMachine.restore(bad)
    with pytest.raises(ValueError, match="version"):
        TurnMachine.restore(msgspec.structs.replace(snap, version=99))


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        config(max_turns=0)
    with pytest.raises(ValueError):
        config(session_id="")
    assert isinstance(config(), MachineConfig)


def test_transient_messages_are_not_projected() -> None:
    history = (
        Message(id="h1", role="user", parts=(TextPart(text="old"),)),
        Message(id="h2", role="assistant", parts=(TextPart(text="note"),), transient=True),
    )
    m = machine(history=history)
    llm = step(m.start())
    assert [x.id for x in llm.request.messages] == ["h1", "u1"]  # type: ignore[union-attr]


def test_progress_is_emitted_before_the_next_reply_effect() -> None:
    m = machine()
    llm = step(m.start())
    effects = m.handle(completed(llm.effect_id, TextPart(text="answer")))
    assert isinstance(effects[-2], Progress) and isinstance(effects[-1], Checkpoint)
    assert effects[-2].messages[-1].text == "answer"


def test_generated_message_ids_skip_ids_taken_by_delivered_messages() -> None:
    m = machine()
    cp = to_checkpoint(m, "before_completion")  # appended turn-1:m1
    taken = (user("steer", id="turn-1:m2"), user("steer", id="turn-1:m3"))
    llm = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id, messages=taken)))
    m.handle(completed(llm.effect_id, TextPart(text="again")))
    ids = [x.id for x in m.turn_messages]
    assert ids == ["u1", "turn-1:m1", "turn-1:m2", "turn-1:m3", "turn-1:m4"]
    assert roundtrip(m).snapshot() == m.snapshot()
