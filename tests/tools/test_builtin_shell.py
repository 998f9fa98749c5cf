"""``exec_command`` (processes-tools §3.7, §5.7 "shell exec" rows) and the shell tool contracts.

Tests named ``test_<row>`` cover the spec row of that name; the rest cover behaviour of our
own (workspace confinement, argument validation, output files).
"""

import asyncio
import os
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lash.tools import ToolContext
from lash.tools.builtin import WorkspaceTools, workspace_tools
from lash.tools.builtin.shell import clean_terminal_output
from lash.types import ToolCallOutput

from .helpers import make_ctx

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX shells and process groups")

PY = shlex.quote(sys.executable)


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[WorkspaceTools]:
    async with workspace_tools(tmp_path, default_shell="/bin/sh", max_output_bytes=1000) as ws:
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
    """Poll until ``pid`` is gone (generous bound: only a failing test waits it out)."""
    for _ in range(250):
        if not alive(pid):
            return True
        await asyncio.sleep(0.02)
    return False


async def wait_for_pid_file(path: Path) -> int:
    for _ in range(500):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} was never written")


def spec_of(tools: WorkspaceTools, name: str) -> Any:
    t = tools.get(name)
    assert t is not None
    return t.spec


# --- §5.7 shell exec rows -----------------------------------------------------------------


async def test_exec_command_returns_exit_code_when_command_finishes(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="echo hello")
    assert out.status == "success"
    payload = out.payload
    assert payload["status"] == "completed"
    assert payload["done"] is True and payload["running"] is False
    assert payload["exit_code"] == 0
    assert isinstance(payload["wall_time_seconds"], float)
    assert payload["output"] == "hello\n"
    assert "session_id" not in payload


async def test_exec_command_waits_for_process_exit(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="sleep 0.05; echo done > marker; echo done")
    assert out.status == "success" and out.payload["status"] == "completed"
    assert out.payload["exit_code"] == 0 and out.payload["output"] == "done\n"
    # the call returned only after the command's last step ran
    assert (tools.workspace.root / "marker").read_text() == "done\n"


async def test_exec_command_runs_without_a_tty(tools: WorkspaceTools) -> None:
    cmd = "if [ -t 0 ] || [ -t 1 ] || [ -t 2 ]; then echo tty; exit 1; else echo no-tty; fi"
    out = await call(tools, "exec_command", cmd=cmd)
    assert out.status == "success"
    assert out.payload["exit_code"] == 0 and out.payload["output"] == "no-tty\n"


async def test_exec_command_closes_stdin(tools: WorkspaceTools) -> None:
    cmd = f"{PY} -c 'import sys; print(sys.stdin.read() == \"\")'"
    out = await call(tools, "exec_command", cmd=cmd, timeout_ms=30_000)
    assert out.status == "success"
    assert out.payload["output"].strip() == "True"


async def test_exec_command_captures_stdout_and_stderr(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="echo stdout-line; echo stderr-line >&2")
    assert out.status == "success"
    assert out.payload["output"] == "stdout-line\nstderr-line\n"


async def test_exec_command_honors_workdir(tools: WorkspaceTools) -> None:
    root = tools.workspace.root
    (root / "sub").mkdir()
    default = await call(tools, "exec_command", cmd="pwd")
    assert default.payload["output"].strip() == str(root)
    sub = await call(tools, "exec_command", cmd="pwd", workdir="sub")
    assert sub.payload["output"].strip() == str(root / "sub")
    escape = await call(tools, "exec_command", cmd="pwd", workdir="..")
    assert escape.error_code == "path_outside_workspace"
    missing = await call(tools, "exec_command", cmd="pwd", workdir="nope")
    assert missing.status == "failure"


async def test_exec_command_does_not_add_strict_pipeline_semantics(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="false | cat")
    assert out.status == "success"
    assert out.payload["exit_code"] == 0
    assert out.payload.get("error") is None


async def test_exec_command_head_style_pipeline_is_not_failed_by_sigpipe(
    tools: WorkspaceTools,
) -> None:
    out = await call(tools, "exec_command", cmd="yes line | head -n 3")
    assert out.status == "success"
    assert out.payload["exit_code"] == 0
    assert out.payload["output"] == "line\nline\nline\n"


