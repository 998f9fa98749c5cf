"""``lash demo``: kill a worker mid-turn, take over on a new one, commit the turn exactly once.

Fully offline and real end to end, except the model: a loopback OpenAI-compatible server
(:class:`lash.testing.wire.WireServer`) replays the provider wire scripts in
``demo_scripts/``, and every worker talks to it through the real
:class:`~lash.providers.OpenAIChatProvider` over real sockets. The store is one fresh SQLite
file, the tools are the built-in workspace tools on a temporary workspace, and each worker is
its own OS process (``python -m lash.cli.demo --worker ...``) so the kill is a real SIGKILL.

1. worker-1 runs a turn that reads ``hello.py``, edits it and answers; it commits;
2. worker-2 claims the next message and is SIGKILLed while its ``exec_command`` runs;
3. worker-3 proves worker-2 dead (same host and boot, pid gone), reclaims the lease under the
   next fencing token, re-claims the input under that generation and runs the turn to one
   commit;
4. the committed transcript, the commit log, bytes on disk and the HTML trace.

Workers append what they ask of the store (lease claims, input claims, commits) to a small
journal beside the database; the parent tails that journal and the shared JSONL trace to show
each step as it happens. Everything a run writes (database, trace and its HTML page, journal,
worker logs, workspace) stays in the run's directory, printed at the end.
``examples/durable_demo.py`` is a thin wrapper around :func:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import lash
from lash.providers import OpenAIChatProvider, RetryPolicy
from lash.stores.base import MAX_CLAIM_INPUTS
from lash.stores.sqlite import SqliteStore
from lash.testing.wire import WireScript, WireServer
from lash.tools.builtin import workspace_tools
from lash.trace import JsonlTraceSink
from lash.types import (
    LeaseAcquired,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    RuntimeCommit,
    RuntimeCommitResult,
    TurnInputClaim,
)

SESSION = "demo-session"
MODEL = lash.ModelSpec("demo-model", context_window=128_000)
SYSTEM_PROMPT = "You are a careful coding agent working in a small workspace."
API_PREFIX = "/v1"
HELLO = 'def greet(name):\n    return "Hello, " + name + "!"\n'
TURN_1 = "Make greet() in hello.py use an f-string."
TURN_2 = "Now run the checks and log the result."
WORKER_TIMEOUT_S = 60.0


# --- files of one demo run --------------------------------------------------------------


@dataclass(frozen=True)
class DemoPaths:
    """Where one run keeps everything (kept after the run so the trace can be opened)."""

    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def db(self) -> Path:
        return self.root / "lash.db"

    @property
    def trace(self) -> Path:
        return self.root / "trace.jsonl"

    @property
    def html(self) -> Path:
        return self.root / "trace.html"

    @property
    def journal(self) -> Path:
        return self.root / "store-journal.jsonl"

    def log(self, worker: str) -> Path:
        return self.root / f"{worker}.log"


def load_demo_scripts() -> list[WireScript]:
    """The wire scripts the loopback server replays, in order (shipped as package data)."""
    folder = resources.files("lash.cli") / "demo_scripts"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    return [
        WireScript.from_json(folder.joinpath(n).read_bytes()).with_endpoint(
            path=API_PREFIX + "/chat/completions"
        )
        for n in names
    ]


# --- the worker side ----------------------------------------------------------------------


class JournaledStore(SqliteStore):
    """The SQLite store, plus one journal line per lease claim, input claim and commit.

    The journal is only for the demo's display and commit log; the store's behaviour is
    untouched (each override calls the real method first and writes after it returns).
    """

    def __init__(self, path: Path, *, journal: Path, worker: str) -> None:
        super().__init__(path)
        self._journal_path = journal
        self._worker_name = worker

    def _note(self, op: str, **data: Any) -> None:
        line = {"op": op, "worker": self._worker_name, "pid": os.getpid(), "ms": time.time() * 1000}
        line.update(data)
        fd = os.open(self._journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)

    def _note_claim(self, op: str, claim: LeaseClaim, **data: Any) -> None:
        if isinstance(claim, LeaseAcquired):
            self._note(op, fencing=claim.lease.fencing_token, **data)
        else:
            holder = claim.holder
            pid = holder.owner.liveness.pid if holder.owner.liveness else None
            self._note("lease_busy", fencing=holder.fencing_token, holder_pid=pid)

    async def try_claim_lease(self, session_id: str, owner: LeaseOwner, ttl_ms: int) -> LeaseClaim:
        claim = await super().try_claim_lease(session_id, owner, ttl_ms)
        self._note_claim("lease_acquired", claim)
        return claim

    async def reclaim_lease(
        self, session_id: str, owner: LeaseOwner, observed: LeaseFence, ttl_ms: int
    ) -> LeaseClaim:
        claim = await super().reclaim_lease(session_id, owner, observed, ttl_ms)
        self._note_claim("lease_reclaimed", claim, from_fencing=observed.fencing_token)
        return claim

    async def release_lease(self, fence: LeaseFence) -> None:
        await super().release_lease(fence)
        self._note("lease_released", fencing=fence.fencing_token)

    async def claim_next_turn_inputs(
        self, fence: LeaseFence, max_inputs: int = MAX_CLAIM_INPUTS
    ) -> TurnInputClaim | None:
        claim = await super().claim_next_turn_inputs(fence, max_inputs)
        if claim is not None:
            self._note(
                "inputs_claimed", generation=claim.session_lease_generation, inputs=claim.input_ids
            )
        return claim

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        result = await super().commit(commit)
        self._note(
            "commit",
            revision=result.head_revision,
            fencing=commit.lease.fencing_token if commit.lease else None,
            turn=commit.turn_commit.turn_id if commit.turn_commit else None,
            inputs=[i for c in commit.completed_turn_input_claims for i in c.input_ids],
            released=commit.release_lease,
            replayed=result.replayed,
        )
        return result


def build_core(
    paths: DemoPaths, base_url: str, store: SqliteStore, *, trace: bool
) -> lash.LashCore:
    """A core on the real OpenAI-compatible adapter, pointed at the loopback server."""
    provider = OpenAIChatProvider(
        api_key="offline-demo-key",
        base_url=base_url,
        retry=RetryPolicy(max_attempts=1),
        # trust_env=False: a proxy from the environment must never see the loopback calls.
        http_client=httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(30.0)),
    )
    builder = (
        lash.LashCore.builder()
        .provider(provider)
        .model(MODEL)
        .system_prompt(SYSTEM_PROMPT)
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools(workspace_tools(paths.workspace, default_shell="/bin/sh"))
        .lease_timings(lash.LeaseTimings(ttl_s=30.0, renew_s=10.0))
    )
    if trace:
        builder.trace(JsonlTraceSink(paths.trace))
    return builder.build()


async def _worker(paths: DemoPaths, base_url: str, name: str) -> None:
    store = JournaledStore(paths.db, journal=paths.journal, worker=name)
    async with build_core(paths, base_url, store, trace=True) as core:
        session = await core.session(SESSION).open()
        await session.process_pending()


# --- the parent: progress display ---------------------------------------------------------


def _short(text: str, limit: int = 72) -> str:
    """One line, at most ``limit`` characters, safe to print as rich markup."""
    flat = " ".join(str(text).split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _call_text(name: str, args: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={_short(json.dumps(v), 84)}" for k, v in args.items())
    return f"{name}({shown})"


@dataclass
class Feed:
    """Tails the store journal and the JSONL trace and prints each event as it arrives."""

    paths: DemoPaths
    console: Console
    started_ms: float
    input_labels: dict[str, str] = field(default_factory=dict)
    journal: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    worker: str = "?"
    busy_pid: int | None = None
    failures: list[str] = field(default_factory=list)
    _offsets: dict[Path, int] = field(default_factory=dict)

    def _read_new(self, path: Path) -> list[dict[str, Any]]:
        try:
            with path.open("rb") as fh:
                fh.seek(self._offsets.get(path, 0))
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # only whole lines; a half-written one waits
        self._offsets[path] = self._offsets.get(path, 0) + end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]

    def poll(self) -> None:
        """Print whatever the workers wrote since the last poll, in time order."""
        events: list[tuple[float, int, str, dict[str, Any]]] = []
        for entry in self._read_new(self.paths.journal):
            self.journal.append(entry)
            events.append((entry["ms"], len(events), "journal", entry))
        for record in self._read_new(self.paths.trace):
            self.trace.append(record)
            stamp = _iso_ms(record.get("timestamp"))
            events.append((stamp, len(events), "trace", record))
        for at_ms, _, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
            line = self._journal_line(item) if kind == "journal" else self._trace_line(item)
            if line:
                self.say(line, who=item.get("worker", self.worker), at_ms=at_ms)

    def say(
        self, text: str, *, who: str | None = None, mark: str = " ", at_ms: float | None = None
    ) -> None:
        """One progress line, stamped with when it happened (seconds since the demo began)."""
        at = (at_ms if at_ms is not None else time.time() * 1000) - self.started_ms
        stamp = f"[dim]{max(at, 0) / 1000:5.2f}s[/dim]"
        label = f"[cyan]{who:<8}[/cyan] " if who else ""
        self.console.print(f"  {stamp} {mark} {label}{text}")

    def label(self, input_id: str) -> str:
        return self.input_labels.get(input_id, input_id[:14] + "…")

    def _journal_line(self, e: dict[str, Any]) -> str | None:
        op = e["op"]
        if op == "lease_acquired":
            return f"lease acquired · fencing token [bold]{e['fencing']}[/bold]"
        if op == "lease_busy":
            self.busy_pid = e["holder_pid"]
            return f"lease busy: fencing token {e['fencing']} is held by pid {e['holder_pid']}"
        if op == "lease_reclaimed":
            return (
                f"[bold yellow]takeover[/bold yellow]: pid {self.busy_pid} is gone on this host, "
                f"so its holder is provably dead; lease reclaimed from fencing token "
                f"{e['from_fencing']} → fencing token [bold]{e['fencing']}[/bold] (no TTL wait)"
            )
        if op == "lease_released":
            return f"lease released (fencing token {e['fencing']})"
        if op == "inputs_claimed":
            names = ", ".join(self.label(i) for i in e["inputs"])
            return f"claimed {names} under lease generation [bold]{e['generation']}[/bold]"
        if op == "commit":
            names = ", ".join(self.label(i) for i in e["inputs"]) or "no input"
            released = "; lease released with it" if e["released"] else ""
            return (
                f"[bold green]commit[/bold green] · revision [bold]{e['revision']}[/bold] · "
                f"fencing token {e['fencing']} · settles {names}{released}"
            )
        return None

    def _trace_line(self, record: dict[str, Any]) -> str | None:
        kind = record.get("type")
        payload = record.get("payload") or {}
        if kind == "llm_call_completed":
            parts = (payload.get("response") or {}).get("parts") or []
            calls = [
                _call_text(p["name"], p.get("arguments") or {})
                for p in parts
                if p.get("kind") == "tool_call"
            ]
            text = "".join(p.get("text", "") for p in parts if p.get("kind") == "text")
            said = "; ".join(calls) if calls else repr(_short(text))
            return f"model → {said}"
        if kind == "tool_call_started":
            return f"tool [magenta]{payload.get('name')}[/magenta] running …"
        if kind == "tool_call_completed":
            output = payload.get("output") or {}
            status = output.get("status", "?") if isinstance(output, dict) else "?"
            ms = payload.get("duration_ms")
            took = f" in {ms / 1000:.2f}s" if isinstance(ms, int | float) else ""
            return f"tool [magenta]{payload.get('name')}[/magenta] {status}{took}"
        if kind == "llm_call_failed":
            error = payload.get("error")
            detail = error.get("message") if isinstance(error, dict) else None
            self.failures.append(str(detail or error))
            return f"[red]model call failed[/red]: {_short(json.dumps(error))}"
        return None


def _iso_ms(stamp: Any) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(stamp)).timestamp() * 1000
    except ValueError:
        return time.time() * 1000


# --- the parent: orchestration ------------------------------------------------------------


class DemoFailed(Exception):
    """A step did not happen as the demo expects (the message says which)."""


def _child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; ``pgrep`` elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@dataclass
class Demo:
    """One run: the loopback server, the parent's core and the workers it starts."""

    paths: DemoPaths
    server: WireServer
    core: lash.LashCore
    feed: Feed
    console: Console
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    trace_marks: dict[str, int] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return self.server.url(API_PREFIX)

    async def spawn(self, name: str) -> asyncio.subprocess.Process:
        log = self.paths.log(name).open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lash.cli.demo",
            "--worker",
            str(self.paths.root),
            self.base_url,
            name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.procs.append(proc)
        self.feed.worker = name
        self.feed.say(f"[bold]{name}[/bold] started: a new OS process, pid {proc.pid}", mark="▸")
        return proc

    async def wait_until(
        self,
        what: str,
        ready: Callable[[], bool],
        proc: asyncio.subprocess.Process,
        *,
        until_exit: bool = False,
    ) -> None:
        """Keep the display live until ``ready()``; fail if the worker exits first or hangs."""
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        with self.console.status(f"[dim]waiting for {what} …[/dim]"):
            while True:
                self.feed.poll()
                if self.feed.failures:
                    lines = self.feed.failures[0].splitlines()
                    shown = "\n".join(lines[:12] + (["…"] if len(lines) > 12 else []))
                    raise DemoFailed(f"a model call failed, so the demo cannot go on:\n{shown}")
                if ready():
                    return
                if (proc.returncode is not None and not until_exit) or (
                    time.monotonic() > deadline
                ):
                    log = self.paths.log(self.feed.worker)
                    raise DemoFailed(f"{what} did not happen; see {log}")
                await asyncio.sleep(0.01)

    async def finish(self, name: str, proc: asyncio.subprocess.Process) -> None:
        """Follow ``name`` until it exits; it must exit cleanly."""
        await self.wait_until(
            f"{name} to finish", lambda: proc.returncode is not None, proc, until_exit=True
        )
        await proc.wait()
        self.feed.poll()
        if proc.returncode != 0:
            tail = self.paths.log(name).read_text(errors="replace").strip().splitlines()[-8:]
            raise DemoFailed(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))
        self.feed.say(f"{name} exited cleanly (pid {proc.pid})", mark="▸")

    async def enqueue(self, text: str, label: str) -> str:
        pending = await self.core.enqueue_turn_input(SESSION, text, source_key=f"demo-{label}")
        self.feed.input_labels[pending.id] = label
        self.feed.say(f'user message {label} enqueued: [italic]"{text}"[/italic]', mark="▸")
        return pending.id

    def step(self, n: int, text: str) -> None:
        self.feed.poll()
        self.console.print(f"\n[bold]{escape(f'[{n}/4]')}[/bold] [bold blue]{text}[/bold blue]")

    def tool_running(self, worker: str, name: str) -> bool:
        return any(
            r.get("type") == "tool_call_started" and (r.get("payload") or {}).get("name") == name
            for r in self.feed.trace[self.trace_marks.get(worker, 0) :]
        )

    async def turn_one(self) -> None:
        self.step(1, "a turn that reads a file, edits it and answers")
        await self.enqueue(TURN_1, "#1")
        proc = await self.spawn("worker-1")
        await self.finish("worker-1", proc)
        edited = (self.paths.workspace / "hello.py").read_text()
        self.feed.say(f"hello.py now reads: [green]{_short(edited.splitlines()[1])}[/green]")

    async def turn_two_killed(self) -> tuple[str, int]:
        self.step(2, "the next turn: its worker is SIGKILLed while a tool runs")
        input_id = await self.enqueue(TURN_2, "#2")
        self.feed.poll()
        self.trace_marks["worker-2"] = len(self.feed.trace)
        proc = await self.spawn("worker-2")
        await self.wait_until(
            "worker-2 reaching exec_command",
            lambda: self.tool_running("worker-2", "exec_command"),
            proc,
        )
        children: list[int] = []

        def command_started() -> bool:
            children[:] = _child_pids(proc.pid)
            return bool(children)

        await self.wait_until("the exec_command process starting", command_started, proc)
        os.kill(proc.pid, signal.SIGKILL)
        self.killed.add("worker-2")
        await proc.wait()
        for child in children:  # the command runs in its own process group: a crash of the
            with contextlib.suppress(ProcessLookupError, PermissionError):  # machine ends it too
                os.killpg(child, signal.SIGKILL)
        self.feed.say(
            f"[bold red]worker-2 (pid {proc.pid}) killed with SIGKILL[/bold red] while "
            f"exec_command ran (exit {proc.returncode}); its orphaned command (pid "
            f"{', '.join(map(str, children))}) was killed too, as a machine crash would",
            mark="✗",
        )
        store = self.core.store
        assert store is not None
        lease = await store.get_lease(SESSION)
        row = await store.get_turn_input(SESSION, input_id)
        if lease is None or row is None or row.claim is None:
            raise DemoFailed("worker-2 left no lease or input claim behind")
        left = (lease.expires_at_ms - int(time.time() * 1000)) / 1000
        persisted = await store.load_session(SESSION)
        head = persisted.head_revision if persisted else 0
        self.feed.say(
            f"in the store now: lease fencing token {lease.fencing_token} still names the dead "
            f"worker ({lease.owner.owner_id}, TTL {left:.0f}s left); input #2 is still "
            f"claimed under lease generation {row.claim.session_lease_generation} "
            f"(state {row.state}); the head is still revision {head}"
        )
        return input_id, row.claim.session_lease_generation

    async def takeover(self) -> None:
        self.step(3, "a new worker takes over the lease and finishes the turn")
        proc = await self.spawn("worker-3")
        await self.finish("worker-3", proc)


