"""Live replay: the bounded, best-effort buffer a reconnecting observer catches up from.

Ported from the six ``live_replay`` conformance functions (persistence.md §7.10), plus one
end-to-end run through a real session. Time is a ``ManualClock``; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import lash
from lash.clock import ManualClock
from lash.runtime.observation import (
    LiveReplayGap,
    LiveReplayStore,
    ObservationEvent,
    SessionCursor,
)
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply
from lash.types import AssistantProseDelta, TurnActivity

WAIT_S = 2.0  # a bound on waiting for an event that is already due; never a sleep


def text_activity(text: str) -> TurnActivity:
    return TurnActivity(id=f"a-{text}", correlation_id="c", event=AssistantProseDelta(text=text))


def append_text(
    store: LiveReplayStore, session_id: str, revision: int, text: str
) -> ObservationEvent:
    return store.append(session_id, revision, "turn_activity", activity=text_activity(text))


def label(event: ObservationEvent) -> str:
    """A compact description of an event's payload, for comparing sequences."""
    if event.kind == "turn_activity":
        assert event.activity is not None
        inner = event.activity.event
        assert isinstance(inner, AssistantProseDelta)
        return f"text:{inner.text}"
    if event.kind in ("queue_changed", "process_changed"):
        return f"{event.kind}:{event.change}:{','.join(event.ids)}"
    if event.kind == "agent_frame_switched":
        return f"frame:{event.frame_id}"
    return event.kind


def labels(events: list[ObservationEvent]) -> list[str]:
    return [label(e) for e in events]


def replayed(store: LiveReplayStore, session_id: str, cursor: str) -> list[ObservationEvent]:
    events, gap = store.replay_after(session_id, cursor)
    assert gap is None, f"expected replayed events, got gap {gap}"
    return events


def gap_of(store: LiveReplayStore, session_id: str, cursor: str) -> LiveReplayGap:
    events, gap = store.replay_after(session_id, cursor)
    assert gap is not None, f"expected a gap, got {len(events)} events"
    assert events == []
    return gap


async def next_item(
    subscription: AsyncIterator[ObservationEvent | LiveReplayGap],
) -> ObservationEvent | LiveReplayGap:
    return await asyncio.wait_for(anext(subscription), WAIT_S)


async def next_event(
    subscription: AsyncIterator[ObservationEvent | LiveReplayGap],
) -> ObservationEvent:
    item = await next_item(subscription)
    assert isinstance(item, ObservationEvent), f"expected an event, got {item}"
    return item


# --- cursors ------------------------------------------------------------------------------


def test_cursor_format_round_trips() -> None:
    cursor = SessionCursor(session_id="chat-1", revision=7, live_position=3)
    assert cursor.encode() == "lashsc1:7:3:chat-1"
    assert SessionCursor.parse("lashsc1:7:3:chat-1") == cursor
    assert SessionCursor.parse("lashsc1:7:3:chat-1", session_id="chat-1") == cursor


def test_cursor_session_ids_may_contain_colons() -> None:
    cursor = SessionCursor(session_id="tenant:a:chat", revision=0, live_position=12)
    assert cursor.encode() == "lashsc1:0:12:tenant:a:chat"
    assert SessionCursor.parse(cursor.encode()) == cursor


# --- §7.10: appends, replays and isolates sessions ------------------------------------------


def test_appends_replays_and_isolates_sessions() -> None:
    store = LiveReplayStore()
    start_a = store.tail_cursor("session-a", 7)
    start_b = store.tail_cursor("session-b", 7)
    assert replayed(store, "session-a", start_a) == []

    first_a = append_text(store, "session-a", 7, "alpha one")
    first_b = store.append("session-b", 7, "process_changed", change="started", ids=("proc-b",))
    second_a = store.append("session-a", 8, "queue_changed", change="enqueued", ids=("batch-a",))

    assert first_a.session_id == "session-a" and first_a.revision == 7
    assert second_a.revision == 8
    assert first_a.cursor != second_a.cursor
    assert first_b.session_id == "session-b"
    assert SessionCursor.parse(first_a.cursor).session_id == "session-a"
    assert SessionCursor.parse(second_a.cursor).revision == 8

    assert labels(replayed(store, "session-a", start_a)) == [
        "text:alpha one",
        "queue_changed:enqueued:batch-a",
    ]
    assert labels(replayed(store, "session-a", first_a.cursor)) == [
        "queue_changed:enqueued:batch-a"
    ]
    assert labels(replayed(store, "session-b", start_b)) == ["process_changed:started:proc-b"]
    assert replayed(store, "session-a", second_a.cursor) == []

    tail_a = store.tail_cursor("session-a", 9)
    assert SessionCursor.parse(tail_a).revision == 9
    assert replayed(store, "session-a", tail_a) == []


