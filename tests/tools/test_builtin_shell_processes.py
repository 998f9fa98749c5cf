"""``start_command`` handles, ``write_stdin`` signals and detached commands (§5.7 "shell
start/detach" rows) with our session-scoped process table standing in for lash's durable
process registry: a handle is registered and listed, stdin writes are recorded as
``signal.stdin`` records and delivered, a detached launch is an untracked terminal audit
record that survives teardown and refuses stdin.
"""

import asyncio
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.clock import ManualClock
from lash.tools import ToolContext
from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.shell import STDIN_SIGNAL_EVENT, ProcessHandle, StdinSignal
from lash.types import ToolCallOutput

from .helpers import make_ctx
from .test_builtin_shell import alive, wait_dead

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX PTY")

PY = shlex.quote(sys.executable)
READ_ONE_LINE = (
    f"{PY} -u -c 'import sys; line = sys.stdin.readline(); print(\"got:\" + line.strip())'"
)
CLOCK_START = 1_700_000_000_000


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    clock = ManualClock(CLOCK_START)
    async with workspace_tools(
        tmp_path, default_shell="/bin/sh", max_output_bytes=1000, clock=clock
    ) as ws:
        yield ws


async def call(
    tools: WorkspaceTools,
    name: str,
    *,
    session_id: str = "s1",
    call_id: str = "c1",
    ctx: ToolContext | None = None,
    **args: Any,
) -> ToolCallOutput:
    t = tools.get(name)
    assert t is not None
    return await t.invoke(ctx or make_ctx(session_id=session_id, call_id=call_id), args)


async def output_until(
    tools: WorkspaceTools, process_id: str, first: dict[str, Any], wanted: str
) -> str:
    """The output of ``first`` plus empty-write polls until ``wanted`` shows up (load-proof)."""
    seen = first["output"]
    for _ in range(200):
        if wanted in seen:
            break
        more = await call(tools, "write_stdin", process_id=process_id, yield_time_ms=50)
        assert more.status == "success", more
        seen += more.payload["output"]
    return seen


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- §5.7 shell start/detach rows -----------------------------------------------------------


async def test_start_command_registers_process_handle(tools: WorkspaceTools) -> None:
    out = await call(
        tools, "start_command", call_id="shell-call-1", cmd="sleep 30", yield_time_ms=0
    )
    assert out.status == "success"
    handle = out.payload
    assert handle["__handle__"] == "process"
    assert handle["id"] == handle["process_id"] == "shell-call-1"
    assert handle["status"] == "running"
    assert handle["done"] is False and handle["running"] is True
    assert handle["started_at"] == CLOCK_START

    listed = tools.processes.handles("s1")
    assert listed == [
        ProcessHandle(
            process_id="shell-call-1",
            session_id="s1",
            command="sleep 30",
            status="running",
            tracked=True,
            pid=handle["pid"],
            pgid=handle["pid"],
            started_at=CLOCK_START,
        )
    ]
    assert listed[0].kind == "shell" and not listed[0].terminal
    assert tools.processes.get("s1", "shell-call-1") == listed[0]
    assert tools.processes.handles("other-session") == []


