"""PostgresStore acceptance: the database clock decides leases, many worker processes share
sessions safely (one SIGKILLed mid-turn), and workers ride out a PostgreSQL restart.

The conformance kit (``test_conformance.py``, backend ``postgres``) covers the store contract;
these tests cover what only a shared server can show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest

import lash
from lash.errors import StoreError, StoreErrorKind
from lash.runtime.worker import Worker
from lash.stores.postgres import PostgresStore
from lash.stores.postgres._errors import translate
from lash.stores.postgres.schema import COMPONENT, SCHEMA_VERSION
from lash.stores.sqlite._rows import dec_node
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.conformance._support import commit, message_node
from lash.testing.postgres import DSN_ENV, PostgresUnavailable, TemporaryPostgres
from lash.testing.servers import server_unavailable
from lash.types import (
    LeaseAcquired,
    LeaseOwner,
    LlmRequest,
    MessagePayload,
    SessionNode,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

PY = sys.executable
DEADLINE_S = 60.0


@contextlib.asynccontextmanager
async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


def _schema() -> str:
    return f"lash_t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def schema_store(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[PostgresStore]:
    """A store on a fresh schema (dropped afterwards), deciding by the database clock."""
    store = PostgresStore(postgres_dsn, schema=_schema(), attachments_root=tmp_path / "blobs")
    await store.open()
    try:
        yield store
    finally:
        await store.drop_schema()
        await store.aclose()


# --- the database clock decides --------------------------------------------------------


def _owner(name: str) -> LeaseOwner:
    return LeaseOwner(owner_id=name, incarnation_id=f"{name}:1")


async def test_forged_far_future_lease_cannot_renew_or_commit(
    schema_store: PostgresStore, postgres_dsn: str
) -> None:
    """Worker A's lease expired by the database clock; a copy of it claiming an expiry ten
    years out, presented on a second, independent connection pool, is refused — and the
    session is free for B."""
    other = PostgresStore(postgres_dsn, schema=schema_store.schema)
    try:
        claim = await schema_store.try_claim_lease("s1", _owner("a"), 1)
        assert isinstance(claim, LeaseAcquired)
        await asyncio.sleep(0.01)  # let the database clock pass the 1 ms TTL
        decade_ms = 10 * 365 * 24 * 3600 * 1000
        forged = msgspec.structs.replace(
            claim.lease, expires_at_ms=claim.lease.expires_at_ms + decade_ms
        )
        assert forged.is_live(int(time.time() * 1000))  # by the forger's own reckoning

        with pytest.raises(StoreError) as renew_err:
            await other.renew_lease(forged.fence(), 30_000)
        assert renew_err.value.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED

        with pytest.raises(StoreError) as commit_err:
            await other.commit(commit("s1", forged.fence(), nodes=[message_node("n1")], expected=0))
        assert commit_err.value.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED
        assert await other.load_session("s1") is None

        taken = await other.try_claim_lease("s1", _owner("b"), 30_000)
        assert isinstance(taken, LeaseAcquired)
        assert taken.lease.fencing_token == claim.lease.fencing_token + 1
        # The stored expiry is the database's time plus the TTL, not anything a client sent.
        async with _connect(postgres_dsn) as conn:
            db_now = int(await conn.fetchval("SELECT extract(epoch FROM now()) * 1000"))
        assert abs(taken.lease.expires_at_ms - (db_now + 30_000)) < 5_000
    finally:
        await other.aclose()


async def test_a_worker_clock_ten_years_ahead_changes_no_lease_decision(
    schema_store: PostgresStore, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With this process's wall clock skewed a decade forward, leases are still stamped and
    judged by the database: a fresh 30 s lease is live, renewable and committable."""
    decade_ns = 10 * 365 * 24 * 3600 * 10**9
    real_time_ns, real_time = time.time_ns, time.time
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + decade_ns)
    monkeypatch.setattr(time, "time", lambda: real_time() + decade_ns / 1e9)
    claim = await schema_store.try_claim_lease("s1", _owner("a"), 30_000)
    assert isinstance(claim, LeaseAcquired)
    async with _connect(postgres_dsn) as conn:
        db_now = int(await conn.fetchval("SELECT extract(epoch FROM now()) * 1000"))
    assert abs(claim.lease.claimed_at_ms - db_now) < 5_000
    renewed = await schema_store.renew_lease(claim.lease.fence(), 30_000)
    assert renewed.expires_at_ms < db_now + 60_000
    result = await schema_store.commit(
        commit("s1", claim.lease.fence(), nodes=[message_node("n1")], expected=0)
    )
    assert result.head_revision == 1