def test_replayed_events_carry_their_payloads() -> None:
    store = LiveReplayStore()
    start = store.tail_cursor("s", 0)
    appended = append_text(store, "s", 0, "hello")
    (event,) = replayed(store, "s", start)
    assert event == appended
    assert event.activity == text_activity("hello")


def test_forget_drops_a_sessions_buffer_only() -> None:
    store = LiveReplayStore()
    start_a = store.tail_cursor("a", 0)
    start_b = store.tail_cursor("b", 0)
    append_text(store, "a", 0, "x")
    append_text(store, "b", 0, "y")
    store.forget("a")
    assert labels(replayed(store, "b", start_b)) == ["text:y"]
    assert replayed(store, "a", start_a) == []


# --- §7.10: subscribe replays then yields live events -----------------------------------


async def test_subscribe_replays_then_yields_live_events() -> None:
    store = LiveReplayStore()
    start = store.tail_cursor("subscribe-session", 3)
    append_text(store, "subscribe-session", 3, "buffered one")
    append_text(store, "subscribe-session", 3, "buffered two")

    subscription = store.subscribe("subscribe-session", start)
    try:
        first = await next_event(subscription)
        second = await next_event(subscription)
        assert labels([first, second]) == ["text:buffered one", "text:buffered two"]

        # park a reader on the empty tail, then publish
        pending = asyncio.ensure_future(next_event(subscription))
        await asyncio.sleep(0)
        assert not pending.done()
        append_text(store, "subscribe-session", 3, "live three")
        live = await pending
        assert labels([live]) == ["text:live three"]
        # other sessions never wake this subscriber with their events
        append_text(store, "another-session", 3, "not for you")
        append_text(store, "subscribe-session", 4, "live four")
        assert labels([await next_event(subscription)]) == ["text:live four"]
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]


async def test_two_subscribers_each_see_every_event() -> None:
    store = LiveReplayStore()
    start = store.tail_cursor("s", 0)
    one = store.subscribe("s", start)
    two = store.subscribe("s", start)
    try:
        waiting = [asyncio.ensure_future(next_event(sub)) for sub in (one, two)]
        await asyncio.sleep(0)
        append_text(store, "s", 0, "fan out")
        got = await asyncio.gather(*waiting)
        assert labels(list(got)) == ["text:fan out", "text:fan out"]
    finally:
        await one.aclose()  # type: ignore[attr-defined]
        await two.aclose()  # type: ignore[attr-defined]


# --- §7.10: rejects malformed cursors --------------------------------------------------------

MALFORMED = [
    "not-a-session-cursor",
    "",
    "lashsc1",
    "lashsc1:1:2",
    "lashsc2:1:2:s",
    "lashsc1:one:2:s",
    "lashsc1:1:two:s",
    "lashsc1:1:2:",
    "lashsc1:-1:2:s",
    "lashsc1:1:-2:s",
]


