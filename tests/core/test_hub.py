"""The fan-out hub: snapshots, per-subscription updates, encode-once, slow clients, eviction."""

from __future__ import annotations

import json

import pytest

from signal_gateway.core.model import Mode, SignalState
from signal_gateway.core.views import GroupView, IntersectionView
from signal_gateway.fanout.hub import (
    CLOSE_TOO_SLOW,
    EVERYTHING,
    Hub,
    HubConfig,
    Subscription,
)
from signal_gateway.fanout.ops import Subscribe, parse_op
from signal_gateway.testing import FakeClock, RecordingSink, small_registry

IDS = ("YT001", "YT002", "YT003")


class Views:
    """A stand-in for City.view: a dict of views that tests change by hand."""

    def __init__(self) -> None:
        self.views = {iid: self.make(iid, 0) for iid in IDS}

    @staticmethod
    def make(iid: str, end_ms: int) -> IntersectionView:
        """A normal view with one green group ending at ``end_ms``."""
        group = GroupView(1, SignalState.GREEN, end_ms, end_ms, end_ms, end_ms, None)
        return IntersectionView(iid, Mode.NORMAL, True, False, 1000, (group,))

    def __call__(self, iid: str) -> IntersectionView:
        return self.views[iid]

    def change(self, *iids: str, end_ms: int = 1) -> set[str]:
        """Give each id a new view version; return the ids as the city would report them."""
        for iid in iids:
            self.views[iid] = self.make(iid, end_ms)
        return set(iids)


def make(config: HubConfig | None = None) -> tuple[Hub, Views, FakeClock]:
    """A hub over three intersections."""
    views = Views()
    return Hub(views, IDS, config), views, FakeClock()


def ids_in(frame: dict[str, object]) -> list[str]:
    """The intersection ids a decoded frame carries."""
    items = frame["intersections"]
    assert isinstance(items, list)
    return [item["id"] for item in items]


def last(sink: RecordingSink) -> dict[str, object]:
    """The last frame the sink got, decoded."""
    decoded: dict[str, object] = json.loads(sink.frames[-1])
    return decoded


def ends(frame: dict[str, object]) -> dict[str, object]:
    """id -> end_ms of the first group, for each intersection in a frame."""
    items = frame["intersections"]
    assert isinstance(items, list)
    return {item["id"]: item["groups"][0]["end_ms"] for item in items}


# -- snapshots ------------------------------------------------------------------------------


def test_subscribe_ids_sends_a_snapshot_of_those_ids() -> None:
    """subscribe ids answers a snapshot of exactly those intersections."""
    hub, views, clock = make()
    sink = RecordingSink()
    client = hub.add(sink)
    data = hub.subscribe(client, Subscription(frozenset({"YT003", "YT001"})), clock.now_ms)
    assert sink.frames == [data]
    frame = last(sink)
    assert frame["type"] == "snapshot"
    assert frame["server_time_ms"] == clock.now_ms
    assert ids_in(frame) == ["YT001", "YT003"]
    assert frame["intersections"] == [views("YT001").as_dict(), views("YT003").as_dict()]


def test_subscribe_bbox_via_ops_sends_a_snapshot_of_the_box() -> None:
    """A bbox subscribe parsed by ops yields a snapshot of the intersections inside it."""
    hub, _, clock = make()
    op = parse_op('{"op":"subscribe","bbox":[121.39,37.49,121.43,37.53]}', small_registry())
    assert isinstance(op, Subscribe)
    sink = RecordingSink()
    hub.subscribe(hub.add(sink), op.subscription, clock.now_ms)
    assert ids_in(last(sink)) == ["YT001", "YT002"]


def test_subscribe_all_sends_every_intersection_in_registry_order() -> None:
    """subscribe all answers a snapshot of the whole city."""
    hub, _, clock = make()
    sink = RecordingSink()
    hub.subscribe(hub.add(sink), EVERYTHING, clock.now_ms)
    assert ids_in(last(sink)) == list(IDS)