async def test_live_lease_fence_from_another_connection_commits(
    schema_store: PostgresStore, postgres_dsn: str
) -> None:
    """The positive control: the genuine fence commits from an independent connection."""
    other = PostgresStore(postgres_dsn, schema=schema_store.schema)
    try:
        claim = await schema_store.try_claim_lease("s1", _owner("a"), 30_000)
        assert isinstance(claim, LeaseAcquired)
        result = await other.commit(
            commit("s1", claim.lease.fence(), nodes=[message_node("n1")], expected=0)
        )
        assert result.head_revision == 1
        loaded = await schema_store.load_session("s1")
        assert loaded is not None and [n.node_id for n in loaded.nodes] == ["n1"]
    finally:
        await other.aclose()


# --- schema versioning -----------------------------------------------------------------


async def test_schema_is_versioned_and_a_newer_version_is_refused(
    postgres_dsn: str,
) -> None:
    schema = _schema()
    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        await store.open()
        async with _connect(postgres_dsn) as conn:
            version = await conn.fetchval(
                f"SELECT version FROM {schema}.lash_schema_versions WHERE component = $1",
                COMPONENT,
            )
            assert version == SCHEMA_VERSION
            await conn.execute(
                f"UPDATE {schema}.lash_schema_versions SET version = $1 WHERE component = $2",
                SCHEMA_VERSION + 1,
                COMPONENT,
            )
        newer = PostgresStore(postgres_dsn, schema=schema)
        with pytest.raises(StoreError) as err:
            await newer.open()
        assert err.value.kind is StoreErrorKind.SCHEMA_TOO_NEW
        await newer.aclose()
    finally:
        await store.drop_schema()
        await store.aclose()


async def test_many_workers_opening_a_fresh_schema_at_once_agree(postgres_dsn: str) -> None:
    """The advisory lock makes concurrent first opens create the schema exactly once."""
    schema = _schema()
    stores = [PostgresStore(postgres_dsn, schema=schema) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        claims = await asyncio.gather(
            *(s.try_claim_lease("s", _owner(f"w{i}"), 30_000) for i, s in enumerate(stores))
        )
        assert sum(isinstance(c, LeaseAcquired) for c in claims) == 1
    finally:
        await stores[0].drop_schema()
        for s in stores:
            await s.aclose()


async def test_unversioned_lash_tables_are_refused(postgres_dsn: str) -> None:
    """A schema holding ``lash_*`` tables but no version row is not written into."""
    schema = _schema()
    async with _connect(postgres_dsn) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.lash_sessions (x int)")
    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        with pytest.raises(StoreError) as err:
            await store.open()
        assert err.value.kind is StoreErrorKind.CORRUPT
    finally:
        await store.aclose()
        async with _connect(postgres_dsn) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_bad_schema_names_and_pool_sizes_are_rejected() -> None:
    with pytest.raises(StoreError) as err:
        PostgresStore("postgresql://x/y", schema='x"; DROP TABLE y; --')
    assert err.value.kind is StoreErrorKind.INVALID_ARGUMENT
    with pytest.raises(StoreError):
        PostgresStore("postgresql://x/y", min_connections=5, max_connections=2)


def test_temporary_postgres_without_binaries_says_how_to_get_them(tmp_path: Path) -> None:
    server = TemporaryPostgres(bin_dir=tmp_path, use_env=False)  # no initdb here
    with pytest.raises(PostgresUnavailable, match="postgresql"):
        server.start()
    assert server.data_dir is None


def test_temporary_postgres_defers_to_the_dsn_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, "postgresql://someone@db.invalid/lash")
    with TemporaryPostgres() as server:
        assert server.external and server.dsn == "postgresql://someone@db.invalid/lash"
        with pytest.raises(RuntimeError):
            server.restart()


async def test_unreachable_server_is_a_retryable_error() -> None:
    store = PostgresStore("postgresql://lash@127.0.0.1:1/postgres", connect_timeout_s=2)
    with pytest.raises(StoreError) as err:
        await store.load_session("s")
    assert err.value.kind is StoreErrorKind.BACKEND and err.value.retryable
    await store.aclose()


