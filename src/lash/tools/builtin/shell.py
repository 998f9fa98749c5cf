"""Shell tools: one-shot ``exec_command`` and long-running ``start_command`` + ``write_stdin``.

Every command runs in its own process group (so a timeout, a cancel or teardown kills its
children too) with output redirected to a log file under ``<root>/.lash/outputs/``. Reading
from a file instead of a pipe means a backgrounded grandchild can never keep a call waiting,
and the full output of a large run survives for ``read_file``; the model sees a capped
window (head and tail) plus ``full_output_path``. A non-zero exit is data, not a failure; a
timeout is the failure ``shell_timeout``; a call whose ``ctx.cancelled`` fires kills the
command and ends ``cancelled``.

``start_command`` processes run in a pseudo-terminal (Linux/POSIX ``os.openpty``; echo off)
as session leaders, so interactive programs see a terminal; a reader copies the PTY's output
into the same kind of log file. Each one is registered as a :class:`ProcessHandle` in the
:class:`ProcessTable` owned by the :class:`~lash.tools.builtin.WorkspaceTools` that made it,
scoped to the calling session; ``write_stdin`` records every stdin signal it delivers;
``aclose()`` kills each tracked process group and closes its PTY.

A detached command (``detach: true``) is launched through a short-lived launcher that starts
it in a new session (its own process group, outside the worker's) and exits, so lash keeps
no child, PTY or table entry for it: the table keeps only a terminal audit record, teardown
never reaches it and ``write_stdin`` refuses it. There is no durable process registry yet:
handles live as long as this worker.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import secrets
import signal
import sys
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from lash.clock import Clock, SystemClock
from lash.tools._outputs import failure
from lash.tools.base import ToolContext, ToolError
from lash.tools.builtin._workspace import Workspace
from lash.tools.decorator import FunctionTool, tool
from lash.types import ToolCallOutput

__all__ = [
    "STDIN_SIGNAL_EVENT",
    "ProcessHandle",
    "ProcessTable",
    "ShellConfig",
    "StdinSignal",
    "clean_terminal_output",
    "make_shell_tools",
]

OUTPUT_DIR = ".lash/outputs"
STDIN_SIGNAL_EVENT = "signal.stdin"
"""The event type of a stdin write recorded against a ``start_command`` process."""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_QUIET_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "NO_COLOR": "1", "TERM": "dumb"}
_CANCELLED_MESSAGE = "tool call cancelled"

# Runs under the current interpreter: start argv[2:] in a new session (setsid) with its
# output appended to argv[1], print its pid and exit, so the command is re-parented away
# from the worker and never becomes our child.
_DETACH_LAUNCHER = (
    "import os, subprocess, sys\n"
    "log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
    "child = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,"
    " stderr=log, start_new_session=True)\n"
    "sys.stdout.write(str(child.pid))\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)


@dataclass(frozen=True, slots=True)
class ShellConfig:
    """Shell defaults for one workspace."""

    default_shell: str
    max_output_bytes: int = 10_000
    default_timeout_ms: int = 600_000
    env: Mapping[str, str] = field(default_factory=dict)


class ProcessHandle(msgspec.Struct, frozen=True, kw_only=True):
    """One ``start_command`` process as its session's process table lists it.

    ``tracked`` processes are owned by the table (killed at teardown); a ``detached`` one
    is a terminal audit record of a launch the host/OS owns from birth.
    """

    process_id: str
    session_id: str
    command: str
    status: Literal["running", "completed", "detached"]
    tracked: bool
    pid: int | None
    pgid: int | None
    started_at: int
    kind: str = "shell"

    @property
    def terminal(self) -> bool:
        """True when the handle will never run again (exited, or detached at birth)."""
        return self.status != "running"


class StdinSignal(msgspec.Struct, frozen=True, kw_only=True):
    """One ``write_stdin`` call delivered to a process, in delivery order."""

    sequence: int
    chars: str
    close_stdin: bool
    event_type: str = STDIN_SIGNAL_EVENT


def clean_terminal_output(text: str) -> str:
    """Strip ANSI escapes and control characters, applying ``\\r`` rewrites and backspaces."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    if "\b" in text:
        text = _apply_backspaces(text)
    return _CONTROL.sub("", text)


