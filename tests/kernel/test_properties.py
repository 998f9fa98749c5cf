"""Property tests: chunking invariance and the machine as a total function (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lash.kernel import (
    Checkpoint,
    CheckpointDelivered,
    Done,
    Effect,
    EffectFailed,
    Emit,
    LlmCall,
    LlmCompleted,
    LlmFailed,
    MachineSnapshot,
    MachineState,
    MachineUsageError,
    Progress,
    ProtocolViolation,
    ToolBatch,
    ToolResult,
    ToolResults,
    TurnMachine,
)
from lash.types import (
    LlmResponse,
    Message,
    ProviderFailure,
    ReasoningPart,
    ResponsePart,
    TextPart,
    TokenUsage,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    TurnOutcome,
    decode,
    encode,
)

from .helpers import call, machine, ok_result, prose, unanswered_calls, user

REPLY = (LlmCall, ToolBatch, Checkpoint)
TERMINAL_REASONS = (
    "stop",
    "tool_use",
    "output_limit",
    "context_overflow",
    "content_filter",
    "provider_error",
    "cancelled",
    "unknown",
)

# --- chunking invariance --------------------------------------------------------------------

_text = st.text(alphabet=st.sampled_from("ab \n"), min_size=0, max_size=12)
_segment = st.one_of(
    st.tuples(st.just("text"), _text),
    st.tuples(st.just("reasoning"), _text),
    st.tuples(st.just("call"), st.sampled_from(["read", "grep"])),
)
_script = st.lists(st.lists(_segment, max_size=5), min_size=1, max_size=4)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(text[last:p])
        last = p
    pieces.append(text[last:])
    return pieces


def _parts(
    segments: list[tuple[str, str]], turn: int, cuts: list[int] | None
) -> tuple[ResponsePart, ...]:
    out: list[ResponsePart] = []
    for j, (kind, value) in enumerate(segments):
        if kind == "call":
            out.append(ToolCallPart(id=f"c{turn}_{j}", name=value, arguments={"j": j}))
            continue
        pieces = [value] if cuts is None else _split(value, cuts)
        for piece in pieces:
            out.append(TextPart(text=piece) if kind == "text" else ReasoningPart(text=piece))
    return tuple(out)


def _drive(script: list[list[tuple[str, str]]], cuts: list[int] | None) -> tuple[Any, ...]:
    m = machine("go", max_turns=10)
    effects = m.start()
    trace: list[Effect] = []
    turn = 0
    while True:
        trace.extend(effects)
        last = effects[-1]
        if isinstance(last, Done):
            break
        if isinstance(last, LlmCall):
            if turn >= len(script):
                effects = m.cancel()
                continue
            parts = _parts(script[turn], turn, cuts)
            turn += 1
            response = LlmCompleted(
                effect_id=last.effect_id, response=LlmResponse(parts=parts), text_streamed=False
            )
            effects = m.handle(response)
        elif isinstance(last, ToolBatch):
            results = tuple(ok_result(c, f"r-{c.id}") for c in last.calls)
            effects = m.handle(ToolResults(effect_id=last.effect_id, results=results))
        else:
            assert isinstance(last, Checkpoint)
            effects = m.handle(CheckpointDelivered(effect_id=last.effect_id))
    settled = [e for e in trace if not isinstance(e, Emit)]
    return m.outcome, m.turn_messages, settled, prose(trace), m.issues


@settings(max_examples=150, deadline=None)
@given(script=_script, cuts=st.lists(st.integers(min_value=0, max_value=20), max_size=6))
def test_chunking_invariance(script: list[list[tuple[str, str]]], cuts: list[int]) -> None:
    """Splitting any model output part into smaller parts changes nothing that settles."""
    whole = _drive(script, None)
    chunked = _drive(script, cuts)
    assert chunked == whole


# --- total function -------------------------------------------------------------------------

_ids = st.sampled_from(["a", "b", "c", "d", "e", "f"] * 2 + [""])
_call_part = st.builds(
    ToolCallPart, id=_ids, name=st.sampled_from(["t1", "t2"]), arguments=st.just({})
)
_text_part = st.builds(TextPart, text=_text)
_reasoning_part = st.builds(
    ReasoningPart, text=_text, replay=st.sampled_from([None, None, {"r": 1}])
)
# Hypothesis favours the first branch of one_of; put tool calls first so batches are common.
_resp_part = st.one_of(_call_part, _text_part, _reasoning_part)
_usage = st.one_of(
    st.none(),
    st.builds(
        TokenUsage,
        input_tokens=st.integers(0, 2000),
        output_tokens=st.integers(0, 50),
    ),
)
_offset = st.sampled_from([0] * 6 + [-1, 1, 7])
# Delivered ids sometimes collide with the ids the machine generates ("{turn_id}:m{n}").
_message = st.builds(
    lambda prefix, i, t: user(t, id=f"{prefix}{i}"),
    st.sampled_from(["in-", "turn-1:m"]),
    st.integers(0, 4),
    st.sampled_from(["x", "y"]),
)


class TurnMachineFuzz(RuleBasedStateMachine):
    """Arbitrary response sequences: only documented exceptions and all invariants hold."""

    @initialize(
        max_turns=st.sampled_from([None, 1, 2, 3]),
        window=st.sampled_from([None, 1000]),
    )
    def setup(self, max_turns: int | None, window: int | None) -> None:
        self.m = machine("fuzz", max_turns=max_turns, context_window=window)
        self.last_effect_id = 0
        self.done_seen = False

    # -- the core check, applied to every operation -----------------------------------------

    def _apply(self, op: Any) -> None:
        before = self.m.snapshot()
        twin = TurnMachine.restore(decode(encode(before), type=MachineSnapshot))
        was_terminal = before.state in (MachineState.FINISHED, MachineState.FAILED)
        got, got_twin = self._run(op, self.m), self._run(op, twin)
        event(f"{before.state.value} -> {self.m.state.value} ({type(got).__name__})")
        if isinstance(self.m.outcome, TurnOutcome):
            event(f"outcome {self.m.outcome.reason}")
        assert _comparable(got) == _comparable(got_twin), "restored machine diverged"
        assert self.m.snapshot() == twin.snapshot()
        if isinstance(got, BaseException):
            assert isinstance(got, MachineUsageError | ProtocolViolation), repr(got)
            if isinstance(got, MachineUsageError):
                assert self.m.snapshot() == before
            else:
                assert self.m.state is MachineState.FAILED
            return
        assert not was_terminal, "a finished or failed machine accepted a call"
        if not got:
            assert self.m.snapshot() == before
            return
        *head, last = got
        assert all(isinstance(e, Emit | Progress) for e in head)
        assert isinstance(last, (*REPLY, Done))
        for effect in got:
            if isinstance(effect, REPLY):
                assert effect.effect_id > self.last_effect_id
                self.last_effect_id = effect.effect_id
        if isinstance(last, Done):
            assert self.m.state is MachineState.FINISHED
            assert self.m.outcome == last.outcome and self.m.issues == last.issues
            self.done_seen = True
        else:
            assert self.m.pending_effect == last

    @staticmethod
    def _run(op: Any, m: TurnMachine) -> list[Effect] | BaseException:
        try:
            return list(op(m))
        except Exception as exc:  # the property is about which exceptions escape
            return exc

    def _awaited_id(self, offset: int) -> int:
        awaiting = self.m.awaiting
        return (awaiting.effect_id if awaiting is not None else 1) + offset

    # -- rules -------------------------------------------------------------------------------
    # Most rules fire only in the state they answer, so runs reach deep into the turn; the
    # ``misuse`` and ``wrong_kind`` rules cover everything else.

    def _in(self, *states: MachineState) -> bool:
        return self.m.state in states

    @precondition(lambda self: self._in(MachineState.PREPARING))
    @rule()
    def start(self) -> None:
        self._apply(lambda m: m.start())

    # Hypothesis favours small integers, so rare rules fire on the *largest* roll.

    @rule(roll=st.integers(0, 7))
    def cancel(self, roll: int) -> None:
        if roll == 7:
            self._apply(lambda m: m.cancel())

    @rule(
        what=st.sampled_from(["start", "cancel", "garbage", "checkpoint"]), roll=st.integers(0, 3)
    )
    def misuse(self, what: str, roll: int) -> None:
        if roll != 3:
            return
        if not self._in(MachineState.FINISHED, MachineState.FAILED):
            if what in ("cancel", "checkpoint"):
                return
            if what == "start" and self._in(MachineState.PREPARING):
                return
        ops: dict[str, Any] = {
            "start": lambda m: m.start(),
            "cancel": lambda m: m.cancel(),
            "garbage": lambda m: m.handle(object()),
            "checkpoint": lambda m: m.handle(CheckpointDelivered(effect_id=self._awaited_id(0))),
        }
        self._apply(ops[what])

    @precondition(lambda self: self._in(MachineState.WAITING_LLM))
    @rule(
        parts=st.lists(_resp_part, max_size=4),
        terminal=st.sampled_from(("stop",) * 6 + TERMINAL_REASONS),
        usage=_usage,
        streamed=st.booleans(),
        offset=_offset,
    )
    def llm_completed(
        self,
        parts: list[ResponsePart],
        terminal: Any,
        usage: TokenUsage | None,
        streamed: bool,
        offset: int,
    ) -> None:
        response = LlmResponse(parts=tuple(parts), terminal_reason=terminal, usage=usage)
        eid = self._awaited_id(offset)
        self._apply(
            lambda m: m.handle(
                LlmCompleted(effect_id=eid, response=response, text_streamed=streamed)
            )
        )

    @precondition(lambda self: self._in(MachineState.WAITING_LLM))
    @rule(
        terminal=st.sampled_from(TERMINAL_REASONS),
        code=st.sampled_from([None, "boom"]),
        offset=_offset,
        roll=st.integers(0, 3),
    )
    def llm_failed(self, terminal: Any, code: str | None, offset: int, roll: int) -> None:
        if roll != 3:
            return
        failure = ProviderFailure(kind="http", message="nope", code=code, terminal_reason=terminal)
        eid = self._awaited_id(offset)
        self._apply(lambda m: m.handle(LlmFailed(effect_id=eid, failure=failure)))

    @precondition(lambda self: self._in(MachineState.WAITING_TOOLS))
    @rule(
        mode=st.sampled_from(["valid"] * 6 + ["cancel_subset", "shuffled", "foreign"]),
        control=st.sampled_from([False] * 5 + [True]),
        offset=_offset,
    )
    def tool_results(self, mode: str, control: bool, offset: int) -> None:
        awaiting = self.m.awaiting
        assert awaiting is not None
        calls = list(awaiting.calls)
        ctl = {"terminal": {"kind": "tool_value", "value": 1}} if control else None
        results = [
            ok_result(c, "out", control=ctl if i == 0 else None) for i, c in enumerate(calls)
        ]
        cancelled = False
        if mode == "cancel_subset":
            results, cancelled = results[1:], True
        elif mode == "shuffled":
            results.reverse()
        elif mode == "foreign":
            results.append(
                ToolResult(
                    call=call("zz", "t1"),
                    output=ToolCallOutput(status="success"),
                    model_return=ToolResultPart(tool_call_id="zz", name="t1", content=""),
                )
            )
        eid = self._awaited_id(offset)
        response = ToolResults(effect_id=eid, results=tuple(results), cancelled=cancelled)
        self._apply(lambda m: m.handle(response))

    @precondition(lambda self: self._in(MachineState.WAITING_CHECKPOINT))
    @rule(messages=st.lists(_message, max_size=2), offset=_offset)
    def checkpoint(self, messages: list[Message], offset: int) -> None:
        eid = self._awaited_id(offset)
        response = CheckpointDelivered(effect_id=eid, messages=tuple(messages))
        self._apply(lambda m: m.handle(response))

    @rule(offset=_offset, roll=st.integers(0, 7))
    def effect_failed(self, offset: int, roll: int) -> None:
        if roll == 7:
            eid = self._awaited_id(offset)
            self._apply(
                lambda m: m.handle(EffectFailed(effect_id=eid, code="x_failed", message="x"))
            )

    @rule(kind=st.sampled_from(["llm", "tools", "checkpoint"]), roll=st.integers(0, 7))
    def wrong_kind(self, kind: str, roll: int) -> None:
        if roll != 7:
            return
        eid = self._awaited_id(0)
        responses: dict[str, Any] = {
            "llm": LlmCompleted(effect_id=eid, response=LlmResponse()),
            "tools": ToolResults(effect_id=eid, results=()),
            "checkpoint": CheckpointDelivered(effect_id=eid),
        }
        self._apply(lambda m: m.handle(responses[kind]))

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def terminal_turns_leave_no_tool_call_unanswered(self) -> None:
        if self.m.state in (MachineState.FINISHED, MachineState.FAILED):
            assert unanswered_calls(self.m.turn_messages) == set()
            assert self.m.outcome is not None and self.m.awaiting is None

    @invariant()
    def waiting_states_await_exactly_one_effect(self) -> None:
        waiting = self.m.state in (
            MachineState.WAITING_LLM,
            MachineState.WAITING_TOOLS,
            MachineState.WAITING_CHECKPOINT,
        )
        assert waiting == (self.m.awaiting is not None)

    @invariant()
    def message_ids_are_unique(self) -> None:
        ids = [x.id for x in self.m.context_messages]
        assert len(ids) == len(set(ids))


def _comparable(value: list[Effect] | BaseException) -> Any:
    if isinstance(value, BaseException):
        return (type(value), str(value))
    return value


TurnMachineFuzz.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_turn_machine_is_a_total_function = TurnMachineFuzz.TestCase