@pytest.mark.parametrize("cursor", MALFORMED)
def test_parse_rejects_malformed_cursors(cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed session cursor"):
        SessionCursor.parse(cursor)


@pytest.mark.parametrize("cursor", MALFORMED)
async def test_replay_and_subscribe_reject_malformed_cursors(cursor: str) -> None:
    store = LiveReplayStore()
    start = store.tail_cursor("s", 0)
    append_text(store, "s", 0, "existing")
    with pytest.raises(ValueError, match="malformed session cursor"):
        store.replay_after("s", cursor)
    subscription = store.subscribe("s", cursor)
    with pytest.raises(ValueError, match="malformed session cursor"):
        await next_item(subscription)
    # the buffer is untouched
    assert labels(replayed(store, "s", start)) == ["text:existing"]


async def test_replay_and_subscribe_reject_another_sessions_cursor() -> None:
    store = LiveReplayStore()
    append_text(store, "a", 0, "for a")
    foreign = store.tail_cursor("b", 0)
    with pytest.raises(ValueError, match="belongs to session 'b'"):
        store.replay_after("a", foreign)
    subscription = store.subscribe("a", foreign)
    with pytest.raises(ValueError, match="belongs to session 'b'"):
        await next_item(subscription)


# --- §7.10: a cursor ahead of the tail is unavailable ------------------------------------


async def test_reports_unavailable_for_cursor_ahead_of_tail() -> None:
    store = LiveReplayStore()
    append_text(store, "ahead-session", 4, "existing")
    ahead = SessionCursor(session_id="ahead-session", revision=4, live_position=99).encode()

    gap = gap_of(store, "ahead-session", ahead)
    assert gap.reason == "unavailable"
    # the gap hands back the tail to restart from
    assert replayed(store, "ahead-session", gap.latest_cursor) == []
    assert SessionCursor.parse(gap.latest_cursor).live_position == 1

    subscription = store.subscribe("ahead-session", ahead)
    try:
        first = await next_item(subscription)
        assert isinstance(first, LiveReplayGap) and first.reason == "unavailable"
        # after the gap the subscription follows live events from the tail
        pending = asyncio.ensure_future(next_event(subscription))
        await asyncio.sleep(0)
        append_text(store, "ahead-session", 4, "after the gap")
        assert labels([await pending]) == ["text:after the gap"]
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]


def test_a_fresh_store_reports_unavailable_for_a_cursor_it_never_issued() -> None:
    # e.g. a cursor from before a process restart: the buffer is in-memory only
    old = SessionCursor(session_id="s", revision=3, live_position=5).encode()
    assert gap_of(LiveReplayStore(), "s", old).reason == "unavailable"


# --- §7.10: capacity trim ------------------------------------------------------------------


async def test_capacity_trim() -> None:
    store = LiveReplayStore(capacity=1)
    start = store.tail_cursor("capacity-session", 1)
    first = append_text(store, "capacity-session", 1, "capacity one")
    append_text(store, "capacity-session", 1, "capacity two")

    gap = gap_of(store, "capacity-session", start)
    assert gap.reason == "trimmed"
    subscription = store.subscribe("capacity-session", start)
    try:
        item = await next_item(subscription)
        assert isinstance(item, LiveReplayGap) and item.reason == "trimmed"
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]

    assert labels(replayed(store, "capacity-session", first.cursor)) == ["text:capacity two"]
    assert replayed(store, "capacity-session", gap.latest_cursor) == []


def test_capacity_is_per_session() -> None:
    store = LiveReplayStore(capacity=2)
    start_a = store.tail_cursor("a", 0)
    start_b = store.tail_cursor("b", 0)
    append_text(store, "a", 0, "a1")
    for i in range(5):
        append_text(store, "b", 0, f"b{i}")
    assert labels(replayed(store, "a", start_a)) == ["text:a1"]
    assert gap_of(store, "b", start_b).reason == "trimmed"


# --- §7.10: TTL trim -------------------------------------------------------------------------


async def test_ttl_trim() -> None:
    clock = ManualClock()
    store = LiveReplayStore(ttl_s=120.0, clock=clock)
    start = store.tail_cursor("ttl-session", 1)
    append_text(store, "ttl-session", 1, "ttl expired")

    clock.advance(119_999)  # just inside the TTL: still kept
    assert labels(replayed(store, "ttl-session", start)) == ["text:ttl expired"]

    clock.advance(2)  # just past it
    gap = gap_of(store, "ttl-session", start)
    assert gap.reason == "trimmed"
    subscription = store.subscribe("ttl-session", start)
    try:
        item = await next_item(subscription)
        assert isinstance(item, LiveReplayGap) and item.reason == "trimmed"
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]

    tail = store.tail_cursor("ttl-session", 1)
    assert replayed(store, "ttl-session", tail) == []
    assert tail == gap.latest_cursor


