"""``lash chat``: an interactive terminal chat on the embedded SQLite store.

Line-oriented on purpose (works in any terminal, a pty or a pipe): text streams as the model
writes it, tool calls and token usage appear as dim lines, Ctrl+C cancels the running turn
(twice at an idle prompt quits), and a line typed while a turn runs is injected into that
turn at its next safe checkpoint (or runs right after it); a line that starts with Tab is
queued for the next full turn instead. Piped input runs line by line, one turn per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from lash.cli.config import Settings
from lash.cli.errors import CliError
from lash.cli.render import tool_status, usage_text
from lash.cli.runtime import db_path, new_session_id, open_core, require_session
from lash.cli.signals import on_sigint
from lash.errors import LashRuntimeError
from lash.runtime import LashCore, LashSession, Plugin, TurnStream
from lash.runtime.plugins import CompactionContext
from lash.types import Message, TokenUsage, TurnActivity, TurnInputIngress, TurnResult
from lash.types.events import (
    AssistantProseDelta,
    ErrorEvent,
    ModelAttemptReset,
    QueuedInputAccepted,
    RetryStatus,
    ToolCallCompleted,
    ToolCallStarted,
    UsageEvent,
)
from lash.types.messages import TextPart

__all__ = ["Chat", "TranscriptCompactor", "run_chat"]

HELP = """\
/new            start a new session (alias /clear)
/compact        start a fresh context window seeded with a digest of this conversation
/resume [ID|N]  list recent sessions, or switch to one (by id or list number)
/model [NAME]   show the model, or switch this session to another
/info           session, provider, model, store and token usage (alias /status)
/help           this help (alias /?)
/exit           quit (alias /quit; Ctrl+D works too)
Ctrl+C cancels a running turn; at an idle prompt press it twice to quit.
A line typed while a turn runs joins that turn at its next checkpoint."""

_DIGEST_CHARS = 6000


class TranscriptCompactor(Plugin):
    """Seeds a compaction frame with a plain digest of the recent conversation.

    History is never rewritten: the new frame only starts a smaller prompt window.
    """

    id = "lash.cli.compactor"

    async def compact_context(self, ctx: CompactionContext) -> Sequence[Message]:
        """A user message carrying the digest and an assistant acknowledgement."""
        lines = []
        for msg in ctx.messages:
            calls = ", ".join(c.name for c in msg.tool_calls)
            text = msg.text.strip() or (f"(called {calls})" if calls else "")
            if text:
                lines.append(f"{msg.role}: {text}")
        if not lines:
            return ()
        digest = "\n".join(lines)[-_DIGEST_CHARS:]
        stamp = uuid.uuid4().hex
        return (
            Message(
                id=f"compact:{stamp}:digest",
                role="user",
                parts=(TextPart(text=f"Conversation so far (compacted):\n{digest}"),),
            ),
            Message(
                id=f"compact:{stamp}:ack",
                role="assistant",
                parts=(TextPart(text="Understood; continuing from that summary."),),
            ),
        )


class _Lines:
    """Lines from stdin via the event loop (no threads), ``None`` at end of input."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = b""
        self._loop = asyncio.get_running_loop()
        try:
            self._loop.add_reader(fd, self._readable)
        except (PermissionError, OSError):  # a regular file cannot be polled: read it whole
            self._feed(os.read(fd, 1 << 24) if os.fstat(fd).st_size else b"")
            self._feed(b"")

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._fd)
        self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            if self._buffer:
                self.queue.put_nowait(self._buffer.decode("utf-8", "replace"))
                self._buffer = b""
            self.queue.put_nowait(None)
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.queue.put_nowait(line.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._fd)