async def main(
    paths: DemoPaths, console: Console, *, scripts: list[WireScript] | None = None
) -> int:
    """Run the demo in ``paths.root``; 0 when every invariant held.

    ``scripts`` replaces the shipped wire scripts (tests use it to break one on purpose).
    """
    started = time.monotonic()
    paths.workspace.mkdir(parents=True, exist_ok=True)
    (paths.workspace / "hello.py").write_text(HELLO)
    scripts = load_demo_scripts() if scripts is None else scripts
    console.print("[bold]lash demo[/bold] · offline: no network, no API key")
    async with WireServer(*scripts) as server:
        console.print(
            f"  model  real OpenAI-compatible adapter → loopback server {server.url(API_PREFIX)} "
            f"replaying {len(scripts)} wire scripts"
        )
        console.print(f"  store  {paths.db} (fresh SQLite file)")
        console.print(f"  tools  read_file, edit, exec_command, … on {paths.workspace}")
        store = SqliteStore(paths.db)
        async with build_core(paths, server.url(API_PREFIX), store, trace=False) as core:
            feed = Feed(paths, console, started_ms=time.time() * 1000)
            demo = Demo(paths, server, core, feed, console)
            try:
                await demo.turn_one()
                input_id, dead_generation = await demo.turn_two_killed()
                await demo.takeover()
                feed.poll()
                demo.step(4, "what is durable now")
                ok = await report(demo, input_id, dead_generation)
            except DemoFailed as err:
                console.print(f"\n[bold red]demo failed:[/bold red] {escape(str(err))}")
                return 1
            finally:
                for proc in demo.procs:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
        try:
            server.assert_exhausted()
        except AssertionError as err:
            console.print(
                f"[bold red]the wire scripts were not replayed as written:[/bold red] "
                f"{escape(str(err))}"
            )
            return 1
        console.print(
            f"loopback server: {len(server.exchanges)} requests, each matched its wire script"
        )
    verdict = (
        "[bold green]exactly one commit for the interrupted turn[/bold green]"
        if ok
        else "[bold red]INVARIANT BROKEN[/bold red]"
    )
    console.print(f"\n{verdict}; finished in {time.monotonic() - started:.2f}s")
    return 0 if ok else 1