async def test_exec_command_nonzero_exit_returns_result_data(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="echo nope; exit 7")
    assert out.status == "success"  # a non-zero exit is data, not a tool failure
    assert out.payload["exit_code"] == 7
    assert out.payload.get("error") is None
    assert out.payload["output"] == "nope\n"


async def test_exec_command_timeout_kills_and_fails_running_process(
    tools: WorkspaceTools,
) -> None:
    out = await call(
        tools, "exec_command", cmd="echo $$ > leader.pid; printf started; sleep 30", timeout_ms=500
    )
    assert out.status == "failure" and out.error_code == "shell_timeout"
    payload = out.payload
    assert payload["status"] == "timed_out" and payload["timed_out"] is True
    assert payload["done"] is True and payload["running"] is False
    assert "exit_code" not in payload and "session_id" not in payload
    assert "started" in payload["output"]
    assert await wait_dead(int((tools.workspace.root / "leader.pid").read_text()))


async def test_exec_command_timeout_kills_process_group_children(tools: WorkspaceTools) -> None:
    out = await call(
        tools, "exec_command", cmd="sleep 30 & echo $!; echo started; wait", timeout_ms=500
    )
    assert out.status == "failure" and out.error_code == "shell_timeout"
    assert out.payload["status"] == "timed_out"
    child = int(out.payload["output"].split()[0])
    assert await wait_dead(child)  # the backgrounded child went with the group


async def test_exec_command_cancel_token_kills_running_child(tools: WorkspaceTools) -> None:
    ctx = make_ctx(call_id="cancel-me")
    task = asyncio.create_task(
        call(tools, "exec_command", ctx=ctx, cmd="echo $$ > pid; sleep 30 & wait")
    )
    pid = await wait_for_pid_file(tools.workspace.root / "pid")
    ctx.cancelled.set()
    out = await asyncio.wait_for(task, timeout=20)  # returns on the token, not after 30 s
    assert out.status == "cancelled" and out.error_code == "cancelled"
    assert "tool call cancelled" in str(out.payload)
    assert await wait_dead(pid)


async def test_exec_task_cancellation_kills_the_child(tools: WorkspaceTools) -> None:
    task = asyncio.create_task(call(tools, "exec_command", cmd="echo $$ > pid; sleep 30"))
    pid = await wait_for_pid_file(tools.workspace.root / "pid")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_dead(pid)


async def test_exec_command_reports_full_output_path_when_token_truncated(
    tmp_path: Path,
) -> None:
    async with workspace_tools(tmp_path, default_shell="/bin/sh") as tools:
        cmd = f"{PY} -c 'print(\"hello \" * 4000)'"
        out = await call(tools, "exec_command", cmd=cmd, max_output_tokens=16, timeout_ms=30_000)
    assert out.status == "success"
    payload = out.payload
    assert "bytes omitted" in payload["output"]
    assert len(payload["output"].encode()) < 200  # 16 tokens ≈ 64 bytes plus the marker
    full = (tmp_path / payload["full_output_path"]).read_text()
    assert full.startswith("hello hello") and len(full) == 6 * 4000 + 1
    assert payload["original_token_count"] == len(full) // 4


async def test_exec_command_spills_full_output_when_buffer_overflows(
    tools: WorkspaceTools,
) -> None:
    size = 512_000 + 8192
    cmd = f"{PY} -c 'import sys; sys.stdout.write(\"x\" * {size})'"
    out = await call(tools, "exec_command", cmd=cmd, timeout_ms=30_000)
    assert out.status == "success" and out.payload["exit_code"] == 0
    assert "bytes omitted" in out.payload["output"]
    full = tools.workspace.root / out.payload["full_output_path"]
    assert full.stat().st_size == size  # nothing was dropped on the way to the file
    assert full.stat().st_mode & 0o777 == 0o600


async def test_exec_command_reports_full_output_path_for_large_output(tmp_path: Path) -> None:
    size = 50 * 1024 + 4096
    async with workspace_tools(tmp_path, default_shell="/bin/sh") as tools:
        cmd = f"{PY} -c 'import sys; sys.stdout.write(\"x\" * {size})'"
        out = await call(tools, "exec_command", cmd=cmd, timeout_ms=30_000)
    assert out.status == "success"
    assert isinstance(out.payload["output"], str)
    path = out.payload["full_output_path"]
    assert path.startswith(".lash/outputs/exec_command-")
    assert (tmp_path / path).stat().st_size == size