@pytest.mark.parametrize(
    ("exc", "sqlstate"),
    [
        (asyncpg.exceptions.SerializationError("x"), "40001"),
        (asyncpg.exceptions.DeadlockDetectedError("x"), "40P01"),
        (asyncpg.exceptions.LockNotAvailableError("x"), "55P03"),
        (asyncpg.exceptions.AdminShutdownError("x"), "57P01"),
        (asyncpg.exceptions.ConnectionDoesNotExistError("x"), "08003"),
    ],
)
def test_conflicts_and_lost_connections_translate_to_retryable_errors(
    exc: Exception, sqlstate: str
) -> None:
    err = translate(exc, "db")
    assert err.kind is StoreErrorKind.BACKEND and err.retryable
    assert err.details["sqlstate"] == sqlstate


def test_other_database_errors_are_not_retryable() -> None:
    err = translate(asyncpg.exceptions.UniqueViolationError("x"), "db")
    assert not err.retryable


async def test_a_lock_timeout_surfaces_as_a_retryable_error(
    schema_store: PostgresStore, postgres_dsn: str
) -> None:
    """Another transaction sits on the lease row; the store gives up after its lock timeout."""
    claim = await schema_store.try_claim_lease("s1", _owner("a"), 30_000)
    assert isinstance(claim, LeaseAcquired)
    impatient = PostgresStore(postgres_dsn, schema=schema_store.schema, lock_timeout_ms=100)
    async with _connect(postgres_dsn) as blocker:
        tx = blocker.transaction()
        await tx.start()
        try:
            await blocker.execute(
                f"SELECT 1 FROM {schema_store.schema}.lash_session_leases "
                "WHERE session_id = 's1' FOR UPDATE"
            )
            with pytest.raises(StoreError) as err:
                await impatient.renew_lease(claim.lease.fence(), 30_000)
            assert err.value.retryable and err.value.details["sqlstate"] == "55P03"
        finally:
            await tx.rollback()
            await impatient.aclose()
    renewed = await schema_store.renew_lease(claim.lease.fence(), 30_000)
    assert renewed.fencing_token == claim.lease.fencing_token


# --- many worker processes -------------------------------------------------------------

# One worker process: a LashCore over PostgresStore, a Worker polling the sessions with
# pending work. Every turn is tool call -> tool result -> reply. The worker named by
# LASH_TEST_HANG_AFTER hangs inside its N-th tool call (after touching a marker file) so the
# test can SIGKILL it mid-turn. On SIGTERM it stops gracefully and prints its stats.
WORKER_PROGRAM = r"""
import asyncio, json, os, signal, sys
from pathlib import Path

import lash
from lash.runtime.worker import Worker
from lash.stores.postgres import PostgresStore
from lash.stores.postgres._errors import translate
from lash.testing import ScriptedProvider, reply, tool_call

dsn, schema, blobs, control = sys.argv[1:5]
control = Path(control)
hang_after = int(os.environ.get("LASH_TEST_HANG_AFTER", "0"))
calls = 0


def step(request):
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "tool":
        return reply("done")
    return tool_call("note", {"text": "x"})


@lash.tool
async def note(ctx: lash.ToolContext, text: str) -> str:
    "Take a note."
    global calls
    calls += 1
    if hang_after and calls >= hang_after:
        (control / f"hanging.{os.getpid()}").write_text(str(os.getpid()))
        await asyncio.Event().wait()
    await asyncio.sleep(0.002)
    return "noted"


async def main():
    store = PostgresStore(dsn, schema=schema, attachments_root=blobs, max_connections=4)
    provider = ScriptedProvider([step] * 100_000)
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("scripted"))
        .effect_host(lash.InlineEffectHost())
        .store(store)
        .tool(note)
        .lease_timings(lash.LeaseTimings(ttl_s=3, renew_s=1))
        .build()
    )
    worker = Worker(core, store.list_sessions_with_pending_work, idle_backoff_s=(0.01, 0.2))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    (control / f"ready.{os.getpid()}").write_text("1")
    stats = await worker.run()
    await core.aclose()
    await store.aclose()
    print(json.dumps({"pid": os.getpid(), **stats.__dict__}), flush=True)


asyncio.run(main())
"""

