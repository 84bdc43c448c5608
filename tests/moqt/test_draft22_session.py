"""Sans-I/O session at draft-22: the draft-18 session tests again, the -22 counterparts of
the two that test removed -18 features, FILL_PARAMETERS fill streams, PUBLISH_STATE_NOTIFY,
and FETCH ranges relative to Largest Object."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from moqmls.moqt import events as ev
from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location, encode_message, encode_namespace
from moqmls.moqt.objects import ObjectData
from moqmls.moqt.profile22 import DRAFT_22, OPEN_END, LocationFilter, RangeFilter
from moqmls.moqt.session import CloseConnection, StreamWrite
from moqmls.moqt.varint import encode_vi64

from . import test_session as base

P = DRAFT_22
NS = base.NS
of = base.of

#: draft-18 tests whose subject does not exist at -22; their -22 counterparts are below.
NOT_AT_22 = {
    "test_filter_absolute_start_drops_earlier_objects": "-18 SUBSCRIPTION_FILTER values",
    "test_goaway_with_wrong_parity_request_id": "GOAWAY has no Request ID from -19 on",
    "test_answering_a_request_the_peer_already_cancelled_is_harmless": "a FIN cancels (-18)",
}
RERUN = sorted(
    name
    for name, fn in vars(base).items()
    if name.startswith("test_")
    and name not in NOT_AT_22
    and inspect.isfunction(fn)
    and not inspect.signature(fn).parameters
)


@pytest.fixture
def at22(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(base, "P", P)
    yield


@pytest.mark.parametrize("name", RERUN)
def test_draft18_session_test_at_draft22(name: str, at22: None) -> None:
    fn: Callable[[], Any] = getattr(base, name)
    fn()
    assert base.P is P


def test_location_filter_absolute_start_drops_earlier_objects(at22: None) -> None:
    pair = base.Pair()
    pair.client.subscribe(NS, b"t", {"subscription_filter": LocationFilter(2, 2, 0)})
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id, Location(5, 0))
    assert not pair.server.send_object(req.request_id, 1, 9, b"old")
    assert pair.server.send_object(req.request_id, 2, 0, b"new")


def test_location_filter_range_ends_at_its_end_object(at22: None) -> None:
    pair = base.Pair()
    pair.client.subscribe(NS, b"t", {"subscription_filter": LocationFilter(4, 2, 0, 1, 3)})
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id, Location(1, 0))
    assert pair.server.send_object(req.request_id, 3, 3, b"last")
    assert not pair.server.send_object(req.request_id, 3, 4, b"past the end")


def test_next_group_relative_filter(at22: None) -> None:
    pair = base.Pair()
    pair.client.subscribe(NS, b"t", {"subscription_filter": LocationFilter(1, 0)})
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id, Location(4, 7))
    assert not pair.server.send_object(req.request_id, 4, 8, b"same group")
    assert pair.server.send_object(req.request_id, 5, 0, b"next group")


def test_goaway_carries_no_request_id(at22: None) -> None:
    pair = base.Pair()
    pair.server.goaway(b"moqt://elsewhere", 100)
    c_ev, _ = pair.pump()
    (g,) = of(c_ev, ev.GoawayReceived)
    assert (g.new_session_uri, g.timeout, g.request_id) == (b"moqt://elsewhere", 100, None)


def test_fill_stream_of_a_subscription(at22: None) -> None:
    pair = base.Pair()
    fill = P.fill_parameters
    assert fill is not None
    params = {"forward": 1, "fill_parameters": fill(Location(0, 0), OPEN_END)}
    rid = pair.client.subscribe(NS, b"t", params)
    _, s_ev = pair.pump()
    (req,) = of(s_ev, ev.SubscribeRequested)
    assert req.params["fill_parameters"] == {}  # {0, 0} up to Largest: no filter needed
    pair.server.accept_subscribe(req.request_id, Location(1, 0))
    pair.server.send_fetch_object(req.request_id, ObjectData(0, 0, b"old-0"))
    pair.server.send_fetch_object(req.request_id, ObjectData(1, 0, b"old-1"))
    pair.server.end_fill(req.request_id)
    fill_writes = [c for c in pair.server.commands() if isinstance(c, StreamWrite)]
    # the fill stream is a FETCH_HEADER stream carrying the SUBSCRIBE's Request ID
    first = next(w for w in fill_writes if w.stream_id & 0x2)
    assert first.data[:2] == bytes((0x05,)) + encode_vi64(req.request_id)
    for w in fill_writes:
        pair.client.receive_stream_data(w.stream_id, w.data, w.end_stream)
    assert pair.server.send_object(req.request_id, 2, 0, b"live")  # the subscription lives on
    c_ev, _ = pair.pump()
    objs = of(c_ev, ev.ObjectReceived)
    assert [(o.payload, o.via_fetch, o.request_id) for o in objs] == [
        (b"old-0", True, rid),
        (b"old-1", True, rid),
        (b"live", False, rid),
    ]
    assert of(c_ev, ev.FetchFinished)[0].request_id == rid
    assert pair.server.send_object(req.request_id, 2, 1, b"still live")


def test_publish_state_notify_reaches_the_subscriber(at22: None) -> None:
    pair = base.Pair()
    rid = pair.client.subscribe(NS, b"t")
    _, s_ev = pair.pump()
    pair.server.accept_subscribe(of(s_ev, ev.SubscribeRequested)[0].request_id)
    pair.pump()
    notify = m.PublishStateNotify({"largest_object": Location(3, 2), "forward": 0})
    pair.client.receive_stream_data(0, encode_message(notify, P), False)
    (n,) = of(pair.client.events(), ev.PublishStateNotified)
    assert (n.request_id, n.params) == (rid, notify.params)
    assert not pair.client.closed


def test_publish_state_notify_from_the_subscriber_is_a_violation(at22: None) -> None:
    pair = base.Pair()
    pair.client.subscribe(NS, b"t")
    _, s_ev = pair.pump()
    pair.server.accept_subscribe(of(s_ev, ev.SubscribeRequested)[0].request_id)
    pair.pump()
    pair.server.receive_stream_data(0, encode_message(m.PublishStateNotify({}), P), False)
    closes = [c for c in pair.server.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x3  # PROTOCOL_VIOLATION


def test_relative_fetch_range_is_refused_not_fatal(at22: None) -> None:
    pair = base.Pair()
    # FETCH: Request ID 0, NS, "t", 1 parameter: LOCATION_FILTER Type 1 (relative), StartGroup 2
    body = b"\x00" + encode_namespace(NS) + b"\x01t" + bytes.fromhex("01 21 01 02")
    pair.server.receive_stream_data(0, b"\x16" + len(body).to_bytes(2, "big") + body, False)
    assert not of(pair.server.events(), ev.FetchRequested)
    (answer,) = [c for c in pair.server.commands() if isinstance(c, StreamWrite)]
    # REQUEST_ERROR, Length 17: NOT_SUPPORTED 0x3, Retry Interval 0, reason (14 bytes), then FIN
    assert answer.data == bytes.fromhex("05 00 11 03 00 0E") + b"relative FETCH"
    assert answer.stream_id == 0 and answer.end_stream
    assert not pair.server.closed


def test_include_properties_zero_empties_track_properties(at22: None) -> None:
    pair = base.Pair()
    pair.client.subscribe(NS, b"t", {"include_properties": 0})
    pair.client.subscribe(NS, b"u")
    _, s_ev = pair.pump()
    quiet, normal = of(s_ev, ev.SubscribeRequested)
    pair.server.accept_subscribe(quiet.request_id, None, ((0x04, 7),))
    pair.server.accept_subscribe(normal.request_id, None, ((0x04, 7),))
    c_ev, _ = pair.pump()
    assert [a.track_properties for a in of(c_ev, ev.SubscribeAccepted)] == [(), ((0x04, 7),)]


def _subscribe_with_ranges(pair: base.Pair, n: int) -> list[Any]:
    ranges = tuple((10 * i, 10 * i + 1) for i in range(n))
    pair.client.subscribe(NS, b"t", {"subgroup_filter": (RangeFilter(0, ranges),)})
    c_ev, s_ev = pair.pump()
    return [*of(c_ev, ev.RequestRejected), *of(s_ev, ev.SubscribeRequested)]


def test_range_filters_need_max_filter_ranges(at22: None) -> None:
    # we announced no MAX_FILTER_RANGES (default 0): any Range Filter is INVALID_FILTER
    (got,) = _subscribe_with_ranges(base.Pair(), 1)
    assert isinstance(got, ev.RequestRejected) and got.error_code == 0x36
    pair = base.Pair()
    pair.server.local_setup = ((0x06, 3),)  # as if our SETUP said MAX_FILTER_RANGES 3
    (got,) = _subscribe_with_ranges(pair, 3)
    assert isinstance(got, ev.SubscribeRequested)
    (got,) = _subscribe_with_ranges(pair, 4)
    assert isinstance(got, ev.RequestRejected) and got.error_code == 0x36
    assert not pair.server.closed and not pair.client.closed


def _subscribe_then_fin(pair: base.Pair) -> tuple[list[ev.Event], int]:
    rid = pair.client.subscribe(NS, b"t")
    pair.client.finish_request(rid)  # SUBSCRIBE, then FIN: no REQUEST_UPDATE will follow
    _, s_ev = pair.pump()
    return s_ev, rid


def test_requester_fin_only_half_closes_from_draft19(at22: None) -> None:
    pair = base.Pair()
    s_ev, rid = _subscribe_then_fin(pair)
    (req,) = of(s_ev, ev.SubscribeRequested)
    assert not of(s_ev, ev.RequestClosed)  # "a FIN ... is not a request cancellation"
    pair.server.accept_subscribe(req.request_id)
    assert pair.server.send_object(req.request_id, 0, 0, b"still served")
    c_ev, _ = pair.pump()
    assert [(o.request_id, o.payload) for o in of(c_ev, ev.ObjectReceived)] == [
        (rid, b"still served")
    ]


def test_requester_fin_cancels_at_draft18() -> None:
    pair = base.Pair()  # base.P is draft-18 here
    s_ev, _ = _subscribe_then_fin(pair)
    assert of(s_ev, ev.RequestClosed)  # -18 §6.1: closing with a FIN cancels


def test_timed_out_range_on_a_fill_stream_keeps_the_session(at22: None) -> None:
    pair = base.Pair()
    fill = P.fill_parameters
    assert fill is not None
    params = {"forward": 1, "fill_parameters": fill(Location(0, 0), OPEN_END)}
    rid = pair.client.subscribe(NS, b"t", params)
    _, s_ev = pair.pump()
    (req,) = of(s_ev, ev.SubscribeRequested)
    pair.server.accept_subscribe(req.request_id, Location(4, 5))
    pair.pump()
    # a peer's fill stream (server-initiated unidirectional; 3 is its control stream):
    # FETCH_HEADER; {2, 0} "a"; End of Timed-Out Range up to {4, 3}; {4, 5} "b"
    data = (
        bytes.fromhex("05") + encode_vi64(req.request_id)
        + bytes.fromhex("1C 02 00 05 01 61  82 0C 04 03  04 02 01 62")
    )  # fmt: skip
    pair.client.receive_stream_data(43, data, True)
    assert not any(isinstance(c, CloseConnection) for c in pair.client.commands())
    c_ev, _ = pair.pump()
    objs = of(c_ev, ev.ObjectReceived)
    assert [(o.group_id, o.object_id, o.payload, o.request_id) for o in objs] == [
        (2, 0, b"a", rid),
        (4, 5, b"b", rid),
    ]
    assert not pair.client.closed