async def test_exec_command_defaults_to_non_login_shell(
    tools: WorkspaceTools, tmp_path: Path
) -> None:
    assert spec_of(tools, "exec_command").parameters["properties"]["login"]["default"] is False
    fake = tmp_path.parent / f"{tmp_path.name}-argshell"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$1"\n')
    fake.chmod(0o755)
    default = await call(tools, "exec_command", cmd="true", shell=str(fake))
    assert default.payload["output"] == "-c\n"  # not "-lc"
    login = await call(tools, "exec_command", cmd="true", shell=str(fake), login=True)
    assert login.payload["output"] == "-lc\n"


async def test_exec_command_defaults_to_generous_timeout(tools: WorkspaceTools) -> None:
    # the documented default is asserted, not waited for
    schema = spec_of(tools, "exec_command").parameters["properties"]["timeout_ms"]
    assert schema["default"] == 600_000
    assert "timeout_ms" not in spec_of(tools, "exec_command").parameters.get("required", [])


def test_clean_terminal_output_strips_ansi_and_controls() -> None:
    raw = "\x1b[?2004h\x1b[31mred\x1b[0m\r\nab\x08c\x1b]0;title\x07\x00"
    assert clean_terminal_output(raw) == "red\nac"
    rewritten = "progress 10%\rprogress 100%\nbell\x07\x1b]0;title\x07done"
    assert clean_terminal_output(rewritten) == "progress 100%\nbelldone"
    assert clean_terminal_output("a\n\x08b") == "a\nb"  # a backspace never eats a newline


# --- §5.7 shell contract rows ---------------------------------------------------------------


def test_shell_definitions_are_compact_and_non_empty(tmp_path: Path) -> None:
    tools = workspace_tools(tmp_path)
    shell = [t.spec for t in tools if t.spec.name in {"exec_command", "start_command"}]
    shell.append(spec_of(tools, "write_stdin"))
    assert [s.name for s in shell] == ["exec_command", "start_command", "write_stdin"]
    for spec in shell:
        assert spec.description.strip()
        assert len(spec.description) < 1500
        assert spec.parameters["additionalProperties"] is False


def test_shell_definitions_document_distinct_result_shapes(tmp_path: Path) -> None:
    tools = workspace_tools(tmp_path)
    assert "exit_code" in spec_of(tools, "exec_command").description
    assert "__handle__" in spec_of(tools, "start_command").description
    assert "sequence" in spec_of(tools, "write_stdin").description


def test_shell_exec_contract_documents_nonzero_exit_as_result_data(tmp_path: Path) -> None:
    description = spec_of(workspace_tools(tmp_path), "exec_command").description
    assert "nonzero exit code is ordinary result data" in description
    assert "timed-out command is killed" in description and "tool failure" in description


def test_exec_command_timeout_schema_documents_default(tmp_path: Path) -> None:
    spec = spec_of(workspace_tools(tmp_path), "exec_command")
    assert spec.parameters["properties"]["timeout_ms"]["default"] == 600_000
    assert "time out after 600000 ms by default" in spec.description
    custom = spec_of(workspace_tools(tmp_path, default_timeout_ms=5000), "exec_command")
    assert custom.parameters["properties"]["timeout_ms"]["default"] == 5000
    assert "time out after 5000 ms by default" in custom.description


# --- our own exec behaviour -----------------------------------------------------------------


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


async def test_small_outputs_leave_no_files(tools: WorkspaceTools) -> None:
    await call(tools, "exec_command", cmd="echo hi")
    outputs = tools.workspace.root / ".lash" / "outputs"
    assert list(outputs.iterdir()) == []


async def test_exec_validates_arguments(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="")
    assert out.error_code == "invalid_tool_args"
    out = await call(tools, "exec_command", cmd="true", timeout_ms=0)
    assert out.error_code == "invalid_tool_args"


async def test_missing_shell_is_a_clear_failure(tools: WorkspaceTools) -> None:
    out = await call(tools, "exec_command", cmd="true", shell="/nonexistent/shell")
    assert out.error_code == "shell_unavailable"
