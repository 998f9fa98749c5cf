"""SQLite-specific behaviour of ``SqliteStore``: pragmas, files, failures and growth.

The store contract itself is the conformance kit's job (``test_conformance.py``); these
cases cover what only a file-backed SQL store can get wrong: durability settings, opening
files that are not ours (or are newer, corrupt, read-only), a full disk mid-commit,
linear storage growth and active-path reads that touch only the path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from lash.clock import ManualClock
from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.liveness import opaque_owner
from lash.stores.sqlite import SCHEMA_VERSION, SqliteStore, schema
from lash.stores.sqlite.schema import APPLICATION_ID
from lash.types import (
    GraphAppend,
    LeaseAcquired,
    LeaseFence,
    Message,
    MessagePayload,
    PendingTurnInputDraft,
    ProcessWake,
    QueuedWorkBatchDraft,
    RuntimeCommit,
    SessionCheckpoint,
    SessionNode,
    TextPart,
    TokenLedgerEntry,
    TokenUsage,
    TurnInput,
    TurnInputClaimCompletion,
    TurnInputIngress,
)

S = "session-1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "lash.db", clock) as s:
        yield s


async def _fence(store: SqliteStore, session_id: str = S, ttl_ms: int = 60_000) -> LeaseFence:
    claim = await store.try_claim_lease(session_id, opaque_owner("worker"), ttl_ms)
    assert isinstance(claim, LeaseAcquired)
    return claim.lease.fence()


def _node(node_id: str, parent: str | None, text: str) -> SessionNode:
    message = Message(id=f"m-{node_id}", role="user", parts=(TextPart(text=text),))
    return SessionNode(
        node_id=node_id, parent_node_id=parent, payload=MessagePayload(message=message)
    )


def _commit(
    fence: LeaseFence, revision: int, nodes: tuple[SessionNode, ...], *, turn: int = 0
) -> RuntimeCommit:
    return RuntimeCommit(
        session_id=fence.session_id,
        graph=GraphAppend(nodes=nodes),
        checkpoint=SessionCheckpoint(turn_index=turn),
        lease=fence,
        expected_head_revision=revision,
        usage_deltas=(
            TokenLedgerEntry(source="turn", model="m", usage=TokenUsage(input_tokens=1)),
        ),
    )


async def _pragma(store: SqliteStore, name: str) -> object:
    return await store._run_raw(lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0])


async def _expect(kind: StoreErrorKind, store: SqliteStore) -> StoreError:
    with pytest.raises(StoreError) as info:
        await store.open()
    await store.aclose()
    assert info.value.kind is kind, info.value
    return info.value


# --- connection settings and lifecycle --------------------------------------------------


async def _sync_level_inside(store: SqliteStore, *, durable: bool) -> int:
    """The ``synchronous`` level a write transaction of that kind actually runs at."""
    return int(
        await store._run_write(
            lambda conn, now: conn.execute("PRAGMA synchronous").fetchone()[0], durable=durable
        )
    )


async def test_pragmas_are_set_for_durability(store: SqliteStore) -> None:
    assert await _pragma(store, "journal_mode") == "wal"
    assert await _pragma(store, "busy_timeout") == 15_000
    assert await _pragma(store, "user_version") == SCHEMA_VERSION
    assert await _pragma(store, "application_id") == APPLICATION_ID
    # acknowledged writes fsync the WAL (FULL); lease/claim bookkeeping rides along (NORMAL)
    assert await _sync_level_inside(store, durable=True) == 2
    assert await _sync_level_inside(store, durable=False) == 1
    assert await _sync_level_inside(store, durable=True) == 2


async def test_commits_are_durable_and_bookkeeping_is_not(store: SqliteStore) -> None:
    fence = await _fence(store)
    claims_only = store.stats.durable_transactions
    assert claims_only == 0  # the lease claim did not fsync
    await store.commit(_commit(fence, 0, (_node("n", None, "x"),)))
    await store.enqueue_turn_input(PendingTurnInputDraft(session_id=S, input=TurnInput.text("p")))
    await store.claim_next_turn_inputs(fence)
    await store.renew_lease(fence, 1_000)
    assert store.stats.durable_transactions == 2  # the commit and the enqueue


async def test_synchronous_knob_selects_normal(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "n.db", synchronous="normal") as store:
        assert await _sync_level_inside(store, durable=True) == 1
        fence = await _fence(store)
        await store.commit(_commit(fence, 0, (_node("n", None, "x"),)))
        assert store.stats.durable_transactions == 0


async def test_facets_are_durable_and_satisfy_the_protocols(store: SqliteStore) -> None:
    assert isinstance(store, SessionStore)
    assert isinstance(store.attachments, AttachmentStore)
    assert isinstance(store.process_envs, ProcessEnvStore)
    assert store.tier is store.attachments.tier is store.process_envs.tier
    assert store.tier is DurabilityTier.DURABLE


async def test_an_in_memory_database_declares_itself_ephemeral(tmp_path: Path) -> None:
    async with SqliteStore(":memory:", attachments_root=tmp_path / "blobs") as store:
        assert store.tier is DurabilityTier.EPHEMERAL
        assert store.attachments.tier is store.process_envs.tier is DurabilityTier.EPHEMERAL
        ref = await store.attachments.put(S, b"x", "text/plain")
        assert await store.attachments.get(S, ref.id) == b"x"


async def test_aclose_stops_the_worker_and_later_calls_fail(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    thread = store._worker._thread
    assert thread.is_alive()
    await store.aclose()
    assert not thread.is_alive()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError) as info:
        await store.get_lease(S)
    assert info.value.kind is StoreErrorKind.BACKEND


async def test_reopen_sees_committed_state(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "lash.db"
    async with SqliteStore(path, clock) as first:
        fence = await _fence(first)
        await first.commit(_commit(fence, 0, (_node("n1", None, "hello"),)))
        pending = await first.enqueue_turn_input(
            PendingTurnInputDraft(session_id=S, input=TurnInput.text("later"), source_key="k1")
        )
        batch = await first.enqueue_queued_work(
            QueuedWorkBatchDraft(session_id=S, payloads=(ProcessWake(wake={"n": 1}),))
        )
        ref = await first.attachments.put(S, b"blob bytes", "text/plain")
        await first.process_envs.put_env("process-env:sha256:abc", b"env")
        before = await first.load_session(S)
    async with SqliteStore(path, clock) as second:
        assert await second.load_session(S) == before
        assert await second.get_lease(S) is not None
        assert [p.input_id for p in await second.list_pending_turn_inputs(S)] == [pending.input_id]
        assert await second.list_queued_work(S) == [batch]
        assert await second.attachments.get(S, ref.id) == b"blob bytes"
        assert await second.process_envs.get_env("process-env:sha256:abc") == b"env"
        # the lease written by the first handle still fences the second
        renewed = await second.renew_lease(fence, 1_000)
        assert renewed.fencing_token == fence.fencing_token


# --- files that must be refused --------------------------------------------------------


async def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    err = await _expect(StoreErrorKind.SCHEMA_TOO_NEW, SqliteStore(path))
    assert err.details == {"found": SCHEMA_VERSION + 1, "supported": SCHEMA_VERSION}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


async def test_junk_bytes_are_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"definitely not sqlite " * 300)
    await _expect(StoreErrorKind.CORRUPT, SqliteStore(path))
    assert path.read_bytes() == b"definitely not sqlite " * 300


async def test_truncated_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "trunc.db"
    async with SqliteStore(path, synchronous="normal") as store:
        fence = await _fence(store)
        for i in range(40):
            node = _node(f"n{i}", f"n{i - 1}" if i else None, "x" * 2_000)
            await store.commit(_commit(fence, i, (node,)))
    size = path.stat().st_size
    assert size > 40_000 and not Path(f"{path}-wal").exists()
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    store = SqliteStore(path)
    with pytest.raises(StoreError) as info:
        await store.open()
        await store.load_session(S)  # if the header survived, the first full read fails
    await store.aclose()
    assert info.value.kind is StoreErrorKind.CORRUPT


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.close()
    err = await _expect(StoreErrorKind.CORRUPT, SqliteStore(path))
    assert "not a lash database" in err.message and "invoices" in err.message
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"invoices"}
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


async def test_other_application_database_with_a_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
        conn.execute("CREATE TABLE things (x)")
    conn.close()
    err = await _expect(StoreErrorKind.CORRUPT, SqliteStore(path))
    assert "not a lash database" in err.message


async def test_read_only_database_is_refused(tmp_path: Path) -> None:
    """Root ignores directory permissions, so the read-only case is also made explicit.

    As root, ``chmod`` cannot make a directory unwritable (CAP_DAC_OVERRIDE); opening the
    file through a ``file:...?mode=ro`` URI makes SQLite itself refuse writes, which is the
    same failure a read-only mount produces. Without root, the directory is made
    unwritable as well.
    """
    path = tmp_path / "ro.db"
    async with SqliteStore(path) as store:
        await store.try_claim_lease(S, opaque_owner("w"), 1_000)
    await _expect(StoreErrorKind.READ_ONLY, SqliteStore(f"file:{path}?mode=ro"))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            await _expect(StoreErrorKind.READ_ONLY, SqliteStore(locked / "new.db"))
        finally:
            locked.chmod(0o700)


async def test_missing_directory_is_a_clear_backend_error(tmp_path: Path) -> None:
    err = await _expect(StoreErrorKind.BACKEND, SqliteStore(tmp_path / "nope" / "x.db"))
    assert "does not exist" in err.message


async def test_empty_file_becomes_a_fresh_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    async with SqliteStore(path) as store:
        assert await _pragma(store, "user_version") == SCHEMA_VERSION


def test_migrations_are_a_contiguous_list() -> None:
    versions = [m.version for m in schema.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert schema.SCHEMA_VERSION == versions[-1]


async def test_older_database_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file at the current version opens under a newer lash and keeps its data."""
    path = tmp_path / "old.db"
    async with SqliteStore(path) as store:
        fence = await _fence(store)
        await store.commit(_commit(fence, 0, (_node("n1", None, "kept"),)))
    current = schema.SCHEMA_VERSION
    upgrade = schema.Migration(
        version=current + 1,
        description="a test-only table",
        statements=("CREATE TABLE test_notes (note TEXT)",),
    )
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, upgrade))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    async with SqliteStore(path) as store:
        assert await _pragma(store, "user_version") == current + 1
        session = await store.load_session(S)
        assert session is not None and [n.node_id for n in session.nodes] == ["n1"]
        assert await store._run_raw(
            lambda conn: conn.execute("SELECT count(*) FROM test_notes").fetchone()[0] == 0
        )
    monkeypatch.undo()
    # the previous lash now refuses the upgraded file instead of misreading it
    await _expect(StoreErrorKind.SCHEMA_TOO_NEW, SqliteStore(path))