class Chat:
    """One interactive chat process."""

    def __init__(
        self,
        settings: Settings,
        *,
        root: Path,
        trace: Path | None = None,
        console: Console | None = None,
    ) -> None:
        self.settings = settings
        self.root = root
        self.trace = trace
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.core: LashCore | None = None
        self.session: LashSession | None = None
        self.running: TurnStream | None = None
        self.session_usage = TokenUsage()
        self._quit = asyncio.Event()
        self._armed = False
        self._mid_line = False
        self._deferred: list[str] = []
        self._lines: _Lines | None = None
        self._interactive = sys.stdin.isatty()

    # --- output -------------------------------------------------------------------------

    def _say(self, text: str, style: str = "") -> None:
        self._end_line()
        self.console.print(Text(text, style=style))

    def _end_line(self) -> None:
        if self._mid_line:
            self.console.file.write("\n")
            self._mid_line = False

    def _write(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()
        if text:
            self._mid_line = not text.endswith("\n")

    # --- session management -------------------------------------------------------------

    def _open_core(self) -> LashCore:
        return open_core(
            self.settings, root=self.root, trace=self.trace, plugins=[TranscriptCompactor]
        )

    async def _switch(self, session_id: str, *, existing: bool) -> None:
        if self.core is None:
            self.core = self._open_core()
        if existing:
            await require_session(self.core, session_id)
        if self.session is not None:
            await self.session.close()
        self.session = await self.core.session(session_id).open()
        self.session_usage = (await self.session.usage_report()).usage

    async def _show_recent(self, count: int = 6) -> None:
        assert self.session is not None
        view = await self.session.read_view()
        shown = [m for m in view.messages if m.role in ("user", "assistant") and m.text]
        if not shown:
            return
        self._say(f"… last {min(count, len(shown))} of {len(shown)} messages:", "dim")
        for msg in shown[-count:]:
            text = msg.text if len(msg.text) < 400 else msg.text[:400] + "…"
            self._say(f"{msg.role:>9}: {text}", "dim")

    # --- the loop -----------------------------------------------------------------------

    async def run(self, resume: str | None = None) -> int:
        """Chat until /exit, end of input or a double Ctrl+C."""
        self.core = self._open_core()
        try:
            await self._switch(resume or new_session_id(), existing=resume is not None)
            assert self.session is not None
            self._say(
                f"lash · {self.settings.name} · {self.settings.model} · session "
                f"{self.session.session_id}",
                "bold",
            )
            self._say("type a message, /help for commands, /exit to quit", "dim")
            if resume:
                await self._show_recent()
            self._lines = _Lines(sys.stdin.fileno())
            with on_sigint(self._on_sigint):
                await self._loop()
        finally:
            if self._lines is not None:
                self._lines.close()
            if self.session is not None:
                self._end_line()
                self._say(
                    f"session {self.session.session_id} saved · resume with: "
                    f"lash chat --resume {self.session.session_id}",
                    "dim",
                )
            await self.core.aclose()
        return 0

    def _on_sigint(self) -> None:
        if self.running is not None:
            self._say("^C cancelling the turn…", "yellow")
            task = asyncio.ensure_future(self.running.cancel("cancelled with Ctrl+C"))
            task.add_done_callback(lambda _t: None)
            return
        if self._armed:
            self._quit.set()
            return
        self._armed = True
        self._say("^C (press Ctrl+C again or type /exit to quit)", "dim")
        self._prompt()

    def _prompt(self) -> None:
        self._end_line()
        self._write("› ")

    async def _next_line(self) -> str | None:
        assert self._lines is not None
        if self._deferred:
            return self._deferred.pop(0)
        getter = asyncio.ensure_future(self._lines.queue.get())
        quitter = asyncio.ensure_future(self._quit.wait())
        done, _ = await asyncio.wait({getter, quitter}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            return None
        quitter.cancel()
        line = getter.result()
        if line is not None:
            if self._interactive:
                self._mid_line = False  # the terminal echoed the line and its newline
            else:
                self._write(line + "\n")  # piped input: keep a readable transcript
        return line

    async def _loop(self) -> None:
        while True:
            self._prompt()
            line = await self._next_line()
            if line is None:
                self._end_line()
                return
            self._armed = False
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not await self._command(line):
                    return
                continue
            await self._turn(line)

    # --- turns --------------------------------------------------------------------------

    async def _turn(self, text: str) -> None:
        session = self.session
        assert session is not None and self._lines is not None
        streamed = False
        try:
            async with session.turn(text).stream() as turn:
                self.running = turn
                feeder = asyncio.ensure_future(
                    self._inject_while(turn) if self._interactive else asyncio.sleep(0)
                )
                try:
                    async for activity in turn:
                        streamed = self._show(activity) or streamed
                    result = await turn.result()
                finally:
                    self.running = None
                    feeder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeder
        except LashRuntimeError as err:
            self._say(f"error: {err}", "red")
            return
        self._finish(result, streamed)
        await self._drain_pending()

    async def _inject_while(self, turn: TurnStream) -> None:
        """Lines typed during a turn: text joins it, slash commands wait for it to end."""
        assert self._lines is not None and self.session is not None
        while True:
            line = await self._lines.queue.get()
            if line is None:
                self._deferred.append("/exit")
                return
            next_turn = line.startswith("\t")  # Tab first: queue for the next full turn
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                self._deferred.append(line)
                self._say(f"(queued {line.split()[0]} until the turn ends)", "dim")
                continue
            if next_turn:
                await self.session.enqueue(line, ingress=TurnInputIngress.next_turn())
                self._say("(queued for the next turn)", "dim")
                continue
            await self.session.enqueue(line, ingress=TurnInputIngress.active_turn(turn.turn_id))
            self._say("(queued for the running turn)", "dim")

    async def _drain_pending(self) -> None:
        """Run input that was typed during a turn but not taken by it."""
        assert self.session is not None
        if not await self.session.pending_inputs():
            return
        self._say("running the message you typed during the turn…", "dim")
        try:
            results = await self.session.process_pending()
        except LashRuntimeError as err:
            self._say(f"error: {err}", "red")
            return
        for result in results:
            self._finish(result, streamed=False)

    def _show(self, activity: TurnActivity) -> bool:
        event = activity.event
        if isinstance(event, AssistantProseDelta):
            self._write(event.text)
            return True
        if isinstance(event, ToolCallStarted):
            args = json.dumps(event.args, ensure_ascii=False)
            self._say(f"⚙ {event.name} {args[:160]}", "cyan")
        elif isinstance(event, ToolCallCompleted):
            status = tool_status(event)
            mark, style = ("✓", "green") if status == "ok" else ("✗", "red")
            self._say(f"  {mark} {event.name} · {status} · {event.duration_ms} ms", style)
        elif isinstance(event, UsageEvent):
            total = self.session_usage + event.cumulative
            self._say(
                f"  tokens {usage_text(event.usage)} · turn {usage_text(event.cumulative)} · "
                f"session {usage_text(total)}",
                "dim",
            )
        elif isinstance(event, RetryStatus):
            self._say(
                f"  retrying in {event.wait_seconds:.1f}s "
                f"(attempt {event.attempt}/{event.max_attempts}): {event.reason}",
                "yellow",
            )
        elif isinstance(event, ModelAttemptReset):
            self._say("  (the partial reply above was withdrawn)", "yellow")
        elif isinstance(event, QueuedInputAccepted):
            self._say("  (your message joined the turn)", "dim")
        elif isinstance(event, ErrorEvent):
            self._say(f"  error: {event.message}", "red")
        return False

    def _finish(self, result: TurnResult, streamed: bool) -> None:
        if not streamed and result.assistant_text:
            self._say(result.assistant_text)
        self._end_line()
        self.session_usage = self.session_usage + result.total_usage()
        outcome = result.outcome
        if outcome.reason == "cancelled":
            self._say("turn cancelled (committed as cancelled)", "yellow")
        elif outcome.kind == "stopped":
            detail = "; ".join(i.message for i in result.issues) or outcome.reason
            self._say(f"turn stopped: {outcome.reason} — {detail}", "red")

    # --- slash commands -----------------------------------------------------------------

    async def _command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        name = name.lower()
        if name in ("/exit", "/quit"):
            return False
        try:
            if name in ("/help", "/?"):
                self._say(HELP)
            elif name in ("/new", "/clear"):
                await self._switch(new_session_id(), existing=False)
                assert self.session is not None
                self._say(f"new session {self.session.session_id}", "bold")
            elif name in ("/info", "/status"):
                await self._info()
            elif name == "/model":
                await self._model(arg)
            elif name in ("/resume", "/continue"):
                await self._resume(arg)
            elif name == "/compact":
                await self._compact()
            else:
                self._say(f"unknown command {name}; /help lists them", "red")
        except CliError as err:
            self._say(f"error: {err.message}", "red")
        except LashRuntimeError as err:
            self._say(f"error: {err}", "red")
        return True

    async def _info(self) -> None:
        assert self.session is not None
        report = await self.session.usage_report()
        self._say(f"session   {self.session.session_id} (revision {self.session.head_revision})")
        self._say(f"provider  {self.settings.name} ({self.settings.kind})")
        self._say(f"model     {self.settings.model}")
        self._say(f"store     {db_path()}")
        self._say(f"workspace {self.root}")
        self._say(f"tokens    {usage_text(report.usage)}")
        if self.trace is not None:
            self._say(f"trace     {self.trace}")

    async def _model(self, name: str) -> None:
        if not name:
            self._say(f"model: {self.settings.model} (switch with /model NAME)")
            return
        assert self.session is not None and self.core is not None
        current = self.session.session_id
        await self.session.close()
        self.session = None
        await self.core.aclose()
        self.settings = dataclasses.replace(
            self.settings, model=name, context_window=None, max_output_tokens=None
        )
        self.core = self._open_core()
        await self._switch(current, existing=False)
        self._say(f"model set to {name} for session {current}", "bold")

    async def _resume(self, arg: str) -> None:
        assert self.core is not None
        metas = sorted(await self.core.list_sessions(), key=lambda m: -m.created_at_ms)[:20]
        if not arg:
            if not metas:
                self._say("no sessions yet")
                return
            for n, meta in enumerate(metas, start=1):
                when = _dt.datetime.fromtimestamp(meta.created_at_ms / 1000, _dt.UTC)
                self._say(f"{n:>3}. {meta.session_id}  {when:%Y-%m-%d %H:%M}  {meta.model or ''}")
            self._say("switch with /resume ID or /resume N", "dim")
            return
        target = (
            metas[int(arg) - 1].session_id if arg.isdigit() and 0 < int(arg) <= len(metas) else arg
        )
        await self._switch(target, existing=True)
        self._say(f"resumed session {target}", "bold")
        await self._show_recent()

    async def _compact(self) -> None:
        assert self.session is not None
        frame = await self.session.compact()
        if frame is None:
            self._say("nothing to compact yet")
        else:
            self._say(f"compacted: the next turn starts a new context window ({frame})", "bold")


async def run_chat(
    settings: Settings, *, root: Path, resume: str | None = None, trace: Path | None = None
) -> int:
    """Run the interactive chat."""
    return await Chat(settings, root=root, trace=trace).run(resume)