def _lease_log(journal: list[dict[str, Any]], *, killed: set[str]) -> Table:
    """One row per lease generation: who held it, how it was taken and how it ended."""
    table = Table(title="\nlease log", title_justify="left", box=None, pad_edge=False)
    for column in ("fencing token", "worker", "pid", "taken", "ended"):
        table.add_column(column)
    rows: dict[int, list[str]] = {}
    for e in journal:
        if e["op"] == "lease_acquired":
            rows[e["fencing"]] = [e["worker"], str(e["pid"]), "acquired", "-"]
        elif e["op"] == "lease_reclaimed":
            taken = f"reclaimed from {e['from_fencing']} (holder provably dead)"
            rows[e["fencing"]] = [e["worker"], str(e["pid"]), taken, "-"]
        elif e["op"] == "commit" and e["released"] and e["fencing"] in rows:
            rows[e["fencing"]][3] = f"released with revision {e['revision']}"
        elif e["op"] == "lease_released" and e["fencing"] in rows:
            if rows[e["fencing"]][3] == "-":
                rows[e["fencing"]][3] = "released"
    for fencing, (worker, pid, taken, ended) in sorted(rows.items()):
        if worker in killed:
            ended = "SIGKILLed holding it; never released, never committed"
        table.add_row(str(fencing), worker, pid, taken, ended)
    return table