# --- failures mid-commit ---------------------------------------------------------------


async def test_full_disk_fails_the_commit_whole(store: SqliteStore) -> None:
    fence = await _fence(store)
    await store.commit(_commit(fence, 0, (_node("n0", None, "small"),)))
    pending = await store.enqueue_turn_input(
        PendingTurnInputDraft(session_id=S, input=TurnInput.text("queued"))
    )
    claim = await store.claim_next_turn_inputs(fence)
    assert claim is not None
    before = await store.load_session(S)
    pages = await _pragma(store, "page_count")
    await store._run_raw(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}").fetchall())

    big = tuple(_node(f"big{i}", "n0" if i == 0 else f"big{i - 1}", "y" * 4_000) for i in range(8))
    completion = TurnInputClaimCompletion(
        claim_id=claim.claim_id, lease_token=claim.lease_token, input_ids=claim.input_ids
    )
    commit = RuntimeCommit(
        session_id=S,
        graph=GraphAppend(nodes=big),
        checkpoint=SessionCheckpoint(turn_index=1),
        lease=fence,
        expected_head_revision=1,
        release_lease=True,
        completed_turn_input_claims=(completion,),
    ).stamped("turn-1")
    with pytest.raises(StoreError) as info:
        await store.commit(commit)
    assert info.value.kind is StoreErrorKind.DISK_FULL

    # nothing of the commit landed: head, graph, claim, stamp and lease are as before
    assert await store.load_session(S) == before
    row = await store.get_turn_input(S, pending.input_id)
    assert row is not None and row.state == "deferred_next_turn" and row.claim is not None
    lease = await store.get_lease(S)
    assert lease is not None and lease.lease_token == fence.lease_token

    # with room again the very same commit succeeds (it was never half-applied)
    await store._run_raw(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").fetchall())
    result = await store.commit(commit)
    assert result.head_revision == 2 and not result.replayed
    loaded = await store.load_session(S)
    assert loaded is not None and len(loaded.nodes) == 9


# --- growth and read scope -------------------------------------------------------------


async def _db_bytes(store: SqliteStore) -> int:
    await store.checkpoint_wal()
    path = store.path
    assert path is not None
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def test_storage_grows_linearly_with_new_content(tmp_path: Path) -> None:
    """Each commit adds ~1 KB of new content; bytes per commit must not grow with history."""
    async with SqliteStore(tmp_path / "grow.db", synchronous="normal") as store:
        fence = await _fence(store)
        sizes: dict[int, int] = {}
        parent: str | None = None
        for i in range(80):
            node = _node(f"n{i}", parent, os.urandom(512).hex())  # 1 KB, incompressible
            await store.commit(_commit(fence, i, (node,), turn=i).stamped(f"turn-{i}"))
            parent = node.node_id
            if i + 1 in (20, 40, 80):
                sizes[i + 1] = await _db_bytes(store)
    early = (sizes[40] - sizes[20]) / 20
    late = (sizes[80] - sizes[40]) / 40
    # ~1 KB of node JSON plus index/stamp overhead; a full rewrite would be O(history).
    assert 1_000 <= early <= 4_000, sizes
    assert 1_000 <= late <= 4_000, sizes
    assert late <= early * 1.5 + 512, sizes


async def test_active_path_reads_only_the_path(tmp_path: Path) -> None:
    """1,000 committed turns plus an abandoned branch: path loads touch only path rows."""
    async with SqliteStore(tmp_path / "path.db", synchronous="normal") as store:
        fence = await _fence(store)
        parent: str | None = None
        revision = 0
        for turn in range(1_000):
            user = _node(f"u{turn}", parent, f"question {turn}")
            reply = _node(f"a{turn}", user.node_id, f"answer {turn}")
            await store.commit(_commit(fence, revision, (user, reply), turn=turn))
            revision += 1
            parent = reply.node_id
            if turn == 499:
                # a side branch off turn 499 that the active path must not read
                side = tuple(
                    _node(f"side{i}", "a499" if i == 0 else f"side{i - 1}", "side")
                    for i in range(100)
                )
                branch = _commit(fence, revision, side, turn=turn)
                await store.commit(
                    RuntimeCommit(
                        session_id=S,
                        graph=GraphAppend(nodes=side, leaf_node_id="a499"),
                        checkpoint=branch.checkpoint,
                        lease=fence,
                        expected_head_revision=revision,
                    )
                )
                revision += 1

        base = store.stats.node_rows_read
        session = await store.load_session(S, active_path_only=True)
        assert session is not None and session.head_revision == 1_001
        assert len(session.nodes) == 2_000
        assert store.stats.node_rows_read - base == 2_000  # not the 100 side nodes
        assert session.nodes[0].node_id == "u0" and session.nodes[-1].node_id == "a999"

        base = store.stats.node_rows_read
        early = await store.load_session(S, active_path_only=True, leaf_node_id="a9")
        assert early is not None
        assert [n.node_id for n in early.nodes][-2:] == ["u9", "a9"]
        assert store.stats.node_rows_read - base == 20

        base = store.stats.node_rows_read
        side_path = await store.load_session(S, active_path_only=True, leaf_node_id="side99")
        assert side_path is not None and len(side_path.nodes) == 1_000 + 100
        assert store.stats.node_rows_read - base == 1_100

        full = await store.load_session(S)
        assert full is not None and len(full.nodes) == 2_100


async def test_active_path_stops_at_tombstoned_nodes(store: SqliteStore) -> None:
    fence = await _fence(store)
    nodes = (_node("r", None, "root"), _node("m", "r", "mid"), _node("l", "m", "leaf"))
    await store.commit(_commit(fence, 0, nodes))
    await store.tombstone_nodes(S, ["m"])
    session = await store.load_session(S, active_path_only=True)
    assert session is not None and [n.node_id for n in session.nodes] == ["l"]
    assert await store.load_node(S, "m") is None
    report = await store.vacuum()
    assert report.removed_node_count == 1
    assert (await store.vacuum()).removed_node_count == 0


async def test_commit_never_reads_the_whole_graph(store: SqliteStore) -> None:
    fence = await _fence(store)
    parent: str | None = None
    for i in range(50):
        node = _node(f"n{i}", parent, "text")
        await store.commit(_commit(fence, i, (node,)))
        parent = node.node_id
    assert store.stats.node_rows_read == 0  # commits validate by id, never by loading


async def test_two_handles_serialise_on_the_write_lock(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "shared.db"
    async with SqliteStore(path, clock) as a, SqliteStore(path, clock) as b:
        fence = await _fence(a)
        first = _commit(fence, 0, (_node("x", None, "from a"),))
        second = _commit(fence, 0, (_node("y", None, "from b"),))
        results = await asyncio.gather(a.commit(first), b.commit(second), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], StoreError)
        assert errors[0].kind is StoreErrorKind.HEAD_REVISION_CONFLICT
        loaded = await b.load_session(S)
        assert loaded is not None and loaded.head_revision == 1 and len(loaded.nodes) == 1


async def test_a_replayed_commit_never_releases_another_sessions_lease(
    store: SqliteStore,
) -> None:
    fence = await _fence(store)
    stamped = _commit(fence, 0, (_node("n", None, "x"),)).stamped("t1")
    await store.commit(stamped)
    other = await _fence(store, "other-session")
    replay = msgspec.structs.replace(stamped, lease=other, release_lease=True)
    result = await store.commit(replay)
    assert result.replayed
    lease = await store.get_lease("other-session")
    assert lease is not None and lease.lease_token == other.lease_token


async def test_checkpoint_probe_takes_no_write_lock_without_admissible_work(
    store: SqliteStore,
) -> None:
    fence = await _fence(store)
    writes = store.stats.write_transactions
    assert await store.claim_checkpoint_work(fence, "t1", "after_work") == (None, None)
    assert store.stats.write_transactions == writes
    await store.enqueue_queued_work(
        QueuedWorkBatchDraft(
            session_id=S,
            payloads=(ProcessWake(wake={}),),
            delivery_policy="after_current_turn_commit",
        )
    )
    writes = store.stats.write_transactions
    assert await store.claim_checkpoint_work(fence, "t1", "after_work") == (None, None)
    assert store.stats.write_transactions == writes and store.stats.probes == 2

    await store.enqueue_turn_input(
        PendingTurnInputDraft(
            session_id=S,
            input=TurnInput.text("steer"),
            ingress=TurnInputIngress.active_turn("t1"),
        )
    )
    writes = store.stats.write_transactions
    inputs, batches = await store.claim_checkpoint_work(fence, "t1", "after_work")
    assert inputs is not None and batches is None  # the after-commit head stays queued
    assert store.stats.write_transactions == writes + 1


# --- attachments -----------------------------------------------------------------------


async def test_blob_layout_is_content_addressed_beside_the_database(store: SqliteStore) -> None:
    ref = await store.attachments.put(S, b"hello", "text/plain", label="greeting")
    root = store.attachments.root
    assert root is not None and root == Path(f"{store.path}-attachments")
    blob = root / "sha256" / ref.id[:2] / ref.id
    assert blob.read_bytes() == b"hello"
    assert [p.name for p in blob.parent.iterdir()] == [ref.id]  # no staging leftovers
    assert ref.uri == f"lash-attachment://sha256/{ref.id}" and ref.byte_len == 5


async def test_a_session_cannot_read_another_sessions_blob(store: SqliteStore) -> None:
    ref = await store.attachments.put("a", b"secret", "text/plain")
    with pytest.raises(StoreError) as info:
        await store.attachments.get("b", ref.id)
    assert info.value.kind is StoreErrorKind.NOT_FOUND
    with pytest.raises(StoreError):
        await store.attachments.get("b", "../../etc/passwd")
    assert await store.attachments.get("a", ref.id) == b"secret"


async def test_put_refreshes_mtime_and_sweep_honours_grace(
    store: SqliteStore, clock: ManualClock
) -> None:
    att = store.attachments
    ref = await att.put(S, b"data", "application/octet-stream")
    await att.commit_refs(S, [ref.id])
    first = (await att.list_blobs())[0].last_modified_ms
    assert first == clock.now_ms()  # stamped from the injected clock
    clock.advance(5_000)
    await att.put("other", b"data", "application/octet-stream")  # dedup hit
    assert (await att.list_blobs())[0].last_modified_ms == clock.now_ms()

    await att.forget(S, ref.id)
    await att.forget("other", ref.id)
    clock.advance(1_000)
    kept = await att.sweep_unreferenced(grace_ms=10_000)
    assert kept.reclaimed_count == 0 and len(await att.list_blobs()) == 1
    clock.advance(10_000)
    swept = await att.sweep_unreferenced(grace_ms=10_000)
    assert swept.scanned_blob_count == 1 and swept.reclaimed_count == 1
    assert await att.list_blobs() == []


async def test_sweep_forgets_only_intents_of_superseded_turns(
    store: SqliteStore, clock: ManualClock
) -> None:
    """An aged turn-owned intent goes once a later turn commits; other references stay."""
    att = store.attachments
    committed = await att.put(S, b"committed", "text/plain")
    await att.commit_refs(S, [committed.id])
    ownerless = await att.put(S, b"ownerless", "text/plain")
    crashed = await att.put(S, b"crashed turn", "text/plain", owner_turn_id="t-crashed")
    clock.advance(1_000)
    report = await att.sweep_unreferenced(grace_ms=500)
    assert report.scanned_blob_count == 3 and report.reclaimed_count == 0
    assert await att.holds_ref(S, crashed.id)  # its turn may still commit

    fence = await _fence(store)
    await store.commit(_commit(fence, 0, (_node("n", None, "later turn"),)).stamped("t-later"))
    report = await att.sweep_unreferenced(grace_ms=500)
    assert report.reclaimed_count == 1
    assert not await att.holds_ref(S, crashed.id)
    assert await att.get(S, committed.id) == b"committed"
    assert await att.get(S, ownerless.id) == b"ownerless"


async def test_turn_commit_adopts_its_own_intents(store: SqliteStore, clock: ManualClock) -> None:
    att = store.attachments
    ref = await att.put(S, b"tool output", "text/plain", owner_turn_id="t1")
    fence = await _fence(store)
    await store.commit(_commit(fence, 0, (_node("n", None, "x"),)).stamped("t1"))
    clock.advance(60_000)
    report = await att.sweep_unreferenced(grace_ms=0)
    assert report.reclaimed_count == 0
    assert await att.get(S, ref.id) == b"tool output"


async def test_delete_session_removes_every_row(store: SqliteStore) -> None:
    fence = await _fence(store)
    await store.commit(_commit(fence, 0, (_node("n", None, "x"),)).stamped("t1"))
    await store.enqueue_turn_input(PendingTurnInputDraft(session_id=S, input=TurnInput.text("p")))
    await store.attachments.put(S, b"a", "text/plain")
    await store.delete_session(S)

    def counts(conn: sqlite3.Connection) -> dict[str, int]:
        tables = [
            "sessions",
            "graph_nodes",
            "usage_ledger",
            "turn_commits",
            "session_leases",
            "turn_inputs",
            "queued_batches",
            "attachment_refs",
        ]
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE session_id = ?", (S,)).fetchone()[0]
            for t in tables
        }

    assert set((await store._run_raw(counts)).values()) == {0}
    again = await _fence(store)
    assert again.fencing_token == 1


