"""``start_command`` runs in a PTY; teardown kills tracked PTY children (processes-tools §3.7)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.types import ToolCallOutput

from .helpers import make_ctx

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX PTY")


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    async with workspace_tools(tmp_path, default_shell="/bin/sh", max_output_bytes=4000) as ws:
        yield ws


async def call(tools: WorkspaceTools, name: str, *, call_id: str = "c1", **args: Any) -> Any:
    t = tools.get(name)
    assert t is not None
    out: ToolCallOutput = await t.invoke(make_ctx(session_id="s1", call_id=call_id), args)
    assert out.status == "success", out
    return out.payload


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


async def _wait_dead(pid: int) -> bool:
    for _ in range(200):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_start_command_runs_in_a_pty(tools: WorkspaceTools) -> None:
    out = await call(
        tools,
        "start_command",
        cmd="test -t 0 && test -t 1 && test -t 2 && echo in-a-pty; tty",
        yield_time_ms=20_000,
    )
    assert out["status"] == "completed" and out["exit_code"] == 0
    first, second = out["output"].splitlines()
    assert first == "in-a-pty"
    assert second.startswith("/dev/pts/")


async def test_start_command_pty_child_is_a_session_leader(tools: WorkspaceTools) -> None:
    out = await call(tools, "start_command", cmd="sleep 30", yield_time_ms=0)
    pid = out["pid"]
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    await tools.aclose()
    assert await _wait_dead(pid)


async def test_pty_write_stdin_does_not_echo_and_partial_line_eof_delivers(
    tools: WorkspaceTools,
) -> None:
    await call(tools, "start_command", call_id="p", cmd="cat", yield_time_ms=0)
    first = await call(tools, "write_stdin", process_id="p", chars="one\n", yield_time_ms=50)
    seen = first["output"]
    for _ in range(200):  # poll until cat answered, however loaded the machine is
        if "one\n" in seen:
            break
        seen += (await call(tools, "write_stdin", process_id="p", yield_time_ms=50))["output"]
    assert seen == "one\n"  # once: the terminal does not echo the input
    last = await call(
        tools, "write_stdin", process_id="p", chars="tail", close_stdin=True, yield_time_ms=20_000
    )
    assert last["status"] == "completed" and last["exit_code"] == 0
    assert last["output"] == "tail"


async def test_shell_runtime_teardown_kills_tracked_pty_children(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    out = await call(
        tools,
        "start_command",
        cmd="sleep 30 & echo $! > child.pid; wait",
        yield_time_ms=0,
    )
    leader = out["pid"]
    pid_file = tmp_path / "child.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.01)
    child = int(pid_file.read_text())
    assert _alive(leader) and _alive(child)
    await tools.aclose()
    assert await _wait_dead(leader)
    assert await _wait_dead(child)  # the whole tracked group goes, not just the leader
    assert len(tools.processes) == 0
