"""Kill a worker mid-turn, take over on a fresh one, and commit the turn exactly once.

Runs offline: the model is ``lash.testing.ScriptedProvider``, the store one SQLite file in a
temporary directory. Steps:

1. a turn that calls a tool and answers, committed;
2. a second user message is enqueued; a *worker process* claims it and starts the turn;
   its tool is still running when the worker is killed with SIGKILL;
3. a new worker opens the same file: the dead worker's lease is provably dead (same host,
   same boot, its pid is gone), so it takes over at once, re-claims the input under a new
   lease generation and runs the turn to one commit;
4. the transcript, the lease fencing tokens, the input states and the bytes on disk.

Run it with ``lash demo`` (``bash scripts/demo.sh`` sets up and runs that);
``examples/durable_demo.py`` is a thin wrapper around :func:`run`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import lash
from lash.testing import ScriptedProvider, reply, tool_call

MODEL = lash.ModelSpec("scripted-demo", context_window=32_000)
SESSION = "demo-session"


def note_tool(notes: Path, *, hang: bool) -> lash.Tool:
    """A tool with a visible side effect; ``hang`` makes it wait to be killed."""

    @lash.tool
    async def write_note(ctx: lash.ToolContext, text: str) -> str:
        """Append a line to the notes file."""
        if hang:
            (notes.parent / "worker-in-tool").write_text(str(os.getpid()))
            await asyncio.Event().wait()
        with notes.open("a") as fh:
            fh.write(f"{ctx.idempotency_key} {text}\n")
        return f"noted: {text}"

    return write_note


def core_for(db: Path, notes: Path, steps: list[object], *, hang: bool = False) -> lash.LashCore:
    return lash.LashCore.local(
        db,
        provider=ScriptedProvider(steps),  # type: ignore[arg-type]
        model=MODEL,
        tools=[note_tool(notes, hang=hang)],
        lease_timings=lash.LeaseTimings(ttl_s=30.0, renew_s=10.0),
    )


def step(n: int, text: str) -> None:
    print(f"\033[1m[{n}/4]\033[0m {text}", flush=True)


async def worker(db: Path, notes: Path) -> None:
    """The process that will be killed: claims the pending input and hangs in the tool."""
    core = core_for(
        db,
        notes,
        [tool_call("write_note", {"text": "second note"}, "call-2"), reply("unused")],
        hang=True,
    )
    async with core:
        session = await core.session(SESSION).open()
        await session.process_pending()


async def main(workdir: Path) -> int:
    db = workdir / "lash.db"
    notes = workdir / "notes.txt"
    started = time.monotonic()

    step(1, "first turn: the model calls write_note, then answers")
    core = core_for(
        db, notes, [tool_call("write_note", {"text": "first note"}, "call-1"), reply("Noted it.")]
    )
    async with core:
        session = await core.session(SESSION).open()
        result = await session.turn("Please note 'first note'.").run()
        print(f"      committed revision {result.head_revision}: {result.assistant_text!r}")
        pending = await session.enqueue("Please note 'second note' too.", source_key="msg-2")
        print(f"      enqueued the next user message as {pending.id}")
        lease = await core.store.get_lease(SESSION)  # type: ignore[union-attr]
        print(f"      lease fencing token after turn 1: {lease.fencing_token if lease else None}")

    step(2, "a worker process claims the message and is SIGKILLed inside the tool")
    marker = workdir / "worker-in-tool"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lash.cli.demo",
        "--worker",
        str(workdir),
        stdout=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        if proc.returncode is not None or time.monotonic() > deadline:
            print("      the worker did not reach the tool", file=sys.stderr)
            return 1
        await asyncio.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    print(f"      worker pid {proc.pid} killed with SIGKILL (exit {proc.returncode})")

    step(3, "a new worker takes over the dead worker's lease and finishes the turn")
    core = core_for(
        db,
        notes,
        [tool_call("write_note", {"text": "second note"}, "call-2"), reply("Both notes taken.")],
    )
    async with core:
        store = core.store
        assert store is not None
        dead = await store.get_lease(SESSION)
        print(
            f"      found the dead worker's lease: fencing {dead.fencing_token if dead else None}, "
            f"owner {dead.owner.owner_id if dead else None}"
        )
        session = await core.session(SESSION).open()
        results = await session.process_pending()
        for r in results:
            print(f"      committed revision {r.head_revision}: {r.assistant_text!r}")
        lease = await store.get_lease(SESSION)
        print(f"      lease fencing token now: {lease.fencing_token if lease else None}")
        again = await session.process_pending()
        print(f"      running the queue again commits nothing more: {len(again)} turns")

        step(4, "what is durable now")
        view = await session.read_view()
        for msg in view.messages:
            detail = msg.text or ", ".join(f"{c.name}({c.arguments})" for c in msg.tool_calls)
            print(f"      {msg.role:>9}: {detail}")
        inputs = [await store.get_turn_input(SESSION, pending.id)]
        print(f"      input {pending.id}: {inputs[0].state if inputs[0] else 'gone'}")
        users = [m for m in view.messages if m.role == "user"]
        calls = [c.id for m in view.messages for c in m.tool_calls]
        answered = [m.tool_call_id or "" for m in view.messages if m.role == "tool"]
        size = _disk_bytes(workdir)
        print(f"      head revision {view.revision}, {size:,} bytes on disk (db + wal)")
        print("      notes file:", notes.read_text().strip().replace("\n", " | "))
    ok = len(users) == 2 and sorted(calls) == sorted(answered) and len(results) == 1
    verdict = "exactly one commit for the interrupted turn" if ok else "INVARIANT BROKEN"
    print(f"\n{verdict}; finished in {time.monotonic() - started:.2f}s")
    return 0 if ok else 1


def _disk_bytes(workdir: Path) -> int:
    return sum(p.stat().st_size for p in workdir.glob("lash.db*"))


def run() -> int:
    """Run the demo in a fresh temporary directory; 0 when every invariant held."""
    with tempfile.TemporaryDirectory(prefix="lash-demo-") as tmp:
        return asyncio.run(main(Path(tmp)))


def _worker_main(workdir: str) -> None:
    work = Path(workdir)
    asyncio.run(worker(work / "lash.db", work / "notes.txt"))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[2])
        sys.exit(0)
    sys.exit(run())
