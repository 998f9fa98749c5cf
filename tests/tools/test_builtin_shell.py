"""Built-in shell tools: exec_command, start_command and write_stdin (real subprocesses)."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.shell import clean_terminal_output
from lash.types import ToolCallOutput

from .helpers import make_ctx

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX shells and process groups")


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    async with workspace_tools(tmp_path, default_shell="/bin/sh", max_output_bytes=1000) as ws:
        yield ws


async def call(
    tools: WorkspaceTools, name: str, *, session_id: str = "s1", call_id: str = "c1", **args: Any
) -> ToolCallOutput:
    t = tools.get(name)
    assert t is not None
    return await t.invoke(make_ctx(session_id=session_id, call_id=call_id), args)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a killed-but-unreaped zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


async def wait_dead(pid: int) -> bool:
    for _ in range(100):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


# --- exec_command -----------------------------------------------------------------------------


async def test_exec_returns_output_and_exit_code(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="echo out; echo err 1>&2; exit 3")
    assert out.status == "success"  # a non-zero exit is data
    assert out.payload["exit_code"] == 3
    assert out.payload["output"] == "out\nerr\n"
    assert out.payload["status"] == "completed"
    assert out.payload["done"] is True and out.payload["running"] is False
    assert "full_output_path" not in out.payload


async def test_exec_runs_in_workspace_and_workdir(tools: WorkspaceTools) -> None:
    root = tools.workspace.root
    (root / "sub").mkdir()
    out = await call(tools, "exec_command", cmd="pwd")
    assert out.payload["output"].strip() == str(root)
    sub = await call(tools, "exec_command", cmd="pwd", workdir="sub")
    assert sub.payload["output"].strip() == str(root / "sub")
    escape = await call(tools, "exec_command", cmd="pwd", workdir="..")
    assert escape.error_code == "path_outside_workspace"


async def test_exec_closes_stdin_and_has_no_tty(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="cat; test -t 0 || echo no-tty")
    assert out.payload["output"] == "no-tty\n"


async def test_exec_timeout_kills_the_process_group(tools: WorkspaceTools) -> None:
    out = await call(
        tools, "exec_command", cmd="sleep 30 & echo $!; echo started; wait", timeout_ms=300
    )
    assert out.status == "failure" and out.error_code == "shell_timeout"
    assert out.payload["timed_out"] is True and out.payload["status"] == "timed_out"
    assert "started" in out.payload["output"]
    child = int(out.payload["output"].split()[0])
    assert await wait_dead(child)


async def test_exec_does_not_wait_for_background_children(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="sleep 5 & echo bg=$!", timeout_ms=3000)
    assert out.status == "success" and out.payload["exit_code"] == 0
    pid = int(out.payload["output"].strip().split("=")[1])
    os.kill(pid, 9)


async def test_exec_caps_output_and_keeps_the_full_output(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="seq 1 2000")
    payload = out.payload
    assert payload["exit_code"] == 0
    assert payload["output"].startswith("1\n2\n")
    assert payload["output"].rstrip().endswith("2000")
    assert "bytes omitted" in payload["output"]
    assert len(payload["output"].encode()) < 1200
    full = tools.workspace.root / payload["full_output_path"]
    assert payload["full_output_path"].startswith(".lash/outputs/")
    assert full.read_text() == "".join(f"{i}\n" for i in range(1, 2001))
    assert payload["original_token_count"] == len(full.read_bytes()) // 4


async def test_exec_max_output_tokens_tightens_the_cap(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="seq 1 200", max_output_tokens=20)
    assert "bytes omitted" in out.payload["output"]
    assert "full_output_path" in out.payload


async def test_small_outputs_leave_no_files(tools: WorkspaceTools) -> None:
    await call(tools, "exec_command", cmd="echo hi")
    outputs = tools.workspace.root / ".lash" / "outputs"
    assert list(outputs.iterdir()) == []


async def test_exec_cancellation_kills_the_child(tools: WorkspaceTools) -> None:
    marker = tools.workspace.root / "pid"
    task = asyncio.create_task(call(tools, "exec_command", cmd=f"echo $$ > {marker}; sleep 30"))
    for _ in range(200):
        if marker.exists() and marker.read_text().strip():
            break
        await asyncio.sleep(0.01)
    pid = int(marker.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_dead(pid)


async def test_exec_validates_arguments(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="")
    assert out.error_code == "invalid_tool_args"
    out = await call(tools, "exec_command", cmd="true", timeout_ms=0)
    assert out.error_code == "invalid_tool_args"


async def test_missing_shell_is_a_clear_failure(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="true", shell="/nonexistent/shell")
    assert out.error_code == "shell_unavailable"


def test_clean_terminal_output_strips_ansi_and_controls() -> None:
    raw = "\x1b[31mred\x1b[0m\r\nprogress 10%\rprogress 100%\nbell\x07\x1b]0;title\x07done"
    assert clean_terminal_output(raw) == "red\nprogress 100%\nbelldone"


# --- start_command / write_stdin -------------------------------------------------------------


async def test_start_command_and_write_stdin_round_trip(tools: WorkspaceTools) -> None:
    started = await call(
        tools, "start_command", call_id="p1", cmd="echo ready; while read l; do echo got:$l; done"
    )
    handle = started.payload
    assert handle["__handle__"] == "process" and handle["process_id"] == "p1"
    assert handle["status"] == "running" and handle["running"] is True
    assert handle["output"] == "ready\n"
    assert len(tools.processes) == 1

    reply = await call(tools, "write_stdin", process_id="p1", chars="hello\n", yield_time_ms=500)
    assert reply.payload["sequence"] == 1
    assert reply.payload["output"] == "got:hello\n"
    assert reply.payload["running"] is True

    final = await call(tools, "write_stdin", process_id="p1", close_stdin=True, yield_time_ms=3000)
    assert final.payload["status"] == "exited" and final.payload["exit_code"] == 0
    assert final.payload["done"] is True and final.payload["output"] == ""
    assert len(tools.processes) == 0


async def test_short_lived_start_command_completes(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", cmd="echo quick; exit 4", yield_time_ms=3000)
    assert out.payload["status"] == "exited" and out.payload["exit_code"] == 4
    assert out.payload["output"] == "quick\n"


async def test_processes_are_session_scoped(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", session_id="a", call_id="p", cmd="cat", yield_time_ms=0)
    other = await call(tools, "write_stdin", session_id="b", process_id="p", chars="x")
    assert other.error_code == "process_not_found"
    await tools.close_session("a")
    assert len(tools.processes) == 0


async def test_unknown_and_detached_targets_are_rejected(tools: WorkspaceTools) -> None:
    unknown = await call(tools, "write_stdin", process_id="ghost", chars="x")
    assert unknown.error_code == "process_not_found"
    detached = await call(tools, "start_command", call_id="d1", cmd="sleep 5", detach=True)
    assert detached.payload["status"] == "detached" and detached.payload["done"] is True
    pid = detached.payload["pid"]
    assert isinstance(pid, int) and alive(pid)
    refused = await call(tools, "write_stdin", process_id="d1", chars="x")
    assert refused.error_code == "process_detached"
    await tools.aclose()
    assert alive(pid)  # detached commands survive teardown
    os.kill(pid, 9)


async def test_teardown_kills_tracked_processes(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", cmd="sleep 30", yield_time_ms=0)
    pid = out.payload["pid"]
    assert alive(pid)
    await tools.aclose()
    assert await wait_dead(pid)
    assert len(tools.processes) == 0


async def test_writing_after_stdin_closed_fails(tools: WorkspaceTools) -> None:
    await call(tools, "start_command", call_id="p", cmd="sleep 5", yield_time_ms=0)
    await call(tools, "write_stdin", process_id="p", close_stdin=True, yield_time_ms=0)
    out = await call(tools, "write_stdin", process_id="p", chars="late", yield_time_ms=0)
    assert out.error_code == "stdin_closed"
