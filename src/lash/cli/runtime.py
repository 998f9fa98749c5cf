"""Wire a :class:`~lash.LashCore` for the CLI: SQLite under ``LASH_HOME``, workspace tools."""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Iterable
from pathlib import Path

from lash.cli.config import Settings, lash_home
from lash.cli.errors import CliError
from lash.cli.providers import build_provider, model_spec
from lash.errors import LashRuntimeError, StoreError
from lash.runtime import InlineEffectHost, LashCore
from lash.runtime.core import PluginFactory
from lash.trace import JsonlTraceSink
from lash.types import ModelSpec

__all__ = [
    "AUTONOMOUS_PROMPT",
    "CHAT_PROMPT",
    "db_path",
    "new_session_id",
    "open_core",
    "require_session",
    "store_core",
]

CHAT_PROMPT = (
    "You are lash, a coding agent working in the directory {root}. Use the workspace tools "
    "(read_file, glob, grep, edit, write, exec_command) to inspect and change files. Be concise."
)
AUTONOMOUS_PROMPT = (
    "You are lash, a coding agent running autonomously (no human will answer questions) in "
    "the directory {root}. Use the workspace tools to do the task, then reply with a concise "
    "final answer."
)


def db_path() -> Path:
    """The CLI's session database."""
    return lash_home() / "sessions.db"


def new_session_id() -> str:
    """Sortable and unique: ``YYYYmmdd-HHMMSS-<hex>``."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"{now}-{secrets.token_hex(3)}"


def _store_path() -> Path:
    path = db_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {path.parent}: {err.strerror or err}") from None
    return path


def open_core(
    settings: Settings,
    *,
    root: Path,
    trace: Path | None = None,
    autonomous: bool = False,
    plugins: Iterable[PluginFactory] = (),
) -> LashCore:
    """A core on the CLI's database with the workspace tools confined to ``root``."""
    from lash.stores.sqlite import SqliteStore
    from lash.tools.builtin import workspace_tools

    provider = build_provider(settings)
    prompt = (AUTONOMOUS_PROMPT if autonomous else CHAT_PROMPT).format(root=root)
    try:
        builder = (
            LashCore.builder()
            .provider(provider)
            .model(model_spec(settings))
            .store(SqliteStore(_store_path()))
            .effect_host(InlineEffectHost())
            .tools(workspace_tools(root))
            .plugins(plugins)
            .max_turns(50)
            .system_prompt(prompt)
        )
        if trace is not None:
            builder.trace(JsonlTraceSink(trace))
        return builder.build()
    except (StoreError, LashRuntimeError, OSError) as err:
        raise CliError(f"cannot open {db_path()}: {err}") from None


def store_core() -> LashCore:
    """A core for reading and deleting sessions only (its model is never called)."""
    from lash.stores.sqlite import SqliteStore
    from lash.testing import ScriptedProvider

    try:
        return (
            LashCore.builder()
            .provider(ScriptedProvider([]))
            .model(ModelSpec("none"))
            .store(SqliteStore(_store_path()))
            .effect_host(InlineEffectHost())
            .build()
        )
    except (StoreError, LashRuntimeError, OSError) as err:
        raise CliError(f"cannot open {db_path()}: {err}") from None


async def require_session(core: LashCore, session_id: str) -> None:
    """Fail with a clear line when ``session_id`` is not stored."""
    known = {m.session_id for m in await core.list_sessions()}
    if session_id not in known:
        raise CliError(f"no session {session_id!r} in {db_path()} (list them with: lash sessions)")