def test_a_new_subscribe_replaces_the_old_one() -> None:
    """After re-subscribing only the new subscription's changes are sent."""
    hub, views, clock = make()
    sink = RecordingSink()
    client = hub.add(sink)
    hub.subscribe(client, Subscription(frozenset({"YT001"})), clock.now_ms)
    hub.subscribe(client, Subscription(frozenset({"YT002"})), clock.now_ms)
    assert ids_in(last(sink)) == ["YT002"]
    hub.flush(views.change("YT001"), clock.now_ms)
    assert len(sink.frames) == 2
    hub.flush(views.change("YT002"), clock.now_ms)
    assert ids_in(last(sink)) == ["YT002"]


def test_a_client_gets_nothing_before_subscribing() -> None:
    """A connected client that has not subscribed receives no updates."""
    hub, views, clock = make()
    sink = RecordingSink()
    hub.add(sink)
    report = hub.flush(views.change(*IDS), clock.now_ms)
    assert sink.frames == []
    assert report.clients_sent == 0


# -- updates --------------------------------------------------------------------------------


def test_update_carries_only_changed_intersections_in_the_subscription() -> None:
    """An update holds the changed ids the client follows, with their new views."""
    hub, views, clock = make()
    sink = RecordingSink()
    hub.subscribe(hub.add(sink), Subscription(frozenset({"YT001", "YT002"})), clock.now_ms)
    clock.advance(100)
    hub.flush(views.change("YT002", "YT003", end_ms=5), clock.now_ms)
    frame = last(sink)
    assert frame["type"] == "update"
    assert frame["server_time_ms"] == clock.now_ms
    assert ends(frame) == {"YT002": 5}


def test_no_update_without_a_change_in_the_subscription() -> None:
    """Changes outside the subscription, or no changes at all, send nothing."""
    hub, views, clock = make()
    sink = RecordingSink()
    hub.subscribe(hub.add(sink), Subscription(frozenset({"YT001"})), clock.now_ms)
    hub.flush(views.change("YT003"), clock.now_ms)
    hub.flush(set(), clock.now_ms)
    assert len(sink.frames) == 1


def test_full_city_clients_share_one_frame_object() -> None:
    """In one flush every full-city client gets the very same bytes object, built once."""
    hub, views, clock = make()
    sinks = [RecordingSink() for _ in range(5)]
    for sink in sinks:
        hub.subscribe(hub.add(sink), EVERYTHING, clock.now_ms)
    report = hub.flush(views.change("YT001", "YT003"), clock.now_ms)
    assert report.frames_built == 1
    assert report.clients_sent == 5
    assert report.bytes_sent == 5 * len(sinks[0].frames[-1])
    first = sinks[0].frames[-1]
    assert all(sink.frames[-1] is first for sink in sinks)
    assert ids_in(last(sinks[0])) == ["YT001", "YT003"]


def test_clients_with_the_same_ids_share_one_frame_object() -> None:
    """Clients following the same changed ids share one frame."""
    hub, views, clock = make()
    a, b, c = RecordingSink(), RecordingSink(), RecordingSink()
    hub.subscribe(hub.add(a), Subscription(frozenset({"YT001"})), clock.now_ms)
    hub.subscribe(hub.add(b), Subscription(frozenset({"YT001", "YT003"})), clock.now_ms)
    hub.subscribe(hub.add(c), Subscription(frozenset({"YT002", "YT003"})), clock.now_ms)
    report = hub.flush(views.change("YT001", "YT002"), clock.now_ms)
    assert a.frames[-1] is b.frames[-1]
    assert ids_in(last(c)) == ["YT002"]
    assert report.frames_built == 2