ENQUEUE_PROGRAM = r"""
import asyncio, sys
import lash
from lash.stores.postgres import PostgresStore
from lash.stores.postgres._errors import translate
from lash.types import PendingTurnInputDraft, TurnInput, TurnInputIngress

dsn, schema, sessions, per_session = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


async def main():
    store = PostgresStore(dsn, schema=schema, max_connections=4)
    for j in range(per_session):
        for i in range(sessions):
            await store.enqueue_turn_input(
                PendingTurnInputDraft(
                    session_id=f"s{i:03d}",
                    input=TurnInput.of(f"s{i:03d}/in{j}"),
                    ingress=TurnInputIngress.next_turn(),
                    source_key=f"s{i:03d}/in{j}",
                )
            )
        await asyncio.sleep(0.05)
    await store.aclose()


asyncio.run(main())
"""


def _spawn(program: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [PY, str(program), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


async def _count(conn: asyncpg.Connection, schema: str, sql: str) -> int:
    return int(await conn.fetchval(sql.replace("{s}", schema)))


def _history_problems(session_id: str, nodes: list[SessionNode]) -> list[str]:
    """Every turn is user -> assistant(tool call) -> tool(result) -> assistant(reply); every
    tool call has exactly one result."""
    problems: list[str] = []
    roles = []
    calls: Counter[str] = Counter()
    results: Counter[str] = Counter()
    for node in nodes:
        if not isinstance(node.payload, MessagePayload):
            continue
        message = node.payload.message
        roles.append(message.role)
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                calls[part.id] += 1
            elif isinstance(part, ToolResultPart):
                results[part.tool_call_id] += 1
    expected = ["user", "assistant", "tool", "assistant"] * (len(roles) // 4)
    if roles != expected:
        problems.append(f"{session_id}: roles {roles}")
    if calls != results or any(v != 1 for v in calls.values()):
        problems.append(f"{session_id}: calls {dict(calls)} results {dict(results)}")
    return problems


def _user_texts(nodes: list[SessionNode]) -> list[str]:
    texts = []
    for node in nodes:
        if isinstance(node.payload, MessagePayload) and node.payload.message.role == "user":
            texts.extend(p.text for p in node.payload.message.parts if isinstance(p, TextPart))
    return texts


async def _verify_exactly_once(
    conn: asyncpg.Connection, schema: str, sessions: int, per_session: int
) -> None:
    """Every input consumed exactly once, by its own session; histories valid; no turn twice."""
    problems: list[str] = []
    for i in range(sessions):
        sid = f"s{i:03d}"
        rows = await conn.fetch(
            f"SELECT node_json FROM {schema}.lash_graph_nodes "
            "WHERE session_id = $1 AND NOT tombstoned ORDER BY seq",
            sid,
        )
        nodes = [dec_node(r[0]) for r in rows]
        problems.extend(_history_problems(sid, nodes))
        texts = Counter(_user_texts(nodes))
        wanted = Counter(f"{sid}/in{j}" for j in range(per_session))
        if texts != wanted:
            problems.append(f"{sid}: consumed {dict(texts)}")
        turns = await conn.fetchval(
            f"SELECT count(*) FROM {schema}.lash_turn_commits WHERE session_id = $1", sid
        )
        user_messages = sum(
            1
            for n in nodes
            if isinstance(n.payload, MessagePayload) and n.payload.message.role == "user"
        )
        if turns != user_messages:
            problems.append(f"{sid}: {turns} turn commits for {user_messages} user messages")
    assert not problems, "\n".join(problems[:20])
    states = await conn.fetch(
        f"SELECT state, count(*) FROM {schema}.lash_turn_inputs GROUP BY state"
    )
    assert {r[0]: r[1] for r in states} == {"completed": sessions * per_session}


@pytest.fixture
def control_dir(tmp_path: Path) -> Path:
    path = tmp_path / "control"
    path.mkdir()
    return path


@pytest.fixture
def programs(tmp_path: Path) -> tuple[Path, Path]:
    worker = tmp_path / "pg_worker.py"
    worker.write_text(WORKER_PROGRAM)
    enqueue = tmp_path / "pg_enqueue.py"
    enqueue.write_text(ENQUEUE_PROGRAM)
    return worker, enqueue


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    """Wait for ``proc``, draining (and closing) its pipes; ``(returncode, stderr)``."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _stop_all(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    stats = []
    for p in procs:
        if p.stdout is None or p.stdout.closed:
            continue  # already drained
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p.returncode == 0 and out.strip():
            stats.append(json.loads(out.strip().splitlines()[-1]))
        elif p.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"worker {p.pid} exited {p.returncode}: {err[-3000:]}")
    return stats


@pytest.mark.timeout(180)
async def test_four_workers_two_hundred_sessions_one_killed_mid_turn(
    postgres_dsn: str, tmp_path: Path, control_dir: Path, programs: tuple[Path, Path]
) -> None:
    sessions, per_session = 200, 5
    schema = _schema()
    setup = PostgresStore(postgres_dsn, schema=schema)
    await setup.open()
    worker_program, enqueue_program = programs
    args = (postgres_dsn, schema, str(tmp_path / "blobs"), str(control_dir))
    procs: list[subprocess.Popen[str]] = []
    conn = await asyncpg.connect(postgres_dsn)
    started = time.monotonic()
    try:
        victim = _spawn(worker_program, *args, env={"LASH_TEST_HANG_AFTER": "25"})
        procs = [victim] + [_spawn(worker_program, *args) for _ in range(3)]
        while len(list(control_dir.glob("ready.*"))) < 4:
            assert time.monotonic() - started < 30, "workers did not start"
            assert all(p.poll() is None for p in procs), _stop_all(procs)
            await asyncio.sleep(0.05)
        enqueuer = _spawn(enqueue_program, postgres_dsn, schema, str(sessions), str(per_session))

        # Kill the victim while it is inside a tool call (mid-turn, lease held).
        marker = control_dir / f"hanging.{victim.pid}"
        while not marker.exists():
            assert time.monotonic() - started < DEADLINE_S, "the victim never reached a tool"
            assert victim.poll() is None, _finish(victim, 10)[1][-3000:]
            await asyncio.sleep(0.01)
        owner_prefix = f"pid:{victim.pid}@"
        # Read what it holds while it hangs (after the kill, others may reclaim at once).
        held = await conn.fetch(
            f"SELECT session_id FROM {schema}.lash_session_leases "
            "WHERE owner_id LIKE $1 AND lease_token <> ''",
            owner_prefix + "%",
        )
        orphaned = {str(r[0]) for r in held}
        assert orphaned, "the victim held no lease mid-turn"
        victim.send_signal(signal.SIGKILL)
        _finish(victim, 10)

        code, err = _finish(enqueuer, DEADLINE_S)
        assert code == 0, err[-3000:]
        total = sessions * per_session
        while True:
            done = await _count(
                conn, schema, "SELECT count(*) FROM {s}.lash_turn_inputs WHERE state = 'completed'"
            )
            if done == total:
                break
            assert time.monotonic() - started < DEADLINE_S, f"only {done}/{total} consumed"
            assert all(p.poll() is None for p in procs[1:]), "a surviving worker died"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        stats = _stop_all(procs)
        assert len(stats) == 3
        assert all(s["errors"] == 0 for s in stats), stats
        assert sum(int(s["turns"]) for s in stats) > 0

        await _verify_exactly_once(conn, schema, sessions, per_session)
        # The sessions the victim held mid-turn were finished by the others.
        for sid in orphaned:
            owner = await conn.fetchval(
                f"SELECT owner_id FROM {schema}.lash_session_leases WHERE session_id = $1", sid
            )
            assert not str(owner).startswith(owner_prefix), sid
        print(f"contention: {total} inputs over 4 workers (1 killed) in {elapsed:.1f}s")
    finally:
        _stop_all(procs)
        await conn.close()
        await setup.drop_schema()
        await setup.aclose()


# --- a database restart under load -----------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[TemporaryPostgres]:
    """A server of this test's own, since the test restarts it."""
    if os.environ.get("LASH_POSTGRES_DSN"):
        pytest.skip("restarting needs a server the test started (LASH_POSTGRES_DSN is set)")
    server = TemporaryPostgres(use_env=False)
    try:
        server.start()
    except PostgresUnavailable as exc:
        server_unavailable(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.mark.timeout(180)
async def test_workers_ride_out_a_postgres_restart(
    private_postgres: TemporaryPostgres,
    tmp_path: Path,
    control_dir: Path,
    programs: tuple[Path, Path],
) -> None:
    sessions, per_session = 40, 5
    dsn = private_postgres.dsn
    schema = _schema()
    setup = PostgresStore(dsn, schema=schema)
    await setup.open()
    await setup.aclose()
    worker_program, enqueue_program = programs
    args = (dsn, schema, str(tmp_path / "blobs"), str(control_dir))
    procs = [_spawn(worker_program, *args) for _ in range(2)]
    started = time.monotonic()
    try:
        while len(list(control_dir.glob("ready.*"))) < 2:
            assert time.monotonic() - started < 30, "workers did not start"
            await asyncio.sleep(0.05)
        enqueuer = _spawn(enqueue_program, dsn, schema, str(sessions), str(per_session))
        total = sessions * per_session

        async def completed() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return await _count(
                    conn,
                    schema,
                    "SELECT count(*) FROM {s}.lash_turn_inputs WHERE state = 'completed'",
                )
            finally:
                await conn.close()

        while await completed() < total // 4:
            assert time.monotonic() - started < DEADLINE_S, "no progress before the restart"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(private_postgres.restart, "immediate")
        code, _ = _finish(enqueuer, DEADLINE_S)
        if code != 0:  # its connection died in the restart: enqueue again (source keys dedup)
            retry = _spawn(enqueue_program, dsn, schema, str(sessions), str(per_session))
            code, err = _finish(retry, DEADLINE_S)
            assert code == 0, err[-3000:]
        while (done := await completed()) < total:
            assert time.monotonic() - started < DEADLINE_S * 2, f"only {done}/{total} consumed"
            assert all(p.poll() is None for p in procs), "a worker died in the restart"
            await asyncio.sleep(0.1)
        stats = _stop_all(procs)
        assert len(stats) == 2
        assert all(s["errors"] == 0 for s in stats), stats  # every failure was retryable
        assert sum(int(s["retryable_errors"]) for s in stats) >= 1, stats
        print(f"restart: worker stats {[(s['turns'], s['error_codes']) for s in stats]}")
        conn = await asyncpg.connect(dsn)
        try:
            await _verify_exactly_once(conn, schema, sessions, per_session)
        finally:
            await conn.close()
    finally:
        _stop_all(procs)


# --- the worker loop -------------------------------------------------------------------


def _core(store: PostgresStore) -> lash.LashCore:
    def step(request: LlmRequest) -> object:
        last = request.messages[-1] if request.messages else None
        return reply("done") if last is not None and last.role == "tool" else tool_call("note")

    @lash.tool
    async def note(ctx: lash.ToolContext) -> str:
        """Take a note."""
        return "noted"

    return (
        lash.LashCore.builder()
        .provider(ScriptedProvider([step] * 1000))  # type: ignore[list-item]
        .model(lash.ModelSpec("scripted"))
        .effect_host(lash.InlineEffectHost())
        .store(store)
        .tool(note)
        .build()
    )


async def test_worker_runs_pending_sessions_and_skips_busy_ones(
    schema_store: PostgresStore, postgres_dsn: str
) -> None:
    core = _core(PostgresStore(postgres_dsn, schema=schema_store.schema))  # the core closes it
    try:
        for sid in ("a", "b"):
            await core.enqueue_turn_input(sid, f"{sid}/hello")
        held = await schema_store.try_claim_lease("b", _owner("elsewhere"), 30_000)
        assert isinstance(held, LeaseAcquired)
        worker = Worker(core, schema_store.list_sessions_with_pending_work)
        assert await worker.run_once() == 1
        assert worker.stats.busy_skips == 1 and worker.stats.errors == 0
        assert await schema_store.list_pending_turn_inputs("a") == []
        assert len(await schema_store.list_pending_turn_inputs("b")) == 1
        await schema_store.release_lease(held.lease.fence())
        assert await worker.run_once() == 1
        assert await schema_store.list_sessions_with_pending_work() == []

        # A session that cannot even open is counted and skipped; the others still run.
        await core.enqueue_turn_input("c", "c/hello")
        broken = Worker(core, lambda: ["", "c"])
        assert await broken.run_once() == 1
        assert broken.stats.errors == 1 and broken.stats.turns == 1
        assert "missing_execution_scope_id" in broken.stats.error_codes
    finally:
        await core.aclose()


async def test_idle_worker_backs_off_and_stops_gracefully() -> None:
    pauses: list[float] = []
    worker: Worker

    async def sleep(delay: float) -> None:
        pauses.append(delay)
        if len(pauses) == 6:
            worker.stop()
        await asyncio.sleep(0)

    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([]))
        .model(lash.ModelSpec("scripted"))
        .effect_host(lash.InlineEffectHost())
        .without_store()
        .build()
    )
    worker = Worker(core, list, idle_backoff_s=(0.01, 0.08), sleep=sleep, rng=random.Random(7))
    stats = await asyncio.wait_for(worker.run(), timeout=5)
    assert stats.passes == 6 and stats.turns == 0
    bases = [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]
    assert all(0.5 * b <= p <= 1.5 * b for p, b in zip(pauses, bases, strict=True)), pauses
    await core.aclose()