def _apply_backspaces(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch == "\b":
            if out and out[-1] != "\n":
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


@dataclass(slots=True)
class _Running:
    process_id: str
    command: str
    proc: asyncio.subprocess.Process
    log: Path
    started_at: int
    pty: _PtyOutput | None = None
    offset: int = 0
    sequence: int = 0
    stdin_closed: bool = False
    signals: list[StdinSignal] = field(default_factory=list)


class _PtyOutput:
    """The parent side of a PTY: copies everything the child writes into its log file."""

    def __init__(self, master: int, log_fd: int) -> None:
        self.master = master
        self._log_fd = log_fd
        self._open = True
        asyncio.get_running_loop().add_reader(master, self.drain)

    def drain(self) -> None:
        """Copy whatever is readable now; at end of output stop watching the PTY."""
        while self._open:
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                return
            except OSError:  # EIO: every slave side is closed
                chunk = b""
            if not chunk:
                self._stop_reading()
                return
            os.write(self._log_fd, chunk)

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the child's terminal input."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.005)  # the tty input queue is full: let the child read

    def _stop_reading(self) -> None:
        if self._open:
            self._open = False
            asyncio.get_running_loop().remove_reader(self.master)

    def close(self) -> None:
        """Stop copying and release both descriptors (idempotent)."""
        if self._open:
            self.drain()
        self._stop_reading()
        for fd in (self.master, self._log_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self._log_fd = -1


class ProcessTable:
    """The ``start_command`` handles of every session, keyed by (session id, process id)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._running: dict[tuple[str, str], _Running] = {}
        self._detached: dict[tuple[str, str], ProcessHandle] = {}

    def __len__(self) -> int:
        """How many processes are tracked (detached launches are not)."""
        return len(self._running)

    def handles(self, session_id: str) -> list[ProcessHandle]:
        """The session's handles: tracked processes first, then detached audit records."""
        running = [_handle(session_id, e) for (s, _), e in self._running.items() if s == session_id]
        detached = [h for (s, _), h in self._detached.items() if s == session_id]
        return running + detached

    def get(self, session_id: str, process_id: str) -> ProcessHandle | None:
        """One handle of the session, or ``None``."""
        entry = self._running.get((session_id, process_id))
        if entry is not None:
            return _handle(session_id, entry)
        return self._detached.get((session_id, process_id))

    def signals(self, session_id: str, process_id: str) -> list[StdinSignal]:
        """The stdin signals delivered to a tracked process so far (``[]`` if unknown)."""
        entry = self._running.get((session_id, process_id))
        return list(entry.signals) if entry is not None else []

    def _new_id(self, session_id: str, wanted: str) -> str:
        candidate, n = wanted, 1
        while (session_id, candidate) in self._running or (session_id, candidate) in self._detached:
            n += 1
            candidate = f"{wanted}-{n}"
        return candidate

    async def _discard(self, session_id: str, entry: _Running) -> None:
        self._running.pop((session_id, entry.process_id), None)
        await _terminate(entry)

    async def close_session(self, session_id: str) -> None:
        """Kill every process a session started and forget its handles."""
        for key in [k for k in self._running if k[0] == session_id]:
            await _terminate(self._running.pop(key))
        self._detached = {k: v for k, v in self._detached.items() if k[0] != session_id}

    async def aclose(self) -> None:
        """Kill every tracked process (detached ones are not tracked and survive)."""
        running, self._running = list(self._running.values()), {}
        for entry in running:
            await _terminate(entry)


def _handle(session_id: str, entry: _Running) -> ProcessHandle:
    exited = entry.proc.returncode is not None
    return ProcessHandle(
        process_id=entry.process_id,
        session_id=session_id,
        command=entry.command,
        status="completed" if exited else "running",
        tracked=True,
        pid=entry.proc.pid,
        pgid=entry.proc.pid,  # a session leader leads its own group
        started_at=entry.started_at,
    )


async def _terminate(entry: _Running) -> None:
    _kill_group(entry.proc)
    await entry.proc.wait()
    await _close_stdin(entry.proc)
    if entry.pty is not None:
        entry.pty.close()


def _open_pty() -> tuple[int, int]:
    """A master/slave PTY pair with echo off (the model's input is not its output)."""
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


async def _close_stdin(proc: asyncio.subprocess.Process) -> None:
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
        with contextlib.suppress(OSError):
            await proc.stdin.wait_closed()


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _wait_exit(
    proc: asyncio.subprocess.Process, cancelled: asyncio.Event, timeout_s: float | None
) -> Literal["exited", "timeout", "cancelled"]:
    """Wait for ``proc`` to exit, the call to be cancelled, or ``timeout_s`` to pass."""
    if proc.returncode is not None:
        return "exited"
    if cancelled.is_set():
        return "cancelled"
    exit_wait = asyncio.ensure_future(proc.wait())
    cancel_wait = asyncio.ensure_future(cancelled.wait())
    try:
        await asyncio.wait(
            {exit_wait, cancel_wait}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in (exit_wait, cancel_wait):
            waiter.cancel()
    if proc.returncode is not None:
        return "exited"
    return "cancelled" if cancelled.is_set() else "timeout"


def _cancelled_output() -> ToolCallOutput:
    return ToolCallOutput(status="cancelled", payload=_CANCELLED_MESSAGE, error_code="cancelled")


def make_shell_tools(ws: Workspace, config: ShellConfig, table: ProcessTable) -> list[FunctionTool]:
    """``exec_command``, ``start_command`` and ``write_stdin`` for ``ws``."""

    def argv(cmd: str, shell: str | None, login: bool) -> list[str]:
        return [shell or config.default_shell, "-lc" if login else "-c", cmd]

    def check_args(cmd: str, shell: str | None) -> None:
        # Checked before any log or fd is opened: exec would refuse them with a ValueError.
        for name, value in (("cmd", cmd), ("shell", shell)):
            if value is not None and "\x00" in value:
                raise ToolError(f"`{name}` contains a NUL byte", code="invalid_tool_args")

    def env() -> dict[str, str]:
        return {**os.environ, **_QUIET_ENV, **config.env}

    def cap(max_output_tokens: int | None) -> int:
        limit = config.max_output_bytes
        return min(limit, max_output_tokens * 4) if max_output_tokens else limit

    async def spawn(
        ctx: ToolContext, tool_name: str, cmd: str, workdir: str | None, shell: str | None,
        login: bool, *, stdin: int,
    ) -> tuple[asyncio.subprocess.Process, Path]:  # fmt: skip
        check_args(cmd, shell)
        cwd = _workdir(ws, workdir)
        log, fd = _open_log(ws, tool_name, ctx.call_id)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv(cmd, shell, login),
                cwd=cwd,
                stdin=stdin,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env=env(),
            )
        except BaseException as exc:
            log.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _spawn_error(exc) from exc
            raise
        finally:
            os.close(fd)
        return proc, log

    async def spawn_pty(
        ctx: ToolContext, cmd: str, workdir: str | None, shell: str | None, login: bool
    ) -> tuple[asyncio.subprocess.Process, Path, _PtyOutput]:
        check_args(cmd, shell)
        cwd = _workdir(ws, workdir)
        log, log_fd = _open_log(ws, "start_command", ctx.call_id)
        try:
            master, slave = _open_pty()
        except BaseException as exc:
            os.close(log_fd)
            log.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ToolError(
                    f"Could not open a terminal: {exc}", code="pty_unavailable"
                ) from exc
            raise
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv(cmd, shell, login),
                cwd=cwd,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=env(),
            )
        except BaseException as exc:
            os.close(master)
            os.close(log_fd)
            log.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _spawn_error(exc) from exc
            raise
        finally:
            os.close(slave)
        return proc, log, _PtyOutput(master, log_fd)

    exec_description = (
        "Run a noninteractive one-shot shell command in the workspace and wait for it to "
        "exit. Stdin is closed and there is no terminal; stdout and stderr are combined. "
        "The command runs exactly as written (no strict-mode prefixes). A completed command "
        'returns `status: "completed"`, `done: true`, `running: false`, `output` and '
        "`exit_code`; a nonzero exit code is ordinary result data, not an error. Commands "
        f"time out after {config.default_timeout_ms} ms by default (`timeout_ms` overrides); "
        "a timed-out command is killed with its process group and returned as a tool failure "
        'with `status: "timed_out"` and `timed_out: true`. ANSI/control noise is stripped. '
        "Large output is cut to a head and tail window and `full_output_path` names the file "
        "with all of it. Use `start_command` for interactive or long-lived processes."
    )

    @tool(name="exec_command", description=exec_description)
    async def exec_command(
        ctx: ToolContext,
        cmd: Annotated[str, msgspec.Meta(min_length=1, description="Shell command to run.")],
        workdir: Annotated[str | None, "Working directory (default: workspace root)."] = None,
        shell: Annotated[str | None, "Shell executable (default: the user's shell)."] = None,
        login: Annotated[bool, "Run as a login shell."] = False,
        max_output_tokens: Annotated[
            Annotated[int, msgspec.Meta(ge=1)] | None,
            "Cap the returned output (about 4 chars/token).",
        ] = None,
        timeout_ms: Annotated[
            int, msgspec.Meta(ge=1), "Kill the command after this many milliseconds."
        ] = config.default_timeout_ms,
    ) -> dict[str, Any] | ToolCallOutput:
        """Run a shell command in the workspace and wait for it to exit."""
        started = time.monotonic()
        proc, log = await spawn(
            ctx, "exec_command", cmd, workdir, shell, login, stdin=asyncio.subprocess.DEVNULL
        )
        try:
            ended = await _wait_exit(proc, ctx.cancelled, timeout_ms / 1000)
        except asyncio.CancelledError:
            _kill_group(proc)
            await proc.wait()
            log.unlink(missing_ok=True)
            raise
        if ended != "exited":
            _kill_group(proc)
            await proc.wait()
        if ended == "cancelled":
            log.unlink(missing_ok=True)
            return _cancelled_output()
        timed_out = ended == "timeout"
        record = _record(ws, log, 0, cap(max_output_tokens), keep_log=False)
        record.update(
            status="timed_out" if timed_out else "completed",
            done=True,
            running=False,
            wall_time_seconds=round(time.monotonic() - started, 3),
        )
        if timed_out:
            record["timed_out"] = True
            return failure(
                "shell_timeout", f"Command timed out after {timeout_ms} ms", detail=record
            )
        record["exit_code"] = _exit_code(proc.returncode)
        return record

    start_description = (
        "Start an interactive or long-lived command in a pseudo-terminal and return a process "
        'handle: `__handle__: "process"`, `id`, `process_id`, `pid`, `command`, '
        '`started_at`, `status: "running"`, `done: false`, `running: true`, plus the output '
        "so far. The handle stays registered in this session's process table until the "
        "command exits or the session closes (then the process is killed). Send input, close "
        "stdin (EOF) or poll for more output with `write_stdin`. When the command exits the "
        'result has `status: "completed"`, `done: true` and `exit_code`; a nonzero exit code '
        "is ordinary result data. Use `exec_command` for builds, tests and other commands that "
        "must finish before the next step. Set `detach: true` to launch a fully detached "
        "process that the host/OS owns: lash will not track, signal or stop it, and it "
        'returns at once with `status: "detached"`, `done: true`, `running: false`, `pid`, '
        "`pgid`, `command` and `started_at` (no exit code; `write_stdin` refuses it)."
    )

    @tool(name="start_command", description=start_description)
    async def start_command(
        ctx: ToolContext,
        cmd: Annotated[str, msgspec.Meta(min_length=1, description="Shell command to start.")],
        workdir: Annotated[str | None, "Working directory (default: workspace root)."] = None,
        shell: Annotated[str | None, "Shell executable (default: the user's shell)."] = None,
        login: Annotated[bool, "Run as a login shell."] = False,
        max_output_tokens: Annotated[
            Annotated[int, msgspec.Meta(ge=1)] | None,
            "Cap the returned output (about 4 chars/token).",
        ] = None,
        detach: Annotated[
            bool, "Start fully detached: untracked, survives the session, no stdin."
        ] = False,
        yield_time_ms: Annotated[
            int, msgspec.Meta(ge=0, le=30_000), "How long to wait for initial output."
        ] = 250,
    ) -> dict[str, Any] | ToolCallOutput:
        """Start a long-running command and return a process handle with its first output."""
        if detach:
            return await _start_detached(ctx, cmd, workdir, shell, login)
        proc, log, pty = await spawn_pty(ctx, cmd, workdir, shell, login)
        process_id = table._new_id(ctx.session_id, ctx.call_id)
        entry = _Running(
            process_id=process_id,
            command=cmd,
            proc=proc,
            log=log,
            started_at=table.clock.now_ms(),
            pty=pty,
        )
        table._running[(ctx.session_id, process_id)] = entry
        handle: dict[str, Any] = {
            "__handle__": "process",
            "id": process_id,
            "process_id": process_id,
            "pid": proc.pid,
            "command": cmd,
            "started_at": entry.started_at,
        }
        try:
            polled = await _poll(ctx, entry, yield_time_ms, cap(max_output_tokens))
        except asyncio.CancelledError:
            await table._discard(ctx.session_id, entry)
            raise
        if polled is None:  # the turn was cancelled before the handle reached the model
            await table._discard(ctx.session_id, entry)
            return _cancelled_output()
        handle.update(polled)
        return handle

    async def _start_detached(
        ctx: ToolContext, cmd: str, workdir: str | None, shell: str | None, login: bool
    ) -> dict[str, Any]:
        check_args(cmd, shell)
        cwd = _workdir(ws, workdir)
        if not sys.executable:
            raise ToolError(
                "No interpreter to launch a detached command.", code="shell_unavailable"
            )
        log, fd = _open_log(ws, "start_command", ctx.call_id)
        os.close(fd)
        try:
            launcher = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-c", _DETACH_LAUNCHER, str(log), *argv(cmd, shell, login),
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env(),
            )  # fmt: skip
        except BaseException as exc:
            log.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _spawn_error(exc) from exc
            raise
        out, err = await launcher.communicate()
        pid_text = out.decode(errors="replace").strip()
        if launcher.returncode != 0 or not pid_text.isdigit():
            reason = err.decode(errors="replace").strip().splitlines()
            log.unlink(missing_ok=True)
            raise ToolError(
                f"Could not start the detached command: {reason[-1] if reason else 'no pid'}",
                code="shell_unavailable",
            )
        pid = int(pid_text)
        process_id = table._new_id(ctx.session_id, ctx.call_id)
        audit = ProcessHandle(
            process_id=process_id,
            session_id=ctx.session_id,
            command=cmd,
            status="detached",
            tracked=False,
            pid=pid,
            pgid=pid,  # the launcher started it in a new session: it leads its own group
            started_at=table.clock.now_ms(),
        )
        table._detached[(ctx.session_id, process_id)] = audit
        return {
            "__handle__": "process",
            "id": process_id,
            "process_id": process_id,
            "status": "detached",
            "done": True,
            "running": False,
            "pid": audit.pid,
            "pgid": audit.pgid,
            "command": cmd,
            "started_at": audit.started_at,
            "output_path": ws.display(log),
        }

    async def _poll(
        ctx: ToolContext, entry: _Running, yield_time_ms: int, limit: int
    ) -> dict[str, Any] | None:
        """The output since the last poll; ``None`` when the call was cancelled first."""
        ended = await _wait_exit(entry.proc, ctx.cancelled, yield_time_ms / 1000)
        if ended == "cancelled":
            return None
        exited = ended == "exited"
        if entry.pty is not None:
            entry.pty.drain()
        record = _record(ws, entry.log, entry.offset, limit, keep_log=True)
        entry.offset = int(record.pop("_end"))
        record["output_path"] = ws.display(entry.log)
        record.update(status="completed" if exited else "running", done=exited, running=not exited)
        if exited:
            record["exit_code"] = _exit_code(entry.proc.returncode)
            table._running.pop((ctx.session_id, entry.process_id), None)
            await _close_stdin(entry.proc)
            if entry.pty is not None:
                entry.pty.close()
        return record

    write_description = (
        "Send input to a process started with `start_command` (or poll it with empty `chars`) "
        "and return its new output. `close_stdin: true` sends end-of-file after the input. "
        "Each delivered write gets the next `sequence` number; the result also carries "
        "`process_id`, `status`, `running`, `done`, `output` and, once the process exited, "
        "`exit_code`. Detached or unknown processes are refused."
    )

    @tool(name="write_stdin", description=write_description)
    async def write_stdin(
        ctx: ToolContext,
        process_id: Annotated[str, "The process id returned by start_command."],
        chars: Annotated[str, "Text to send to the process's stdin (may be empty to poll)."] = "",
        close_stdin: Annotated[bool, "Close stdin after writing."] = False,
        yield_time_ms: Annotated[
            int, msgspec.Meta(ge=0, le=30_000), "How long to wait for new output."
        ] = 250,
        max_output_tokens: Annotated[
            Annotated[int, msgspec.Meta(ge=1)] | None,
            "Cap the returned output (about 4 chars/token).",
        ] = None,
    ) -> dict[str, Any] | ToolCallOutput:
        """Send input to a process started with `start_command` and return its new output."""
        key = (ctx.session_id, process_id)
        if key in table._detached:
            raise ToolError(
                f"Process {process_id!r} is detached: lash does not track it and its stdin is "
                "not connected.",
                code="process_detached",
            )
        entry = table._running.get(key)
        if entry is None:
            raise ToolError(
                f"No running process {process_id!r} in this session (it may have exited).",
                code="process_not_found",
            )
        if chars:
            if entry.stdin_closed or entry.pty is None or entry.pty.master < 0:
                raise ToolError(f"Stdin of {process_id!r} is closed.", code="stdin_closed")
            try:
                await entry.pty.write(chars.encode("utf-8"))
            except OSError as exc:
                raise ToolError(
                    f"Process {process_id!r} is no longer reading stdin.", code="stdin_closed"
                ) from exc
        if close_stdin and not entry.stdin_closed:
            entry.stdin_closed = True
            if entry.pty is not None and entry.pty.master >= 0:
                # end of input on a terminal: EOF (^D) at the start of a line; after a partial
                # line the first ^D only delivers that line
                eof = b"\x04\x04" if chars and not chars.endswith("\n") else b"\x04"
                with contextlib.suppress(OSError):
                    await entry.pty.write(eof)
        entry.sequence += 1
        entry.signals.append(
            StdinSignal(sequence=entry.sequence, chars=chars, close_stdin=close_stdin)
        )
        result: dict[str, Any] = {"process_id": process_id, "sequence": entry.sequence}
        polled = await _poll(ctx, entry, yield_time_ms, cap(max_output_tokens))
        if polled is None:  # the write was delivered; only the wait for output was cut short
            return _cancelled_output()
        result.update(polled)
        return result

    return [exec_command, start_command, write_stdin]


