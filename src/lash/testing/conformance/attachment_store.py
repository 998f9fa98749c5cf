"""``attachment_store`` (persistence.md §7.5) over the session-scoped blob store."""

from __future__ import annotations

import hashlib

from lash.errors import StoreErrorKind
from lash.stores.base import AttachmentStore
from lash.testing.conformance._harness import StoreHarness, Suite
from lash.testing.conformance._support import expect_error

SUITE = Suite("attachment_store")
case = SUITE.case

_NEEDS = {"attachments"}
_WHY = "needs the backend's attachment store"
S = "session-a"


@case(requires=_NEEDS, reason=_WHY)
async def attachment_put_get_round_trips_bytes_and_meta(h: StoreHarness) -> None:
    """Bytes come back exactly; the ref carries id, length, media type and label."""
    blobs = await h.attachments()
    data = bytes(range(256)) * 3
    ref = await blobs.put(S, data, "application/octet-stream", label="raw.bin")
    assert ref.id == hashlib.sha256(data).hexdigest()
    assert ref.byte_len == len(data)
    assert ref.media_type == "application/octet-stream" and ref.label == "raw.bin"
    assert ref.uri == f"lash-attachment://sha256/{ref.id}"
    assert await blobs.get(S, ref.id) == data
    assert await blobs.holds_ref(S, ref.id)
    empty = await blobs.put(S, b"", "text/plain")
    assert await blobs.get(S, empty.id) == b"" and empty.byte_len == 0


@case(requires=_NEEDS, reason=_WHY)
async def attachment_is_content_addressed(h: StoreHarness) -> None:
    """Equal bytes give one id and one blob; different bytes differ."""
    blobs = await h.attachments()
    one = await blobs.put(S, b"same", "text/plain")
    two = await blobs.put(S, b"same", "text/markdown", label="again")
    other = await blobs.put(S, b"different", "text/plain")
    assert one.id == two.id != other.id
    assert sorted(b.id for b in await blobs.list_blobs()) == sorted({one.id, other.id})


@case(requires=_NEEDS, reason=_WHY)
async def attachment_get_unknown_is_not_found(h: StoreHarness) -> None:
    """Unknown ids, and known ids the session does not reference, are ``not_found``."""
    blobs = await h.attachments()
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get(S, "0" * 64))
    ref = await blobs.put("owner", b"secret", "text/plain")
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get(S, ref.id))
    assert not await blobs.holds_ref(S, ref.id)
    assert not await blobs.holds_ref(S, "0" * 64)
    await blobs.commit_refs(S, [ref.id])  # update-only: never creates a reference
    assert not await blobs.holds_ref(S, ref.id)


@case(requires=_NEEDS, reason=_WHY)
async def attachment_delete_removes_content_and_is_idempotent(h: StoreHarness) -> None:
    """Forgetting the last reference lets a sweep delete the blob; both are idempotent."""
    blobs = await h.attachments()
    ref = await blobs.put(S, b"temporary", "text/plain")
    await blobs.forget(S, ref.id)
    await blobs.forget(S, ref.id)
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get(S, ref.id))
    first = await blobs.sweep_unreferenced(0)
    assert first.reclaimed_count == 1 and first.failed_ids == ()
    assert await blobs.list_blobs() == []
    second = await blobs.sweep_unreferenced(0)
    assert second.reclaimed_count == 0


@case(requires=_NEEDS, reason=_WHY)
async def attachment_list_enumerates_stored_blobs(h: StoreHarness) -> None:
    """Listing shows each blob once with its size; swept blobs are gone."""
    blobs = await h.attachments()
    keep = await blobs.put(S, b"keep me", "text/plain")
    await blobs.put("other", b"keep me", "text/plain")
    drop = await blobs.put(S, b"drop me", "text/plain")
    listed = {b.id: b for b in await blobs.list_blobs()}
    assert set(listed) == {keep.id, drop.id}
    assert listed[keep.id].byte_len == len(b"keep me")
    await blobs.forget(S, drop.id)
    await blobs.sweep_unreferenced(0)
    assert [b.id for b in await blobs.list_blobs()] == [keep.id]


@case(requires=_NEEDS, reason=_WHY)
async def attachment_reports_declared_persistence(h: StoreHarness) -> None:
    """The attachment store reports the declared tier."""
    blobs = await h.attachments()
    assert isinstance(blobs, AttachmentStore)
    assert blobs.tier is h.tier


@case(requires=_NEEDS, reason=_WHY)
async def attachment_put_refreshes_modification_time_on_dedup(h: StoreHarness) -> None:
    """A dedup hit re-stamps the blob, so the sweep's grace period counts from the last put."""
    blobs = await h.attachments()
    ref = await blobs.put(S, b"again", "text/plain")
    h.clock.advance(10_000)
    await blobs.put(S, b"again", "text/plain")
    [info] = await blobs.list_blobs()
    assert info.last_modified_ms == h.clock.now_ms()
    await blobs.forget(S, ref.id)
    assert (await blobs.sweep_unreferenced(5_000)).reclaimed_count == 0
    h.clock.advance(5_001)
    assert (await blobs.sweep_unreferenced(5_000)).reclaimed_count == 1


@case(requires={"attachments_reopen"}, reason="only durable attachment stores reopen")
async def attachment_store_survives_reopen(h: StoreHarness) -> None:
    """Blobs and references are visible through a second handle."""
    blobs = await h.attachments()
    ref = await blobs.put(S, b"durable", "text/plain")
    await blobs.commit_refs(S, [ref.id])
    intent = await blobs.put(S, b"intent only", "text/plain", owner_turn_id="t1")
    again = await h.reopen_attachments(blobs)
    assert await again.get(S, ref.id) == b"durable"
    assert await again.holds_ref(S, ref.id) and await again.holds_ref(S, intent.id)
    assert sorted(b.id for b in await again.list_blobs()) == sorted([ref.id, intent.id])
