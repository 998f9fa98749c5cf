"""``lash sessions``: list, show and delete the CLI's stored sessions."""

from __future__ import annotations

import datetime as _dt

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lash.cli.render import usage_text
from lash.cli.runtime import db_path, require_session, store_core

__all__ = ["delete_session", "list_sessions", "show_session"]


def _when(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def list_sessions(console: Console) -> int:
    """A table of every session, newest first."""
    if not db_path().exists():
        console.print("no sessions yet")
        return 0
    async with store_core() as core:
        metas = sorted(await core.list_sessions(), key=lambda m: -m.created_at_ms)
    if not metas:
        console.print("no sessions yet")
        return 0
    table = Table("session", "created (UTC)", "model", box=None, pad_edge=False)
    for meta in metas:
        table.add_row(meta.session_id, _when(meta.created_at_ms), meta.model or "")
    console.print(table)
    return 0


async def show_session(console: Console, session_id: str) -> int:
    """The committed transcript and usage of one session."""
    async with store_core() as core:
        await require_session(core, session_id)
        session = await core.session(session_id).open()
        view = await session.read_view()
        report = await session.usage_report()
    console.print(Text(f"session {session_id} · revision {view.revision}", style="bold"))
    for msg in view.messages:
        if msg.role == "assistant" and msg.tool_calls:
            for call in msg.tool_calls:
                console.print(Text(f"{'tool call':>10}: {call.name} {call.arguments}", "cyan"))
            if not msg.text:
                continue
        console.print(Text(f"{msg.role:>10}: {msg.text}"))
    console.print(Text(f"tokens {usage_text(report.usage)}", style="dim"))
    return 0


async def delete_session(console: Console, session_id: str) -> int:
    """Delete one session and everything stored for it."""
    async with store_core() as core:
        await require_session(core, session_id)
        await core.delete_session(session_id)
    console.print(f"deleted session {session_id}")
    return 0
