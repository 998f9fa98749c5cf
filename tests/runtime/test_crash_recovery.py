"""Real crash tests: a worker process is SIGKILLed mid-turn; a new worker recovers from the file.

After each kill: the head is the last committed turn, nothing half-written is visible, the
pending input is claimable again under a new lease generation, the redriven turn commits
exactly once, no tool call lacks its result, and while the first worker was alive a second
live worker was refused with ``session_execution_busy``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import lash
from lash.errors import RuntimeErrorCode
from lash.stores.sqlite import SqliteStore
from lash.testing import ScriptedProvider, reply, tool_call

WORKER = Path(__file__).with_name("crash_worker.py")
PROMPT = "please write the line"


def _core(db: Path, steps: list[Any], tools: list[Any] = ()) -> lash.LashCore:  # type: ignore[assignment]
    return (
        lash.LashCore.builder()
        .provider(ScriptedProvider(steps))
        .model(lash.ModelSpec("crash-model"))
        .store(SqliteStore(db))
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
        .build()
    )


async def _start_worker(db: Path, workdir: Path, mode: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(lash.__file__).parents[1]), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(workdir), mode],
        env=env,
        stderr=subprocess.PIPE,
    )
    ready = workdir / "ready"
    for _ in range(1500):
        if ready.exists():
            return proc
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"worker exited early ({proc.returncode}): {err}")
        await asyncio.sleep(0.02)
    proc.kill()
    raise AssertionError("worker never reached the crash point")


def _assert_complete_history(messages: Any) -> None:
    calls = [c.id for m in messages for c in m.tool_calls]
    answered = [m.tool_call_id for m in messages if m.role == "tool"]
    assert sorted(calls) == sorted(answered), "a tool call lacks its result"


@pytest.mark.parametrize("mode", ["stream", "tool", "commit"])
async def test_sigkill_mid_turn_recovers_exactly_once(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "lash.db"
    async with _core(db, []) as core:
        session = await core.session("crash").open()
        pending = await session.enqueue(PROMPT, source_key="user-msg-1")

    proc = await _start_worker(db, tmp_path, mode)
    try:
        # a second live worker on the same file is refused while the first is alive
        async with _core(db, []) as rival:
            rival_session = await rival.session("crash").open()
            with pytest.raises(lash.LashRuntimeError) as err:
                await rival_session.process_pending()
            assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_BUSY
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()

    @lash.tool
    async def side_effect(ctx: lash.ToolContext, text: str) -> str:
        """Append a line."""
        with (tmp_path / "effects.txt").open("a") as fh:
            fh.write(text + "\n")
        return "written"

    steps = [tool_call("side_effect", {"text": "from the new worker"}, "c1"), reply("all done")]
    async with _core(db, steps, [side_effect]) as core:
        store = core.store
        assert store is not None
        dead_lease = await store.get_lease("crash")
        assert dead_lease is not None
        before = await store.load_session("crash")
        if mode == "commit":
            # the commit was durable before the kill: the turn is there, exactly once
            assert before is not None and before.head_revision == 1
            assert (await store.get_turn_input("crash", pending.id)).state == "completed"  # type: ignore[union-attr]
        else:
            # nothing of the interrupted turn is visible
            assert before is None
        session = await core.session("crash").open()
        results = await session.process_pending()
        assert len(results) == (0 if mode == "commit" else 1)
        lease = await store.get_lease("crash")
        assert lease is not None and lease.fencing_token > dead_lease.fencing_token
        view = await session.read_view()
        users = [m.text for m in view.messages if m.role == "user"]
        assert users == [PROMPT]  # committed exactly once
        _assert_complete_history(view.messages)
        assert view.revision == 1
        assert (await store.get_turn_input("crash", pending.id)).state == "completed"  # type: ignore[union-attr]
        assert await session.process_pending() == []
    effects = (
        (tmp_path / "effects.txt").read_text().splitlines()
        if (tmp_path / "effects.txt").exists()
        else []
    )
    if mode == "stream":
        assert effects == ["from the new worker"]
    elif mode == "tool":
        # the inline tier re-runs the turn: the dead worker's tool ran, then the new one
        assert effects == ["from the first worker", "from the new worker"]
    else:
        assert effects == ["from the first worker"]


async def test_runtime_rebuild_and_worker_recovery_with_durable_stores(tmp_path: Path) -> None:
    """Durable fault matrix row 1: a cold rebuild keeps the graph, frames, usage and ingress."""
    db = tmp_path / "lash.db"
    async with _core(db, [reply("one")]) as core:
        session = await core.session("s").open()
        first = await session.turn("hello").run()
        await session.enqueue("queued for later", source_key="later")
        await session.submit_command("refresh_tool_catalog")
        attachment = await core.config.attachments.put("s", b"\x89PNG...", "image/png")
    async with _core(db, [reply("two")]) as core:
        session = await core.session("s").open()
        view = await session.read_view()
        assert [m.text for m in view.messages] == ["hello", "one"]
        assert view.revision == first.head_revision
        assert [p.input.plain_text for p in await session.pending_inputs()] == ["queued for later"]
        assert len(await session.queued_work()) == 1
        assert await core.config.attachments.get("s", attachment.id) == b"\x89PNG..."
        results = await session.process_pending()
        assert [r.assistant_text for r in results] == ["two"]
        report = await session.usage_report()
        assert report.usage.input_tokens == 20
        assert await session.queued_work() == []
