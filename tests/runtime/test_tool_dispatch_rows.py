"""Spec rows of processes-tools §5.7 for tool dispatch inside a turn: scheduling, the
preparation order and membership gate, pending launches and the tool-call hooks.

Each test is named after its row; docs/dev/coverage/tools-dispatch-plugins.md maps the rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import lash
from lash.runtime.await_events import Resolution, WaitIdentity
from lash.runtime.plugins import ToolCallContext
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import BareEffectHost
from lash.tools import FunctionTool, ToolRetryPolicy
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart, ToolSpec

WAIT_S = 5.0


async def _no_sleep(seconds: float) -> None:
    return None


def _core(
    provider: ScriptedProvider,
    tools: list[Any],
    *,
    plugins: list[Any] | None = None,
    host: Any = None,
) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(host or lash.InlineEffectHost())
        .tools(tools)
        .plugins(plugins or [])
        .sleep(_no_sleep)
        .build()
    )


def _results(provider: ScriptedProvider) -> list[ToolResultPart]:
    return [
        part
        for message in provider.requests[-1].messages
        for part in message.parts
        if isinstance(part, ToolResultPart)
    ]


class CountingTool:
    """A third-party tool that counts how often its contract and body are touched."""

    def __init__(self, name: str, *, contract_available: bool = True) -> None:
        self.name = name
        self.contract_available = contract_available
        self.spec_reads = 0
        self.executed = 0

    @property
    def spec(self) -> ToolSpec:
        self.spec_reads += 1
        if not self.contract_available:
            raise RuntimeError("contract unavailable")
        return ToolSpec(name=self.name, parameters={"type": "object"})

    @property
    def retry_policy(self) -> ToolRetryPolicy:
        return "never"

    async def invoke(self, ctx: lash.ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        self.executed += 1
        return ToolCallOutput(status="success", payload="host")


@lash.tool
async def alpha(ctx: lash.ToolContext) -> str:
    """An ordinary catalog tool."""
    return "alpha"


# --- scheduling -------------------------------------------------------------------------------


async def test_scheduler_runs_every_item_concurrently_and_preserves_order() -> None:
    started: list[str] = []
    finished: list[str] = []
    all_started = asyncio.Event()
    gates = {name: asyncio.Event() for name in ("slow", "formerly_serial", "fast")}

    @lash.tool
    async def probe(ctx: lash.ToolContext, name: str) -> str:
        """Starts, waits for its peers, finishes in the order the test releases."""
        started.append(name)
        if len(started) == 3:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), WAIT_S)
        await asyncio.wait_for(gates[name].wait(), WAIT_S)
        finished.append(name)
        return name

    async def release_in_reverse() -> None:
        await asyncio.wait_for(all_started.wait(), WAIT_S)
        for name in ("fast", "formerly_serial", "slow"):
            gates[name].set()
            while name not in finished:
                await asyncio.sleep(0)

    calls = [tool_call("probe", {"name": n}, f"c{i}") for i, n in enumerate(gates)]
    provider = ScriptedProvider([calls, reply("done")])
    session = await _core(provider, [probe]).session("s").open()
    releaser = asyncio.ensure_future(release_in_reverse())
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    await releaser
    assert finished == ["fast", "formerly_serial", "slow"]  # every item overlapped its peers
    assert [c.output for c in result.tool_calls] == ["slow", "formerly_serial", "fast"]
    assert [p.tool_call_id for p in _results(provider)] == ["c0", "c1", "c2"]


# --- preparation order and the membership gate --------------------------------------------


async def test_dispatch_rejects_invalid_args_before_provider_execution() -> None:
    ran: list[str] = []

    @lash.tool
    async def beta(ctx: lash.ToolContext, value: str) -> str:
        """Needs a value."""
        ran.append(value)
        return value

    provider = ScriptedProvider([tool_call("beta", {}, "c1"), reply("done")])
    result = await _core(provider, [beta]).session("s").open()
    record = (await result.turn("go").run()).tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "invalid_tool_args")
    assert "value" in str(record.output)
    assert ran == []


class BeforeRecorder(lash.Plugin):
    """Records every call the ``before_tool_call`` hook sees."""

    id = "before-recorder"
    seen: list[str] = []

    async def before_tool_call(self, ctx: ToolCallContext, call: ToolCallPart) -> None:
        type(self).seen.append(call.name)


async def test_dispatch_rejects_non_catalog_tool_before_provider_resolution() -> None:
    BeforeRecorder.seen = []
    host_only = CountingTool("host_only")
    provider = ScriptedProvider([tool_call("host_only", {"value": "ok"}, "c1"), reply("done")])
    session = await _core(provider, [alpha], plugins=[BeforeRecorder]).session("s").open()
    session.add_grant_source("host", host_only)  # known to a source, but not a catalog member
    result = await session.turn("go").run()
    record = result.tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "tool_unavailable")
    assert record.output == "Tool 'host_only' is unavailable in this session"
    assert (host_only.spec_reads, host_only.executed) == (0, 0)
    assert "host_only" not in [t.name for t in provider.requests[0].tools]
    assert BeforeRecorder.seen == []  # the membership gate comes before any hook


async def test_non_catalog_tool_is_rejected_before_contract_resolution() -> None:
    host_only = CountingTool("host_only", contract_available=False)
    provider = ScriptedProvider([tool_call("host_only", {"value": "ok"}, "c1"), reply("done")])
    session = await _core(provider, [alpha]).session("s").open()
    session.add_grant_source("host", host_only)
    record = (await session.turn("go").run()).tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "tool_unavailable")
    assert (host_only.spec_reads, host_only.executed) == (0, 0)  # its contract never resolved


async def test_dispatch_rejects_hidden_tool_before_contract_resolution() -> None:
    hidden = CountingTool("hidden")
    provider = ScriptedProvider([tool_call("hidden", {"value": "ok"}, "c1"), reply("done")])
    session = await _core(provider, [alpha, hidden]).session("s").open()
    await session.set_tool_membership("hidden", False)
    record = (await session.turn("go").run()).tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "tool_unavailable")
    assert record.output == "Tool 'hidden' is unavailable in this session"
    assert hidden.executed == 0
    assert [t.name for t in provider.requests[0].tools] == ["alpha", "batch"]


async def test_dispatch_allows_unknown_mcp_args_when_schema_does_not_forbid_them() -> None:
    seen: list[dict[str, Any]] = []

    def show(args: dict[str, Any]) -> str:
        seen.append(args)
        return "transactions"

    venmo = FunctionTool.from_schema(
        "mcp__appworld__venmo_show_transactions",
        "[MCP appworld] Show transactions",
        {"type": "object", "properties": {"limit": {"type": "integer"}}},
        show,
    )
    args = {"min_datetime": "2024-01-01T00:00:00Z", "limit": 20}
    provider = ScriptedProvider(
        [tool_call("mcp__appworld__venmo_show_transactions", args, "c1"), reply("done")]
    )
    session = await _core(provider, [venmo]).session("s").open()
    record = (await session.turn("go").run()).tool_calls[0]
    assert record.status == "success"
    assert seen == [args]


# --- pending launches ------------------------------------------------------------------------


async def test_pending_tool_without_completion_key_is_runtime_failure() -> None:
    attempts: list[int] = []
    key_errors: list[str] = []

    @lash.tool
    async def launch(ctx: lash.ToolContext) -> ToolCallOutput:
        """Starts external work and answers later."""
        attempts.append(ctx.attempt)
        try:
            ctx.await_event_key()
        except lash.ToolError as err:
            key_errors.append(err.code)
        return lash.tools.pending()

    provider = ScriptedProvider([tool_call("launch", {}, "c1"), reply("done")])
    session = await _core(provider, [launch], host=BareEffectHost()).session("s").open()
    record = (await asyncio.wait_for(session.turn("go").run(), WAIT_S)).tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "await_event_unsupported")
    assert key_errors == ["await_event_unsupported"]  # no completion key could be taken
    assert attempts == [1]


async def test_retry_policy_stops_after_pending_launch() -> None:
    attempts: list[int] = []
    keys: asyncio.Queue[str] = asyncio.Queue()

    @lash.tool(retry="safe", max_attempts=5, base_delay_ms=0)
    async def pending_probe(ctx: lash.ToolContext) -> ToolCallOutput:
        """Launches once; the result arrives through the wait."""
        attempts.append(ctx.attempt)
        keys.put_nowait(ctx.await_event_key())
        return lash.tools.pending()

    provider = ScriptedProvider([tool_call("pending_probe", {}, "pending-call"), reply("ok")])
    core = _core(provider, [pending_probe])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").turn_id("t1").run())
    key = await asyncio.wait_for(keys.get(), WAIT_S)
    assert key == core.await_event_key("s", "t1", WaitIdentity.tool_completion("pending-call"))
    await core.resolve_await_event(key, Resolution.ok("done later"))
    record = (await asyncio.wait_for(turn, WAIT_S)).tool_calls[0]
    assert (record.status, record.output, record.attempts) == ("success", "done later", 1)
    assert attempts == [1]


# --- hooks -----------------------------------------------------------------------------------


class AfterRecorder(lash.Plugin):
    """Records every output the ``after_tool_call`` hook sees."""

    id = "after-recorder"
    seen: list[tuple[str, ToolCallOutput]] = []

    async def after_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolCallOutput | None:
        type(self).seen.append((call.id, output))
        return None


async def test_after_tool_hook_runs_only_for_completed_tool_results() -> None:
    AfterRecorder.seen = []
    keys: asyncio.Queue[str] = asyncio.Queue()

    @lash.tool
    async def pending_probe(ctx: lash.ToolContext) -> ToolCallOutput:
        """Launches pending."""
        keys.put_nowait(ctx.await_event_key())
        return lash.tools.pending()

    provider = ScriptedProvider(
        [tool_call("pending_probe", {}, "p1"), tool_call("alpha", {}, "d1"), reply("ok")]
    )
    core = _core(provider, [pending_probe, alpha], plugins=[AfterRecorder])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").run())
    key = await asyncio.wait_for(keys.get(), WAIT_S)
    assert AfterRecorder.seen == []  # a pending launch is not a completed result
    await core.resolve_await_event(key, Resolution.ok("later"))
    result = await asyncio.wait_for(turn, WAIT_S)
    assert [c.status for c in result.tool_calls] == ["success", "success"]
    assert [call_id for call_id, _ in AfterRecorder.seen] == ["d1"]


async def test_scalar_after_tool_hook_runs_once_per_retry_attempt_before_exhaustion() -> None:
    AfterRecorder.seen = []

    @lash.tool(retry="safe", max_attempts=2, base_delay_ms=0)
    async def retry_probe(ctx: lash.ToolContext) -> str:
        """Always fails transiently."""
        raise lash.ToolError("busy", code="busy", retry_after_ms=0)

    provider = ScriptedProvider([tool_call("retry_probe", {}, "c1"), reply("ok")])
    session = await _core(provider, [retry_probe], plugins=[AfterRecorder]).session("s").open()
    record = (await session.turn("go").run()).tool_calls[0]
    seen = [(o.retryable, o.retry_after_ms) for _, o in AfterRecorder.seen]
    assert seen == [(True, 0), (True, 0)]  # each finished attempt, before exhaustion is marked
    assert (record.status, record.error_code, record.attempts) == ("failure", "busy", 2)
