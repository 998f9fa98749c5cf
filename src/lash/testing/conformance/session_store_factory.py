"""``session_store_factory`` (persistence.md §7.4), for a multi-session store.

There is no separate factory object: one store holds every session, so "create a store"
becomes "save metadata / commit", and "delete the store" is :meth:`delete_session`.
"""

from __future__ import annotations

from lash.errors import StoreErrorKind
from lash.testing.conformance._harness import StoreHarness, Suite
from lash.testing.conformance._support import (
    TTL_MS,
    acquired,
    commit,
    expect_error,
    input_draft,
    lease,
    message_node,
    owner,
    wake_batch,
)
from lash.types import SessionMeta

SUITE = Suite("session_store_factory")
case = SUITE.case

S = "session-a"


@case()
async def reports_declared_tier(h: StoreHarness) -> None:
    """The store and every peer facet the backend offers report the declared tier."""
    store = await h.open()
    assert store.tier is h.tier
    if "attachments" in h.capabilities:
        assert (await h.attachments()).tier is h.tier
    if "process_envs" in h.capabilities:
        assert (await h.process_envs()).tier is h.tier


@case()
async def open_missing_returns_none(h: StoreHarness) -> None:
    """An unknown session has no state of any kind."""
    store = await h.open()
    assert await store.load_session("nobody") is None
    assert await store.load_session("nobody", active_path_only=True) is None
    assert await store.load_session_meta("nobody") is None
    assert await store.load_node("nobody", "n1") is None
    assert await store.get_lease("nobody") is None
    assert await store.get_turn_input("nobody", "ti:x") is None
    assert await store.list_pending_turn_inputs("nobody") == []
    assert await store.list_queued_work("nobody") == []
    assert await store.list_pending_queued_work("nobody") == []
    assert await store.list_sessions() == []


@case()
async def create_seeds_and_reopens_meta(h: StoreHarness) -> None:
    """Metadata written through one handle reads back (through a second one if durable)."""
    store = await h.open()
    meta = SessionMeta(session_id=S, created_at_ms=h.clock.now_ms(), model="m1", name=S)
    await store.save_session_meta(meta)
    other = await h.second_handle(store)
    assert await other.load_session_meta(S) == meta
    assert [m.session_id for m in await other.list_sessions()] == [S]


@case()
async def create_is_idempotent(h: StoreHarness) -> None:
    """Nearest form of "create never overwrites": commits, leases and ingress never touch
    metadata, and saving identical metadata twice changes nothing."""
    store = await h.open()
    meta = SessionMeta(session_id=S, model="m1", name="named", parent_session_id="parent")
    await store.save_session_meta(meta)
    fence = await lease(store, S)
    await store.commit(commit(S, fence, nodes=[message_node("n1")]))
    await store.enqueue_turn_input(input_draft(S, "hello"))
    await store.enqueue_queued_work(wake_batch(S, "w"))
    await store.save_session_meta(meta)
    assert await store.load_session_meta(S) == meta
    assert await store.list_sessions() == [meta]


@case(requires={"attachments"}, reason="needs the backend's attachment store")
async def attachment_ownership_isolation(h: StoreHarness) -> None:
    """Shared bytes dedup to one blob; B reads A's blob only after putting the same bytes;
    a sweep never removes a blob any session references and reclaims it after all let go."""
    blobs = await h.attachments()
    ref_a = await blobs.put("a", b"shared bytes", "text/plain")
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get("b", ref_a.id))
    ref_b = await blobs.put("b", b"shared bytes", "text/plain")
    assert ref_b.id == ref_a.id
    assert len(await blobs.list_blobs()) == 1
    assert await blobs.get("b", ref_a.id) == b"shared bytes"
    await blobs.commit_refs("a", [ref_a.id])
    await blobs.forget("b", ref_b.id)
    assert (await blobs.sweep_unreferenced(0)).reclaimed_count == 0
    assert await blobs.get("a", ref_a.id) == b"shared bytes"
    await blobs.forget("a", ref_a.id)
    report = await blobs.sweep_unreferenced(0)
    assert report.reclaimed_count == 1
    assert await blobs.list_blobs() == []


@case()
async def delete_removes_store_and_is_idempotent(h: StoreHarness) -> None:
    """Delete removes state, metadata, ingress and the lease row; a recreated session's
    first lease has fencing 1."""
    store = await h.open()
    await store.save_session_meta(SessionMeta(session_id=S))
    fence = await lease(store, S)
    await store.commit(commit(S, fence, nodes=[message_node("n1")]))
    await store.release_lease(fence)
    fence = await lease(store, S, "second")
    assert fence.fencing_token == 2
    await store.enqueue_turn_input(input_draft(S, "hello", source_key="k"))
    await store.enqueue_queued_work(wake_batch(S, "w", source_key="wk"))
    await store.delete_session(S)
    assert await store.load_session(S) is None
    assert await store.load_session_meta(S) is None
    assert await store.load_node(S, "n1") is None
    assert await store.get_lease(S) is None
    assert await store.list_pending_turn_inputs(S) == []
    assert await store.list_queued_work(S) == []
    assert await store.list_sessions() == []
    await store.delete_session(S)
    await store.delete_session("never-existed")
    fresh = acquired(await store.try_claim_lease(S, owner("third"), TTL_MS))
    assert fresh.fencing_token == 1
    again = await store.enqueue_turn_input(input_draft(S, "new content", source_key="k"))
    assert again.state == "deferred_next_turn"
    assert (await store.commit(commit(S, fresh, expected=0))).head_revision == 1


@case()
async def delete_session_is_scoped_to_one_session(h: StoreHarness) -> None:
    """Nearest form of process pruning: deleting one session (e.g. a process-owned one)
    leaves every other session's state untouched."""
    store = await h.open()
    sessions = ["process-env:p1", "process-session-turn:p1", "chat"]
    for sid in sessions:
        fence = await lease(store, sid)
        await store.commit(commit(sid, fence, nodes=[message_node(f"{sid}-n")]))
        await store.enqueue_turn_input(input_draft(sid, "x"))
    await store.delete_session("process-env:p1")
    assert await store.load_session("process-env:p1") is None
    for sid in sessions[1:]:
        loaded = await store.load_session(sid)
        assert loaded is not None and loaded.head_revision == 1
        assert len(await store.list_pending_turn_inputs(sid)) == 1
        row = await store.get_lease(sid)
        assert row is not None and row.fencing_token == 1