# --- a real crash ----------------------------------------------------------------------

_COMMIT_LOOP = """
import asyncio, sys
from lash.stores.liveness import opaque_owner
from lash.stores.sqlite import SqliteStore
from lash.types import *

async def main(path):
    async with SqliteStore(path) as store:
        claim = await store.try_claim_lease("s", opaque_owner("child", "inc"), 600_000)
        fence = claim.lease.fence()
        parent = None
        for turn in range(100_000):
            nodes = []
            for k in range(3):
                msg = Message(id=f"m{turn}.{k}", role="user", parts=(TextPart(text="z" * 300),))
                nodes.append(SessionNode(node_id=f"n{turn}.{k}", parent_node_id=parent,
                                         payload=MessagePayload(message=msg)))
                parent = nodes[-1].node_id
            usage = TokenUsage(input_tokens=1, output_tokens=2)
            commit = RuntimeCommit(
                session_id="s", graph=GraphAppend(nodes=tuple(nodes)),
                checkpoint=SessionCheckpoint(turn_index=turn + 1), lease=fence,
                expected_head_revision=turn,
                usage_deltas=(TokenLedgerEntry(source="turn", model="m", usage=usage),),
            ).stamped(f"t{turn}")
            result = await store.commit(commit)
            print(result.head_revision, flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_sigkill_mid_commits_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    """Kill a committing process at an arbitrary instant: every acknowledged commit is
    there, and the last one is whole (nodes, stamp, usage and checkpoint agree)."""
    path = tmp_path / "crash.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _COMMIT_LOOP,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    acked = 0
    try:
        while acked < 25:
            line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
            assert line, (await child.stderr.read()).decode() if child.stderr else "no output"
            acked = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with SqliteStore(path) as store:
        session = await store.load_session("s")
        assert session is not None
        head = session.head_revision
        assert head >= acked
        assert len(session.nodes) == 3 * head
        assert session.checkpoint.turn_index == head
        (entry,) = session.token_ledger
        assert entry.usage.input_tokens == head and entry.usage.output_tokens == 2 * head

        def stamps(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM turn_commits").fetchone()[0])

        assert await store._run_raw(stamps) == head


_OPEN_AND_CLAIM = """
import asyncio, sys
from lash.stores.liveness import opaque_owner
from lash.stores.sqlite import SqliteStore

async def main(path, name):
    async with SqliteStore(path) as store:
        claim = await store.try_claim_lease("s", opaque_owner(name), 600_000)
        print(claim.status, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_processes_racing_to_create_one_file_agree_on_one_lease(tmp_path: Path) -> None:
    """Fresh file, four processes at once: schema creation and the first claim serialise."""
    path = tmp_path / "race.db"
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _OPEN_AND_CLAIM,
            str(path),
            f"worker-{i}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for i in range(4)
    ]
    outputs = [await asyncio.wait_for(c.communicate(), timeout=60) for c in children]
    assert [c.returncode for c in children] == [0, 0, 0, 0], [e.decode() for _, e in outputs]
    statuses = sorted(out.decode().strip() for out, _ in outputs)
    assert statuses == ["acquired", "busy", "busy", "busy"]
    async with SqliteStore(path) as store:
        lease = await store.get_lease("s")
        assert lease is not None and lease.fencing_token == 1
