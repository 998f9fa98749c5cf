"""The eight Standard protocol scenarios, driven directly against the sans-IO machine."""

from __future__ import annotations

from lash.kernel import (
    Checkpoint,
    CheckpointDelivered,
    Done,
    LlmCall,
    LlmCompleted,
    LlmFailed,
    MachineState,
    ToolBatch,
    ToolResults,
)
from lash.types import LlmResponse, ProviderFailure, TextPart, TurnOutcome

from .helpers import call, errors, failed_result, machine, ok_result, only, prose, step


def _respond(m, effects, *parts, streamed=False):  # type: ignore[no-untyped-def]
    llm = step(effects)
    assert isinstance(llm, LlmCall)
    return m.handle(
        LlmCompleted(
            effect_id=llm.effect_id, response=LlmResponse(parts=parts), text_streamed=streamed
        )
    )


def test_standard_protocol_scenario_projects_initial_request() -> None:
    m = machine("hello standard protocol")
    effects = m.start()
    calls = only(effects, LlmCall)
    assert len(calls) == 1
    request = calls[0].request
    assert [msg.text for msg in request.messages] == ["hello standard protocol"]
    assert request.system == "You are a test."
    assert request.model == "test-model"
    assert request.tool_choice == "auto"
    assert request.session_id == "sess-1" and request.agent_frame_id == "frame-0"
    assert request.request_id == calls[0].replay_key
    assert m.state is MachineState.WAITING_LLM
    assert m.outcome is None


def test_standard_protocol_scenario_empty_model_response_stops_provider_error() -> None:
    m = machine("answer with something")
    effects = _respond(m, m.start())
    assert "Model returned no assistant text or tool calls." in errors(effects)
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.stopped("provider_error")
    assert [(i.kind, i.code) for i in done.issues] == [("llm_provider", "empty_response")]
    assert m.state is MachineState.FINISHED


def test_standard_protocol_scenario_provider_error_stops_without_checkpoint() -> None:
    m = machine("trigger provider failure")
    llm = step(m.start())
    failure = ProviderFailure(
        kind="http", message="upstream provider unavailable", code="test_provider_error"
    )
    effects = m.handle(LlmFailed(effect_id=llm.effect_id, failure=failure))
    assert not only(effects, Checkpoint)
    assert "LLM error: upstream provider unavailable" in errors(effects)
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.stopped("provider_error")
    (issue,) = done.issues
    assert issue.kind == "llm_provider"
    assert issue.code == "test_provider_error"
    assert issue.terminal_reason == "provider_error"
    assert issue.provider_failure_kind == "http"
    assert issue.retryable is False


def test_standard_protocol_scenario_native_tool_loop_reenters_model_after_checkpoint() -> None:
    m = machine("read file")
    tc1 = call("tc1", "read_file", path="foo.txt")
    effects = _respond(m, m.start(), TextPart(text="Let me read that."), tc1)
    batch = step(effects)
    assert isinstance(batch, ToolBatch)
    assert batch.calls == (tc1,)
    assert prose(effects) == "Let me read that."
    effects = m.handle(
        ToolResults(effect_id=batch.effect_id, results=(ok_result(tc1, "file contents"),))
    )
    cp = step(effects)
    assert isinstance(cp, Checkpoint) and cp.kind == "after_work"
    effects = m.handle(CheckpointDelivered(effect_id=cp.effect_id))
    llm = step(effects)
    assert isinstance(llm, LlmCall)
    assert llm.protocol_iteration == 1
    roles = [msg.role for msg in llm.request.messages]
    assert roles == ["user", "assistant", "tool"]
    assert llm.request.messages[-1].tool_call_id == "tc1"
    assert llm.request.messages[-1].parts[0].content == "file contents"
    assert m.state is MachineState.WAITING_LLM


def test_standard_protocol_scenario_parallel_tool_results_checkpoint_once() -> None:
    m = machine("read two files")
    left, right = call("tc1", path="left.txt"), call("tc2", path="right.txt")
    batch = step(_respond(m, m.start(), left, right))
    assert isinstance(batch, ToolBatch) and batch.calls == (left, right)
    effects = m.handle(
        ToolResults(
            effect_id=batch.effect_id,
            results=(ok_result(left, "left contents"), ok_result(right, "right contents")),
        )
    )
    assert len(only(effects, Checkpoint)) == 1
    cp = step(effects)
    effects = m.handle(CheckpointDelivered(effect_id=cp.effect_id))
    llm = step(effects)
    assert isinstance(llm, LlmCall)
    tool_msgs = [msg for msg in llm.request.messages if msg.role == "tool"]
    assert [msg.tool_call_id for msg in tool_msgs] == ["tc1", "tc2"]
    assert [msg.parts[0].content for msg in tool_msgs] == ["left contents", "right contents"]


def test_standard_protocol_scenario_tool_failure_feedback_reenters_model_after_checkpoint() -> None:
    m = machine("search docs")
    tc1 = call("tc1", "search", query="missing term")
    batch = step(_respond(m, m.start(), tc1))
    result = failed_result(tc1, "search failed: index unavailable", "search_failed")
    cp = step(m.handle(ToolResults(effect_id=batch.effect_id, results=(result,))))
    assert isinstance(cp, Checkpoint) and cp.kind == "after_work"
    llm = step(m.handle(CheckpointDelivered(effect_id=cp.effect_id)))
    assert isinstance(llm, LlmCall)
    feedback = llm.request.messages[-1]
    assert feedback.role == "tool"
    assert feedback.parts[0].is_error
    assert feedback.parts[0].content == "search failed: index unavailable"
    assert m.outcome is None


def test_standard_protocol_scenario_streamed_text_finishes_without_duplicate_delta() -> None:
    m = machine("answer directly")
    effects = _respond(m, m.start(), TextPart(text="streamed done"), streamed=True)
    assert prose(effects) == ""
    cp = step(effects)
    assert isinstance(cp, Checkpoint) and cp.kind == "before_completion"
    effects = m.handle(CheckpointDelivered(effect_id=cp.effect_id))
    assert prose(effects) == ""
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.assistant_message("streamed done")
    assert m.turn_messages[-1].role == "assistant"
    assert m.turn_messages[-1].text == "streamed done"


def test_standard_protocol_scenario_max_turns_terminates_after_tool_result() -> None:
    m = machine("use a tool once", max_turns=1)
    tc1 = call("tc1", "test")
    effects = m.start()
    llm_calls = len(only(effects, LlmCall))
    effects = _respond(m, effects, tc1)
    batch = step(effects)
    effects = m.handle(ToolResults(effect_id=batch.effect_id, results=(ok_result(tc1),)))
    llm_calls += len(only(effects, LlmCall))
    assert llm_calls == 1
    assert not only(effects, Checkpoint)
    done = step(effects)
    assert isinstance(done, Done)
    assert done.outcome == TurnOutcome.stopped("max_turns")
    last = m.turn_messages[-1]
    assert last.role == "system"
    assert last.text == "Turn limit reached (1) before a final assistant response."
    assert m.state is MachineState.FINISHED
