"""A lash worker process serving the ``LashTurn`` Restate workflow (spawned by the tests).

Configured through the environment:

* ``WORKER_PORT``: the loopback port to serve on;
* ``WORKER_DB``: a SQLite store file shared by every worker, or, with ``WORKER_PG_DSN`` and
  ``WORKER_PG_SCHEMA`` (the store is then Postgres), the shared attachment directory;
* ``WORKER_MODEL_URL``: an OpenAI-compatible endpoint;
* ``WORKER_LINES``: the file the ``append_line`` tool appends to;
* ``WORKER_MEMORY_STORE`` (optional): use an in-memory store (the tier check refuses it);
* ``WORKER_SYSTEM_PROMPT`` (optional): changes every model request's envelope;
* ``WORKER_KEYS`` (optional): the file the ``wait_for_approval`` tool appends its durable-wait
  key to (the tool then returns ``pending``, parking the turn until the key is resolved);
* ``WORKER_PARK_MARKER`` (optional): when the marker file does not exist yet, the worker
  creates it and parks forever just before its second model call, so the test can SIGKILL it;
* ``WORKER_HOLD_MARKER`` and ``WORKER_HOLD_RELEASE`` (optional): the worker creates the marker
  just before its second model call and holds that call until the release file exists (a
  window in which the test can close the cancel gate after the turn's last gate read);
* ``WORKER_ATTEMPTS`` (optional): the file the ``flaky_write`` tool appends each attempt
  number to (its first attempt fails with a transient error, its retry policy is ``safe``);
  ``WORKER_BACKOFF_MS`` is its retry back-off (default 200);
* ``WORKER_NO_AWAIT_SECRET`` (optional): serve without ``await_event_secret``;
* ``WORKER_EXIT_AFTER_COMMIT`` (optional): a marker file; when it does not exist yet, the
  worker creates it and exits at once after a turn's commit is durable;
* ``WORKER_PLAN_MODE`` (optional): serve plan mode (off, so only ``update_plan`` is added);
  each run of ``update_plan`` appends ``update_plan`` to the ``WORKER_LINES`` file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import hypercorn.asyncio
import hypercorn.config
import restate

import lash
from lash.durable.restate import turn_services
from lash.plugins import PlanMode
from lash.providers import OpenAIChatProvider
from lash.stores import MemoryStore, SqliteStore
from lash.stores.postgres import PostgresStore
from lash.types import (
    LlmRequest,
    RuntimeCommit,
    RuntimeCommitResult,
    StreamEvent,
    ToolCallOutput,
)


class ParkingProvider:
    """Delegates to a real provider, but parks before the second call when told to."""

    def __init__(
        self,
        inner: OpenAIChatProvider,
        marker: Path | None,
        hold: tuple[Path, Path] | None = None,
    ) -> None:
        self._inner = inner
        self._marker = marker
        self._hold = hold
        self._calls = 0

    @property
    def kind(self) -> str:
        return self._inner.kind

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        self._calls += 1
        if self._calls == 2 and self._marker is not None and not self._marker.exists():
            self._marker.write_text("parked\n")
            print("PARKED", flush=True)
            await asyncio.Event().wait()
        if self._calls == 2 and self._hold is not None:
            held, release = self._hold
            held.write_text("held\n")
            while not release.exists():
                await asyncio.sleep(0.02)
        async for event in self._inner.stream(request):
            yield event


def exit_after_commit(store: SqliteStore | PostgresStore, marker: Path) -> None:
    """Make the worker die (``os._exit``) right after a turn's commit is durable, before the
    run handler can return: the first time only, recorded in ``marker``."""
    inner = store.commit

    async def commit(commit: RuntimeCommit) -> RuntimeCommitResult:
        result = await inner(commit)
        if commit.turn_commit is not None and not marker.exists():
            marker.write_text("exited\n")
            os._exit(9)
        return result

    store.commit = commit  # type: ignore[method-assign]


class LoggingPlanMode(PlanMode):
    """Plan mode (off) whose ``update_plan`` notes each run in the worker's lines file."""

    def __init__(self) -> None:
        super().__init__(enabled=False)

    async def _run_update_plan(self, ctx: lash.ToolContext, args: dict[str, Any]) -> Any:
        with Path(os.environ["WORKER_LINES"]).open("a") as fh:
            fh.write("update_plan\n")
        return await super()._run_update_plan(ctx, args)