def _spawn_error(exc: OSError) -> ToolError:
    """A spawn the OS refused; anything else (cancellation, a bug) propagates as it is, after
    the log file and descriptors are cleaned up."""
    return ToolError(f"Could not start the shell: {exc}", code="shell_unavailable")


def _workdir(ws: Workspace, workdir: str | None) -> Path:
    if workdir is None:
        return ws.root
    path = ws.resolve(workdir, field="workdir")
    if not path.is_dir():
        raise ToolError(f"workdir {workdir!r} is not a directory", code="not_a_directory")
    return path


def _open_log(ws: Workspace, tool_name: str, call_id: str) -> tuple[Path, int]:
    directory = ws.resolve(OUTPUT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{tool_name}-{_SAFE_NAME.sub('_', call_id)[:64]}-{secrets.token_hex(4)}.log"
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return path, fd


def _record(ws: Workspace, log: Path, start: int, limit: int, *, keep_log: bool) -> dict[str, Any]:
    """The output window of ``log`` from byte ``start``: all of it, or head + tail."""
    try:
        end = log.stat().st_size
    except FileNotFoundError:  # removed by hand: report what is known
        return {"output": "", **({"_end": start} if keep_log else {})}
    size = max(0, end - start)
    record: dict[str, Any] = {"_end": end}
    with log.open("rb") as handle:
        if size <= limit:
            handle.seek(start)
            record["output"] = clean_terminal_output(_decode_head(handle.read(size)))
            if not keep_log:
                log.unlink(missing_ok=True)
        else:
            head_len = limit * 2 // 5
            handle.seek(start)
            head = _decode_head(handle.read(head_len))
            handle.seek(end - (limit - head_len))
            tail = _decode_tail(handle.read(limit - head_len))
            omitted = size - limit
            record["output"] = clean_terminal_output(
                f"{head}\n\n...[{omitted} bytes omitted; full output in "
                f"{ws.display(log)}]...\n\n{tail}"
            )
            record["original_token_count"] = size // 4
            record["full_output_path"] = ws.display(log)
    if not keep_log:
        record.pop("_end")
    return record


def _decode_head(data: bytes) -> str:
    # An incremental decoder holds back a sequence cut at the end instead of mangling it.
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=False)


def _decode_tail(data: bytes) -> str:
    skip = 0
    while skip < min(3, len(data)) and (data[skip] & 0xC0) == 0x80:
        skip += 1
    return data[skip:].decode("utf-8", errors="replace")


def _exit_code(returncode: int | None) -> int | None:
    if returncode is None:
        return None
    return returncode if returncode >= 0 else 128 - returncode
