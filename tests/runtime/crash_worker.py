"""A worker process for the crash tests: claims pending input and stops at a chosen point.

``python crash_worker.py DB WORKDIR MODE`` where MODE is ``stream`` (hangs while the model
streams), ``tool`` (hangs inside a tool) or ``commit`` (hangs right after the commit is
durable, before the runtime returns). It writes ``WORKDIR/ready`` when it reaches that point
and then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import lash
from lash.stores.sqlite import SqliteStore
from lash.testing import ScriptedProvider, reply, stall, tool_call
from lash.types import RuntimeCommit


class HangAfterCommit(SqliteStore):
    def __init__(self, path: Path, ready: Path) -> None:
        super().__init__(path)
        self._ready = ready

    async def commit(self, commit: RuntimeCommit) -> Any:
        result = await super().commit(commit)
        if commit.turn_commit is not None:
            self._ready.write_text("committed")
            await asyncio.Event().wait()
        return result


async def main(db: Path, workdir: Path, mode: str) -> None:
    ready = workdir / "ready"

    @lash.tool
    async def side_effect(ctx: lash.ToolContext, text: str) -> str:
        """Append a line to a file (a visible side effect)."""
        with (workdir / "effects.txt").open("a") as fh:
            fh.write(text + "\n")
        if mode == "tool":
            ready.write_text("in tool")
            await asyncio.Event().wait()
        return "written"

    def streaming(request: Any) -> Any:
        ready.write_text("model streaming")
        return stall("I was about to say")

    steps: list[Any]
    if mode == "stream":
        steps = [streaming]
    else:
        steps = [tool_call("side_effect", {"text": "from the first worker"}, "c1"), reply("done")]
    store: SqliteStore = HangAfterCommit(db, ready) if mode == "commit" else SqliteStore(db)
    provider = ScriptedProvider(steps)

    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("crash-model"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools([side_effect])
        .build()
    )
    async with core:
        session = await core.session("crash").open()
        await session.process_pending()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