async def report(demo: Demo, input_id: str, dead_generation: int) -> bool:
    """Print the transcript, commit log, claims, bytes and trace; check the invariants."""
    console, paths, feed = demo.console, demo.paths, demo.feed
    store = demo.core.store
    assert store is not None
    session = await demo.core.session(SESSION).open()
    view = await session.read_view()

    transcript = Table(title="committed transcript", title_justify="left", box=None, pad_edge=False)
    transcript.add_column("role", style="bold")
    transcript.add_column("content")
    for msg in view.messages:
        if msg.tool_calls:
            detail = "; ".join(_call_text(c.name, dict(c.arguments)) for c in msg.tool_calls)
        elif msg.role == "tool":
            detail = f"{escape(f'[{msg.tool_call_id}]')} {_short(msg.text or '', 90)}"
        else:
            detail = _short(msg.text or "", 100)
        transcript.add_row(msg.role, detail)
    console.print(transcript)

    commits = [e for e in feed.journal if e["op"] == "commit"]
    log = Table(title="\ncommit log", title_justify="left", box=None, pad_edge=False)
    for column in ("revision", "fencing token", "worker", "pid", "turn", "settles input"):
        log.add_column(column)
    for e in commits:
        turn = (e["turn"] or "-")[:12]
        inputs = ", ".join(feed.label(i) for i in e["inputs"]) or "-"
        log.add_row(str(e["revision"]), str(e["fencing"]), e["worker"], str(e["pid"]), turn, inputs)
    console.print(log)
    console.print(_lease_log(feed.journal, killed=demo.killed))

    row = await store.get_turn_input(SESSION, input_id)
    claims = [e for e in feed.journal if e["op"] == "inputs_claimed" and input_id in e["inputs"]]
    history = " → ".join(f"generation {e['generation']} ({e['worker']})" for e in claims)
    state = row.state if row else "gone"
    console.print(f"\ninput #2 claims: {history} → {state}")
    once = [e for e in commits if input_id in e["inputs"]]
    new_generation = claims[-1]["generation"] if claims else None
    console.print(
        f"interrupted turn: {len(once)} commit(s) for input #2 — the dead worker held lease "
        f"generation {dead_generation}, the commit was fenced by generation {new_generation}"
    )

    users = [m for m in view.messages if m.role == "user"]
    calls = sorted(c.id for m in view.messages for c in m.tool_calls)
    answered = sorted(m.tool_call_id or "" for m in view.messages if m.role == "tool")
    started_calls = [
        (r.get("payload") or {}).get("call_id")
        for r in feed.trace
        if r.get("type") == "tool_call_started"
    ]
    lost = [c for c in started_calls if c not in calls]
    console.print(
        f"tool calls: {len(started_calls)} started, {len(calls)} in the transcript, each with "
        f"its result; never committed: {', '.join(map(str, lost)) or 'none'}"
    )

    files = sorted(p for p in paths.root.glob("lash.db*") if p.is_file())
    sizes = ", ".join(f"{p.name} {p.stat().st_size:,}" for p in files)
    total = sum(p.stat().st_size for p in files)
    persisted = await store.load_session(SESSION)
    nodes = len(persisted.nodes) if persisted else 0
    console.print(
        f"bytes on disk: {total:,} ({sizes}); head revision {view.revision}, {nodes} graph nodes"
    )
    checks = paths.workspace / "checks.log"
    logged = checks.read_text().splitlines() if checks.exists() else []
    console.print(f"checks.log: {len(logged)} line(s) {escape(repr(logged))}")

    from lash.trace.viewer import build_model, load_records, write_html

    target = write_html(paths.trace, paths.html, title="lash demo trace")
    counts = build_model(load_records(paths.trace))["counts"]
    console.print(
        f"HTML trace: [bold]{target}[/bold] ({counts['llm_calls']} model calls, "
        f"{counts['tool_calls']} tool calls, {counts['turns']} turn runs; JSONL: {paths.trace})"
    )

    pending = await session.pending_inputs()
    await session.close()
    return (
        len(once) == 1
        and state == "completed"
        and new_generation is not None
        and new_generation > dead_generation
        and len(users) == 2
        and view.revision == 2
        and calls == answered
        and not pending
        and logged == ["checks passed"]
    )


def _console() -> Console:
    tty = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=not tty, width=None if tty else 160)


def run(root: Path | None = None) -> int:
    """Run the demo in ``root`` (default: a new temporary directory, kept); 0 when it held."""
    console = _console()
    target = Path(tempfile.mkdtemp(prefix="lash-demo-")) if root is None else root
    code = asyncio.run(main(DemoPaths(target), console))
    console.print(f"everything this run wrote is in {target}")
    return code


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        asyncio.run(_worker(DemoPaths(Path(sys.argv[2])), sys.argv[3], sys.argv[4]))
        sys.exit(0)
    sys.exit(run())
