"""A shell tool that cannot start its command leaks nothing: NUL bytes are refused before any
log or descriptor is opened, and any other spawn failure closes the descriptors and removes
the log file before it propagates."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.shell import OUTPUT_DIR
from lash.types import ToolCallOutput

from .helpers import make_ctx

pytestmark = pytest.mark.skipif(
    os.name != "posix" or not os.path.isdir("/proc/self/fd"), reason="POSIX, /proc"
)


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    async with workspace_tools(tmp_path, default_shell="/bin/sh") as ws:
        yield ws


async def call(tools: WorkspaceTools, name: str, call_id: str, **args: Any) -> ToolCallOutput:
    t = tools.get(name)
    assert t is not None
    return await t.invoke(make_ctx(session_id="s1", call_id=call_id), args)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def logs(root: Path) -> list[str]:
    directory = root / OUTPUT_DIR
    return sorted(os.listdir(directory)) if directory.is_dir() else []


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("exec_command", {"cmd": "echo a\x00b"}),
        ("start_command", {"cmd": "echo a\x00b", "yield_time_ms": 0}),
        ("start_command", {"cmd": "echo a\x00b", "detach": True}),
        ("exec_command", {"cmd": "echo ok", "shell": "/bin/sh\x00"}),
        ("start_command", {"cmd": "echo ok", "shell": "/bin/sh\x00", "yield_time_ms": 0}),
    ],
)
async def test_nul_byte_is_a_clear_tool_error_and_leaks_nothing(
    tools: WorkspaceTools, tmp_path: Path, name: str, args: dict[str, Any]
) -> None:
    before = open_fds()
    for i in range(3):
        out = await call(tools, name, f"c{i}", **args)
        assert out.status == "failure"
        assert out.error_code == "invalid_tool_args"
        assert "NUL" in str(out.payload)
    assert open_fds() == before
    assert logs(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("exec_command", {"cmd": "echo ok"}),
        ("start_command", {"cmd": "echo ok", "yield_time_ms": 0}),
        ("start_command", {"cmd": "echo ok", "detach": True}),
    ],
)
async def test_non_oserror_spawn_failure_cleans_up(
    tools: WorkspaceTools,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    args: dict[str, Any],
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("spawn exploded")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", broken)
    before = open_fds()
    out = await call(tools, name, "c1", **args)
    assert out.status == "failure"
    assert "spawn exploded" in str(out.payload)
    assert open_fds() == before
    assert logs(tmp_path) == []


async def test_oserror_spawn_failure_is_shell_unavailable(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    before = open_fds()
    out = await call(tools, "start_command", "c1", cmd="echo ok", shell="/no/such/shell")
    assert out.status == "failure"
    assert out.error_code == "shell_unavailable"
    assert open_fds() == before
    assert logs(tmp_path) == []