def test_ttl_trim_keeps_younger_events() -> None:
    clock = ManualClock()
    store = LiveReplayStore(ttl_s=10.0, clock=clock)
    start = store.tail_cursor("s", 0)
    old = append_text(store, "s", 0, "old")
    clock.advance(6_000)
    append_text(store, "s", 0, "young")
    clock.advance(5_000)  # "old" is 11 s old, "young" 5 s
    assert gap_of(store, "s", start).reason == "trimmed"
    assert labels(replayed(store, "s", old.cursor)) == ["text:young"]


# --- end to end through a session ----------------------------------------------------------


def _core(replay: LiveReplayStore | None = None) -> lash.LashCore:
    builder = (
        lash.LashCore.builder()
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .provider(ScriptedProvider([reply("hi")]))
        .model(lash.ModelSpec("m"))
    )
    if replay is not None:
        builder.live_replay(replay)
    return builder.build()


async def test_resume_from_cursor_replays_a_turn_and_its_commit() -> None:
    async with _core() as core:
        session = await core.session("chat-1").open()
        before = await session.current_observation()
        assert before.read_view.messages == ()
        assert SessionCursor.parse(before.cursor, session_id="chat-1").live_position == 0

        result = await session.turn("hello").run()
        assert result.assistant_text == "hi"

        events, fresh, gap = await session.resume_from_cursor(before.cursor)
        assert gap is None and fresh is None
        kinds = [e.kind for e in events]
        assert kinds[-1] == "committed"
        assert set(kinds[:-1]) == {"turn_activity"}
        activities = [e.activity for e in events if e.activity is not None]
        assert all(a.turn_id == result.turn_id for a in activities)
        streamed = "".join(
            a.event.text for a in activities if isinstance(a.event, AssistantProseDelta)
        )
        assert streamed == "hi"

        committed = events[-1]
        assert committed.read_view is not None
        assert committed.revision == committed.read_view.revision == session.head_revision
        assert [(m.role, m.text) for m in committed.read_view.messages] == [
            ("user", "hello"),
            ("assistant", "hi"),
        ]
        # cursors are strictly increasing and each resumes right after its event
        positions = [SessionCursor.parse(e.cursor).live_position for e in events]
        assert positions == sorted(set(positions))
        after_first, _, _ = await session.resume_from_cursor(events[0].cursor)
        assert after_first == events[1:]

        # the observation after the turn is at the tail: nothing to replay
        after = await session.current_observation()
        assert after.read_view.messages == committed.read_view.messages
        assert await session.resume_from_cursor(after.cursor) == ([], None, None)


async def test_resume_from_a_trimmed_cursor_returns_a_fresh_observation() -> None:
    async with _core(LiveReplayStore(capacity=1)) as core:
        session = await core.session("chat-1").open()
        before = await session.current_observation()
        await session.turn("hello").run()
        events, fresh, gap = await session.resume_from_cursor(before.cursor)
        assert events == []
        assert gap is not None and gap.reason == "trimmed"
        assert fresh is not None
        assert [m.text for m in fresh.read_view.messages] == ["hello", "hi"]
        assert await session.resume_from_cursor(fresh.cursor) == ([], None, None)


async def test_session_subscribe_follows_a_running_turn() -> None:
    async with _core() as core:
        session = await core.session("chat-1").open()
        before = await session.current_observation()
        subscription = session.subscribe(before.cursor)
        seen: list[Any] = []
        try:
            await session.turn("hello").run()
            while True:
                event = await next_event(subscription)
                seen.append(event)
                if event.kind == "committed":
                    break
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]
        assert seen[-1].read_view is not None
        assert [m.text for m in seen[-1].read_view.messages] == ["hello", "hi"]


async def test_resume_rejects_another_sessions_cursor() -> None:
    async with _core() as core:
        one = await core.session("one").open()
        two = await core.session("two").open()
        foreign = (await two.current_observation()).cursor
        with pytest.raises(ValueError, match="belongs to session 'two'"):
            await one.resume_from_cursor(foreign)
        with pytest.raises(ValueError, match="malformed"):
            await one.resume_from_cursor("garbage")