CORES: list[lash.LashCore] = []
AWAIT_SECRET = b"restate-worker-test-secret-0123456789"
"""Shared by every worker process, so a key minted by one resolves through another."""


def build_app() -> object:
    lines = Path(os.environ["WORKER_LINES"])

    @lash.tool
    async def append_line(ctx: lash.ToolContext, text: str) -> str:
        """Append one line of text to the worker's file."""
        with lines.open("a") as fh:
            fh.write(text + "\n")
        return "appended"

    @lash.tool
    async def wait_for_approval(
        ctx: lash.ToolContext, item: str, deadline_ms: int | None = None
    ) -> ToolCallOutput:
        """Ask for an approval of an item; the answer arrives later (or never)."""
        keys = os.environ.get("WORKER_KEYS")
        if keys:
            with Path(keys).open("a") as fh:
                fh.write(ctx.await_event_key() + "\n")
        return lash.tools.pending(deadline_ms=deadline_ms)

    backoff_ms = int(os.environ.get("WORKER_BACKOFF_MS", "200"))

    @lash.tool(retry="safe", max_attempts=3, base_delay_ms=backoff_ms, max_delay_ms=backoff_ms)
    async def flaky_write(ctx: lash.ToolContext, text: str) -> str:
        """Append one line of text; the disk is busy at the first try."""
        attempts = os.environ.get("WORKER_ATTEMPTS")
        if attempts:
            with Path(attempts).open("a") as fh:
                fh.write(f"{ctx.attempt}\n")
        if ctx.attempt == 1:
            raise lash.ToolError("the disk is busy", code="disk_busy", retryable=True)
        with lines.open("a") as fh:
            fh.write(text + "\n")
        return "written"

    marker = os.environ.get("WORKER_PARK_MARKER")
    held, release = os.environ.get("WORKER_HOLD_MARKER"), os.environ.get("WORKER_HOLD_RELEASE")
    hold = (Path(held), Path(release)) if held and release else None

    async def make_core() -> lash.LashCore:
        provider = OpenAIChatProvider(api_key="k", base_url=os.environ["WORKER_MODEL_URL"])
        dsn = os.environ.get("WORKER_PG_DSN")
        exit_marker = os.environ.get("WORKER_EXIT_AFTER_COMMIT")
        store: SqliteStore | PostgresStore | MemoryStore
        if os.environ.get("WORKER_MEMORY_STORE"):
            store = MemoryStore()
        elif dsn:
            store = PostgresStore(
                dsn, schema=os.environ["WORKER_PG_SCHEMA"], attachments_root=os.environ["WORKER_DB"]
            )
            await store.open()
        else:
            store = SqliteStore(os.environ["WORKER_DB"])
        if exit_marker and not isinstance(store, MemoryStore):
            exit_after_commit(store, Path(exit_marker))
        builder = (
            lash.LashCore.builder()
            .provider(ParkingProvider(provider, Path(marker) if marker else None, hold))
            .model(lash.ModelSpec("test-model", context_window=100_000))
            .store(store)
            .effect_host(lash.InlineEffectHost())
            .tools([append_line, wait_for_approval, flaky_write])
        )
        if os.environ.get("WORKER_PLAN_MODE"):
            builder.plugin(LoggingPlanMode)
        system = os.environ.get("WORKER_SYSTEM_PROMPT")
        if system:
            builder.system_prompt(system)
        core = builder.build()
        CORES.append(core)
        return core

    services = turn_services(
        make_core,
        await_event_secret=None if os.environ.get("WORKER_NO_AWAIT_SECRET") else AWAIT_SECRET,
        retry_policy=restate.InvocationRetryPolicy(
            initial_interval=timedelta(milliseconds=100),
            exponentiation_factor=1.5,
            max_interval=timedelta(milliseconds=500),
            max_attempts=200,
        ),
    )
    return restate.app(services=services)


async def main() -> None:
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{os.environ['WORKER_PORT']}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("SERVING", flush=True)
    await hypercorn.asyncio.serve(
        build_app(),  # type: ignore[arg-type]
        config,
        shutdown_trigger=stop.wait,  # type: ignore[arg-type]
    )
    for core in CORES:  # closes the store's worker thread, so the process can exit
        await core.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