async def test_write_stdin_emits_process_signal(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", call_id="shell-call-1", cmd="sleep 30", yield_time_ms=0)
    out = await call(
        tools,
        "write_stdin",
        call_id="write-call-1",
        process_id="shell-call-1",
        chars="hello\n",
        close_stdin=True,
        yield_time_ms=0,
    )
    assert out.status == "success"
    assert out.payload["process_id"] == "shell-call-1"
    assert out.payload["sequence"] == 1
    signals = tools.processes.signals("s1", "shell-call-1")
    assert signals == [StdinSignal(sequence=1, chars="hello\n", close_stdin=True)]
    assert signals[0].event_type == STDIN_SIGNAL_EVENT == "signal.stdin"


async def test_start_command_process_consumes_stdin_signals(tools: WorkspaceTools) -> None:
    started = await call(tools, "start_command", call_id="p", cmd=READ_ONE_LINE, yield_time_ms=0)
    assert started.payload["running"] is True or started.payload["status"] == "completed"
    out = await call(tools, "write_stdin", process_id="p", chars="hello\n", yield_time_ms=20_000)
    assert out.status == "success"
    assert out.payload["status"] == "completed" and out.payload["exit_code"] == 0
    assert "got:hello" in out.payload["output"]


async def test_start_command_process_can_close_stdin_from_signal(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", call_id="p", cmd="cat", yield_time_ms=0)
    out = await call(
        tools, "write_stdin", process_id="p", chars="hello", close_stdin=True, yield_time_ms=20_000
    )
    assert out.status == "success"
    assert out.payload["status"] == "completed" and out.payload["exit_code"] == 0
    assert "hello" in out.payload["output"]
    assert len(tools.processes) == 0  # an exited process leaves the table


async def test_start_command_process_nonzero_exit_returns_result_data(
    tools: WorkspaceTools,
) -> None:
    out = await call(tools, "start_command", cmd="exit 7", yield_time_ms=20_000)
    assert out.status == "success"
    assert out.payload["status"] == "completed" and out.payload["done"] is True
    assert out.payload["exit_code"] == 7
    assert out.payload.get("error") is None


async def test_start_command_process_reports_full_output_path_when_token_truncated(
    tools: WorkspaceTools,
) -> None:
    cmd = f"{PY} -c 'print(\"segment \" * 5000)'"
    out = await call(tools, "start_command", cmd=cmd, max_output_tokens=24, yield_time_ms=20_000)
    assert out.status == "success" and out.payload["exit_code"] == 0
    assert "bytes omitted" in out.payload["output"]
    full = (tools.workspace.root / out.payload["full_output_path"]).read_text()
    assert "segment segment" in full
    assert full.count("segment") == 5000


async def test_start_command_process_completes_short_lived_commands(
    tools: WorkspaceTools,
) -> None:
    out = await call(tools, "start_command", cmd="echo quick; exit 4", yield_time_ms=20_000)
    assert out.status == "success"
    assert out.payload["status"] == "completed" and out.payload["exit_code"] == 4
    assert out.payload["output"] == "quick\n"
    assert tools.processes.handles("s1") == []  # finished within the call: nothing left


async def test_start_command_cancel_token_kills_running_child(tools: WorkspaceTools) -> None:
    ctx = make_ctx(call_id="shell-cancel")
    task = asyncio.create_task(
        call(tools, "start_command", ctx=ctx, cmd="sleep 30", yield_time_ms=30_000)
    )
    for _ in range(500):
        if tools.processes.handles("s1"):
            break
        await asyncio.sleep(0.01)
    (handle,) = tools.processes.handles("s1")
    assert handle.pid is not None
    ctx.cancelled.set()
    out = await asyncio.wait_for(task, timeout=20)
    assert out.status == "cancelled" and "tool call cancelled" in str(out.payload)
    assert await wait_dead(handle.pid)
    assert tools.processes.handles("s1") == []


async def test_spawn_detached_is_untracked_and_survives_teardown(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", call_id="d1", cmd="sleep 30", detach=True)
    assert out.status == "success"
    pid, pgid = out.payload["pid"], out.payload["pgid"]
    try:
        assert len(tools.processes) == 0  # never tracked
        assert pgid == pid and os.getpgid(pid) == pid and os.getsid(pid) == pid
        assert os.getsid(pid) != os.getsid(0)  # outside the worker's session
        with pytest.raises(ChildProcessError):  # and not our child: nothing to reap or kill
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
        assert alive(pid)
        await tools.aclose()
        await tools.close_session("s1")
        assert alive(pid)  # teardown never reaches a detached command
    finally:
        kill_group(pgid)


async def test_start_command_detach_records_terminal_audit_fact(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", call_id="detach-call-1", cmd="sleep 30", detach=True)
    assert out.status == "success"
    value = out.payload
    try:
        assert value["__handle__"] == "process"
        assert value["id"] == value["process_id"] == "detach-call-1"
        assert value["status"] == "detached"
        assert value["done"] is True and value["running"] is False
        assert value["command"] == "sleep 30"
        assert isinstance(value["pid"], int) and isinstance(value["pgid"], int)
        assert value["started_at"] == CLOCK_START
        assert "exit_code" not in value

        (record,) = tools.processes.handles("s1")
        assert record == ProcessHandle(
            process_id="detach-call-1",
            session_id="s1",
            command="sleep 30",
            status="detached",
            tracked=False,
            pid=value["pid"],
            pgid=value["pgid"],
            started_at=CLOCK_START,
        )
        assert record.terminal  # a terminal audit fact from birth, never a running claim
    finally:
        kill_group(value["pgid"])


async def test_write_stdin_rejects_terminal_detached_target(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", call_id="detached-1", cmd="sleep 30", detach=True)
    try:
        refused = await call(tools, "write_stdin", process_id="detached-1", chars="hello\n")
        assert refused.status == "failure" and refused.error_code == "process_detached"
        assert "detached" in str(refused.payload)
        assert tools.processes.signals("s1", "detached-1") == []
    finally:
        kill_group(out.payload["pgid"])


def test_start_command_contract_uses_process_handles(tmp_path: Path) -> None:
    spec = workspace_tools(tmp_path).get("start_command")
    assert spec is not None
    properties = spec.spec.parameters["properties"]
    assert "poll_ms" not in properties and "timeout_ms" not in properties
    description = spec.spec.description
    assert "process handle" in description and "__handle__" in description
    assert "write_stdin" in description  # how the handle is driven without process tools
    assert "detach: true" in description and "will not track, signal or stop it" in description


# --- our own handle-model behaviour ---------------------------------------------------------


async def test_start_command_and_write_stdin_round_trip(tools: WorkspaceTools) -> None:
    started = await call(
        tools, "start_command", call_id="p1", cmd="echo ready; while read l; do echo got:$l; done"
    )
    handle = started.payload
    assert handle["__handle__"] == "process" and handle["process_id"] == "p1"
    assert handle["status"] == "running" and handle["running"] is True
    assert await output_until(tools, "p1", handle, "ready\n") == "ready\n"
    assert len(tools.processes) == 1

    reply = await call(tools, "write_stdin", process_id="p1", chars="hello\n", yield_time_ms=50)
    assert reply.payload["sequence"] == 1
    assert reply.payload["running"] is True
    assert await output_until(tools, "p1", reply.payload, "got:hello\n") == "got:hello\n"

    final = await call(
        tools, "write_stdin", process_id="p1", close_stdin=True, yield_time_ms=20_000
    )
    assert final.payload["status"] == "completed" and final.payload["exit_code"] == 0
    assert final.payload["sequence"] >= 2  # every write, empty polls included, is numbered
    assert final.payload["done"] is True and final.payload["output"] == ""
    assert len(tools.processes) == 0


async def test_processes_are_session_scoped(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", session_id="a", call_id="p", cmd="cat", yield_time_ms=0)
    other = await call(tools, "write_stdin", session_id="b", process_id="p", chars="x")
    assert other.error_code == "process_not_found"
    assert tools.processes.handles("b") == []
    await tools.close_session("a")
    assert len(tools.processes) == 0 and tools.processes.handles("a") == []


async def test_write_stdin_to_an_unknown_process_is_refused(tools: WorkspaceTools) -> None:
    unknown = await call(tools, "write_stdin", process_id="ghost", chars="x")
    assert unknown.error_code == "process_not_found"


async def test_teardown_kills_tracked_processes(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", cmd="sleep 30", yield_time_ms=0)
    pid = out.payload["pid"]
    assert alive(pid)
    await tools.aclose()
    assert await wait_dead(pid)
    assert len(tools.processes) == 0


async def test_writing_after_stdin_closed_fails(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", call_id="p", cmd="sleep 30", yield_time_ms=0)
    await call(tools, "write_stdin", process_id="p", close_stdin=True, yield_time_ms=0)
    out = await call(tools, "write_stdin", process_id="p", chars="late", yield_time_ms=0)
    assert out.error_code == "stdin_closed"


async def test_write_stdin_cancel_returns_without_killing_the_process(
    tools: WorkspaceTools,
) -> None:
    await call(tools, "start_command", call_id="p", cmd="sleep 30", yield_time_ms=0)
    ctx = make_ctx(call_id="w")
    task = asyncio.create_task(
        call(tools, "write_stdin", ctx=ctx, process_id="p", yield_time_ms=30_000)
    )
    await asyncio.sleep(0)
    ctx.cancelled.set()
    out = await asyncio.wait_for(task, timeout=20)
    assert out.status == "cancelled"
    (handle,) = tools.processes.handles("s1")  # the model holds the handle: it keeps running
    assert handle.status == "running" and handle.pid is not None and alive(handle.pid)


async def test_detached_launch_failure_is_a_clear_error(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", cmd="true", shell="/nonexistent/shell", detach=True)
    assert out.status == "failure" and out.error_code == "shell_unavailable"
    assert tools.processes.handles("s1") == []