def test_a_view_is_encoded_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each view version is encoded once, however many frames and clients carry it."""
    calls: list[str] = []
    original = IntersectionView.encode

    def counting(self: IntersectionView) -> bytes:
        calls.append(self.id)
        return original(self)

    monkeypatch.setattr(IntersectionView, "encode", counting)
    hub, views, clock = make()
    for ids in ({"YT001"}, {"YT001", "YT002"}, None, None):
        sub = EVERYTHING if ids is None else Subscription(frozenset(ids))
        hub.subscribe(hub.add(RecordingSink()), sub, clock.now_ms)
    assert sorted(calls) == ["YT001", "YT002", "YT003"]
    calls.clear()
    hub.flush(views.change("YT001"), clock.now_ms)
    hub.subscribe(hub.add(RecordingSink()), EVERYTHING, clock.now_ms)
    assert calls == ["YT001"]
    assert hub.encoded("YT001") is hub.encoded("YT001")


# -- slow clients ---------------------------------------------------------------------------


def slow(sink: RecordingSink) -> None:
    """Make the sink look full: buffered just over its soft limit."""
    sink.buffered = sink.soft_limit + 1


def test_slow_client_is_skipped_without_affecting_others() -> None:
    """A full send buffer skips that client; the others get the same frame as ever."""
    hub, views, clock = make()
    fast, stuck = RecordingSink(), RecordingSink()
    hub.subscribe(hub.add(fast), EVERYTHING, clock.now_ms)
    hub.subscribe(hub.add(stuck), EVERYTHING, clock.now_ms)
    slow(stuck)
    report = hub.flush(views.change("YT001"), clock.now_ms)
    assert report.skipped_slow == 1
    assert report.clients_sent == 1
    assert report.evicted == ()
    assert len(stuck.frames) == 1  # the snapshot only
    assert ids_in(last(fast)) == ["YT001"]


def test_slow_client_later_gets_only_the_newest_views_in_one_frame() -> None:
    """A drained client gets one frame with the newest view of each id it missed, no queue."""
    hub, views, clock = make()
    stuck = RecordingSink()
    client = hub.add(stuck)
    hub.subscribe(client, Subscription(frozenset({"YT001", "YT002"})), clock.now_ms)
    slow(stuck)
    for end in (10, 20, 30):
        clock.advance(100)
        hub.flush(views.change("YT001", end_ms=end), clock.now_ms)
    clock.advance(100)
    hub.flush(views.change("YT002", "YT003", end_ms=40), clock.now_ms)
    assert client.backlog == {"YT001", "YT002"}
    assert len(stuck.frames) == 1
    stuck.buffered = 0
    clock.advance(100)
    report = hub.flush(set(), clock.now_ms)
    assert report.clients_sent == 1
    assert len(stuck.frames) == 2
    frame = last(stuck)
    assert frame["type"] == "update"
    assert ends(frame) == {"YT001": 30, "YT002": 40}
    assert client.backlog == set()
    assert client.stalled_since_ms is None
    hub.flush(set(), clock.now_ms)
    assert len(stuck.frames) == 2


def test_full_city_slow_client_catches_up_with_changes_and_backlog() -> None:
    """A full-city client that missed updates gets backlog and new changes in one frame."""
    hub, views, clock = make()
    fast, stuck = RecordingSink(), RecordingSink()
    hub.subscribe(hub.add(fast), EVERYTHING, clock.now_ms)
    hub.subscribe(hub.add(stuck), EVERYTHING, clock.now_ms)
    slow(stuck)
    hub.flush(views.change("YT001", end_ms=7), clock.now_ms)
    stuck.buffered = 0
    hub.flush(views.change("YT003", end_ms=9), clock.now_ms)
    assert ends(last(stuck)) == {"YT001": 7, "YT003": 9}
    assert ends(last(fast)) == {"YT003": 9}


def test_client_over_the_byte_bound_is_evicted_with_1013() -> None:
    """A send buffer over max_buffered_bytes closes the client with 1013 and removes it."""
    hub, views, clock = make(HubConfig(max_buffered_bytes=100_000))
    ok, hog = RecordingSink(), RecordingSink()
    hub.subscribe(hub.add(ok), EVERYTHING, clock.now_ms)
    hog_client = hub.add(hog)
    hub.subscribe(hog_client, EVERYTHING, clock.now_ms)
    hog.buffered = 100_001
    report = hub.flush(views.change("YT002"), clock.now_ms)
    assert report.evicted == (hog_client,)
    assert hog.closed is not None
    assert hog.closed[0] == CLOSE_TOO_SLOW == 1013
    assert hog_client.number not in hub.clients
    assert len(hub) == 1
    assert ids_in(last(ok)) == ["YT002"]


def test_client_stalled_past_the_timeout_is_evicted_with_1013() -> None:
    """A client skipped for longer than stall_timeout_ms is closed with 1013."""
    hub, views, clock = make(HubConfig(stall_timeout_ms=30_000))
    stuck = RecordingSink()
    client = hub.add(stuck)
    hub.subscribe(client, EVERYTHING, clock.now_ms)
    slow(stuck)
    hub.flush(views.change("YT001"), clock.now_ms)
    assert client.stalled_since_ms == clock.now_ms
    clock.advance(30_000)
    assert hub.flush(set(), clock.now_ms).evicted == ()
    clock.advance(1)
    assert hub.flush(set(), clock.now_ms).evicted == (client,)
    assert stuck.closed == (CLOSE_TOO_SLOW, "not reading")
    assert len(hub) == 0


def test_a_client_that_drains_is_not_evicted_later() -> None:
    """Catching up resets the stall timer."""
    hub, views, clock = make(HubConfig(stall_timeout_ms=1000))
    stuck = RecordingSink()
    client = hub.add(stuck)
    hub.subscribe(client, EVERYTHING, clock.now_ms)
    slow(stuck)
    hub.flush(views.change("YT001"), clock.now_ms)
    stuck.buffered = 0
    clock.advance(900)
    hub.flush(set(), clock.now_ms)
    clock.advance(900)
    slow(stuck)
    hub.flush(views.change("YT002", end_ms=3), clock.now_ms)
    clock.advance(900)
    assert hub.flush(set(), clock.now_ms).evicted == ()


def test_resubscribing_resets_the_stall_timer() -> None:
    """A snapshot answers everything missed, so a later stall starts its own timer."""
    hub, views, clock = make(HubConfig(stall_timeout_ms=1000))
    sink = RecordingSink()
    client = hub.add(sink)
    hub.subscribe(client, EVERYTHING, clock.now_ms)
    slow(sink)
    hub.flush(views.change("YT001"), clock.now_ms)
    sink.buffered = 0
    clock.advance(5000)
    hub.subscribe(client, EVERYTHING, clock.now_ms)  # backlog answered by the snapshot
    assert client.backlog == set()
    slow(sink)
    report = hub.flush(views.change("YT002", end_ms=3), clock.now_ms)
    assert report.evicted == ()
    assert sink.closed is None


def test_remove_is_idempotent() -> None:
    """Removing a client twice is harmless and it gets nothing afterwards."""
    hub, views, clock = make()
    sink = RecordingSink()
    client = hub.add(sink)
    hub.subscribe(client, EVERYTHING, clock.now_ms)
    hub.remove(client)
    hub.remove(client)
    assert len(hub) == 0
    hub.flush(views.change("YT001"), clock.now_ms)
    assert len(sink.frames) == 1


def test_client_numbers_are_unique() -> None:
    """Each added client gets its own number and is counted."""
    hub, _, _ = make()
    clients = [hub.add(RecordingSink(), peer=f"10.0.0.{i}:5000") for i in range(3)]
    assert len({c.number for c in clients}) == 3
    assert len(hub) == 3
    assert clients[0].peer == "10.0.0.0:5000"


def test_frame_counters_follow_what_was_sent() -> None:
    """Per-client frame and byte counters add up what the sink received."""
    hub, views, clock = make()
    sink = RecordingSink()
    client = hub.add(sink)
    hub.subscribe(client, EVERYTHING, clock.now_ms)
    hub.flush(views.change("YT001"), clock.now_ms)
    assert client.frames_sent == 2
    assert client.bytes_sent == sum(len(f) for f in sink.frames)
