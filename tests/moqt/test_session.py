"""Sans-I/O session tests: two `MoQTSession`s wired back to back (§3, §5, §9, §10)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.moqt import events as ev
from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location, SubscriptionFilter, encode_message
from moqmls.moqt.objects import ObjectData
from moqmls.moqt.profile import DRAFT_18
from moqmls.moqt.session import (
    CloseConnection,
    MoQTSession,
    StreamReset,
    StreamWrite,
    namespace_matches,
)
from moqmls.moqt.varint import encode_vi64

P = DRAFT_18
NS = (b"grp", b"keypackage")


class Pair:
    """A client and a server session whose commands are delivered to each other."""

    def __init__(self) -> None:
        self.client = MoQTSession(P, is_client=True)
        self.server = MoQTSession(P, is_client=False)
        self.closes: dict[str, CloseConnection] = {}
        self.client.initiate(((7, b"test-client"),))
        self.server.initiate()
        self.pump()

    def pump(self) -> tuple[list[ev.Event], list[ev.Event]]:
        for _ in range(20):
            moved = self._move(self.client, self.server, "client")
            moved |= self._move(self.server, self.client, "server")
            if not moved:
                break
        return self.client.events(), self.server.events()

    def _move(self, a: MoQTSession, b: MoQTSession, name: str) -> bool:
        cmds = a.commands()
        for c in cmds:
            if isinstance(c, StreamWrite):
                b.receive_stream_data(c.stream_id, c.data, c.end_stream)
            elif isinstance(c, StreamReset):
                b.stream_reset(c.stream_id, c.code)
            elif isinstance(c, CloseConnection):
                self.closes[name] = c
        return bool(cmds)


def of(events: list[ev.Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_setup_exchange() -> None:
    pair = Pair()
    assert pair.server.peer_setup == ((7, b"test-client"),)
    assert pair.client.peer_setup == ()


def test_subscribe_objects_and_publish_done() -> None:
    pair = Pair()
    pair.pump()
    rid = pair.client.subscribe(NS, b"alice", {"forward": 1})
    assert rid == 0  # client request IDs are even, from 0 (§9.1)
    _, s_ev = pair.pump()
    (req,) = of(s_ev, ev.SubscribeRequested)
    assert (req.namespace, req.track_name) == (NS, b"alice")
    alias = pair.server.accept_subscribe(req.request_id, Location(0, 0))
    pair.server.send_object(req.request_id, 1, 0, b"one", ((0x38, 5),))
    pair.server.send_object(req.request_id, 1, 1, b"two")
    pair.server.send_object(req.request_id, 2, 0, b"three")
    c_ev, _ = pair.pump()
    (ok,) = of(c_ev, ev.SubscribeAccepted)
    assert ok.track_alias == alias and ok.params["largest_object"] == Location(0, 0)
    objs = of(c_ev, ev.ObjectReceived)
    assert [(o.group_id, o.object_id, o.payload) for o in objs] == [
        (1, 0, b"one"),
        (1, 1, b"two"),
        (2, 0, b"three"),
    ]
    assert objs[0].properties == ((0x38, 5),)
    pair.server.publish_done(req.request_id, P.publish_done["TRACK_ENDED"], "bye")
    c_ev, _ = pair.pump()
    (done,) = of(c_ev, ev.PublishDoneReceived)
    assert done.stream_count == 2 and done.reason == "bye"


def test_publish_objects_may_precede_publish_ok() -> None:
    pair = Pair()
    rid = pair.client.publish(NS, b"bob")
    pair.client.send_object(rid, 0, 0, b"kp")
    _, s_ev = pair.pump()
    (pub,) = of(s_ev, ev.PublishRequested)
    objs = of(s_ev, ev.ObjectReceived)
    assert objs and objs[0].request_id == pub.request_id and objs[0].payload == b"kp"
    assert s_ev.index(pub) < s_ev.index(objs[0])
    pair.server.accept_request(pub.request_id, {"forward": 1})
    c_ev, _ = pair.pump()
    assert of(c_ev, ev.RequestAccepted)[0].request_id == rid


def test_objects_before_alias_are_buffered_until_subscribe_ok() -> None:
    pair = Pair()
    rid = pair.client.subscribe(NS, b"x")
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id)
    pair.server.send_object(req.request_id, 0, 0, b"early")
    cmds = pair.server.commands()
    # deliver the data stream before the SUBSCRIBE_OK
    for c in sorted(cmds, key=lambda c: isinstance(c, StreamWrite) and c.stream_id % 4 == 1):
        assert isinstance(c, StreamWrite)
        pair.client.receive_stream_data(c.stream_id, c.data, c.end_stream)
    c_ev = pair.client.events()
    assert of(c_ev, ev.SubscribeAccepted)[0].request_id == rid
    assert of(c_ev, ev.ObjectReceived)[0].payload == b"early"


def test_fetch_roundtrip_and_finish() -> None:
    pair = Pair()
    rid = pair.client.fetch(NS, b"alice", Location(0, 0), Location(3, 0))
    _, s_ev = pair.pump()
    (f,) = of(s_ev, ev.FetchRequested)
    assert (f.start, f.end) == (Location(0, 0), Location(3, 0))
    pair.server.accept_fetch(f.request_id, Location(2, 1))
    for g in range(3):
        pair.server.send_fetch_object(f.request_id, ObjectData(g, 0, b"g%d" % g))
    pair.server.end_fetch(f.request_id)
    c_ev, _ = pair.pump()
    assert of(c_ev, ev.FetchAccepted)[0].end_location == Location(2, 1)
    objs = of(c_ev, ev.ObjectReceived)
    assert [o.payload for o in objs] == [b"g0", b"g1", b"g2"] and all(o.via_fetch for o in objs)
    assert of(c_ev, ev.FetchFinished)[0].request_id == rid


def test_namespace_discovery_messages() -> None:
    pair = Pair()
    rid = pair.client.subscribe_namespace((b"grp",))
    _, s_ev = pair.pump()
    (sn,) = of(s_ev, ev.SubscribeNamespaceRequested)
    pair.server.accept_request(sn.request_id)
    pair.server.send_namespace(sn.request_id, (b"keypackage",))
    pair.server.send_namespace(sn.request_id, (b"keypackage",), done=True)
    c_ev, _ = pair.pump()
    assert of(c_ev, ev.NamespaceAnnounced)[0].namespace == (b"grp", b"keypackage")
    assert of(c_ev, ev.NamespaceWithdrawn)[0].request_id == rid


def test_reject_closes_request() -> None:
    pair = Pair()
    rid = pair.client.subscribe(NS, b"none")
    _, s_ev = pair.pump()
    pair.server.reject(of(s_ev, ev.SubscribeRequested)[0].request_id, 0x10, "no such track")
    c_ev, _ = pair.pump()
    (rej,) = of(c_ev, ev.RequestRejected)
    assert (rej.request_id, rej.error_code, rej.reason) == (rid, 0x10, "no such track")


def test_filter_absolute_start_drops_earlier_objects() -> None:
    pair = Pair()
    flt = SubscriptionFilter(3, Location(2, 0))
    pair.client.subscribe(NS, b"t", {"subscription_filter": flt})
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id, Location(5, 0))
    assert not pair.server.send_object(req.request_id, 1, 9, b"old")
    assert pair.server.send_object(req.request_id, 2, 0, b"new")


def test_forward_zero_sends_nothing_until_updated() -> None:
    pair = Pair()
    rid = pair.client.subscribe(NS, b"t", {"forward": 0})
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id)
    assert not pair.server.send_object(req.request_id, 0, 0, b"x")
    pair.client.request_update(rid, {"forward": 1})
    _, s_ev = pair.pump()
    assert of(s_ev, ev.RequestUpdated)[0].params == {"forward": 1}
    assert pair.server.send_object(req.request_id, 0, 1, b"y")


def test_goaway_on_control_stream() -> None:
    pair = Pair()
    pair.server.goaway(b"moqt://elsewhere", 500)
    c_ev, _ = pair.pump()
    (g,) = of(c_ev, ev.GoawayReceived)
    assert (g.new_session_uri, g.timeout) == (b"moqt://elsewhere", 500)


# --- protocol violations close only the offending session, with the right code -----------


def _raw_request(pair: Pair, stream_id: int, payload: bytes) -> CloseConnection | None:
    pair.server.receive_stream_data(stream_id, payload, False)
    for c in pair.server.commands():
        if isinstance(c, CloseConnection):
            return c
    return None


def test_wrong_request_id_parity_is_invalid_request_id() -> None:
    pair = Pair()
    close = _raw_request(pair, 0, encode_message(m.Subscribe(1, NS, b"x"), P))
    assert close is not None and close.code == 0x4
    assert pair.server.closed


def test_duplicate_request_id() -> None:
    pair = Pair()
    assert _raw_request(pair, 0, encode_message(m.Subscribe(2, NS, b"x"), P)) is None
    close = _raw_request(pair, 4, encode_message(m.Subscribe(2, NS, b"y"), P))
    assert close is not None and close.code == 0x4


def test_non_request_message_opening_bidi_stream() -> None:
    pair = Pair()
    close = _raw_request(pair, 0, encode_message(m.RequestOk(), P))
    assert close is not None and close.code == 0x3


def test_unknown_message_type_closes_with_protocol_violation() -> None:
    pair = Pair()
    close = _raw_request(pair, 0, bytes.fromhex("3f0000"))
    assert close is not None and close.code == 0x3


def test_unknown_stream_type() -> None:
    pair = Pair()
    pair.server.receive_stream_data(6, encode_vi64(0x2A), False)
    closes = [c for c in pair.server.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x3


def test_second_setup_stream_and_message_before_setup() -> None:
    pair = Pair()
    pair.server.receive_stream_data(6, encode_message(m.Setup(()), P), False)
    assert [c for c in pair.server.commands() if isinstance(c, CloseConnection)]
    fresh = MoQTSession(P, is_client=False)
    fresh.receive_stream_data(2, encode_vi64(0x2F00) + b"\x00\x00", False)
    fresh.receive_stream_data(2, encode_message(m.Subscribe(0, NS, b"x"), P), False)
    closes = [c for c in fresh.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x3  # SUBSCRIBE is not a control stream message


def test_duplicate_track_alias() -> None:
    pair = Pair()
    pair.client.subscribe(NS, b"a")
    pair.client.subscribe(NS, b"b")
    _, s_ev = pair.pump()
    reqs = of(s_ev, ev.SubscribeRequested)
    pair.server.accept_subscribe(reqs[0].request_id)
    pair.pump()
    # A misbehaving publisher answers the second SUBSCRIBE with the same alias.
    sid = pair.server._requests[reqs[1].request_id].stream_id
    pair.client.receive_stream_data(sid, encode_message(m.SubscribeOk(0, {}, ()), P), False)
    closes = [c for c in pair.client.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x5


def test_control_stream_fin_is_protocol_violation() -> None:
    pair = Pair()
    ctrl = pair.client._control_out
    assert ctrl is not None
    pair.server.receive_stream_data(ctrl, b"", True)
    closes = [c for c in pair.server.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x3


def test_namespace_prefix_matching() -> None:
    # §8.5 example: (foo, bar) matches prefixes (foo) and (foo, bar), not (foobar)
    assert namespace_matches((b"foo",), (b"foo", b"bar"))
    assert namespace_matches((b"foo", b"bar"), (b"foo", b"bar"))
    assert not namespace_matches((b"foobar",), (b"foo", b"bar"))
    assert namespace_matches((), (b"any",))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 2, 4, 6, 10, 14]), st.binary(max_size=40), st.booleans()),
        max_size=8,
    )
)
def test_fuzz_session_never_raises(chunks: list[tuple[int, bytes, bool]]) -> None:
    session = MoQTSession(P, is_client=False)
    session.initiate()
    for sid, data, end in chunks:
        session.receive_stream_data(sid, data, end)
        session.stream_reset(sid + 1000, 0)
    session.commands()
    session.events()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_mutated_request_closes_with_a_code(data: st.DataObject) -> None:
    pair = Pair()
    raw = bytearray(encode_message(m.Subscribe(0, NS, b"t", {"forward": 1}), P))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    pair.server.receive_stream_data(0, bytes(raw), True)
    for c in pair.server.commands():
        if isinstance(c, CloseConnection):
            # a precise MoQT error code, never the catch-all for an implementation bug
            assert c.code in (0x3, 0x4, 0x6), c


def test_cancel_resets_streams() -> None:
    pair = Pair()
    rid = pair.client.subscribe(NS, b"t")
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id)
    pair.server.send_object(req.request_id, 0, 0, b"x")
    pair.pump()
    pair.client.cancel(rid)
    _, s_ev = pair.pump()
    assert of(s_ev, ev.RequestClosed)[0].request_id == req.request_id
    assert not pair.server.send_object(req.request_id, 0, 1, b"y")


@pytest.mark.parametrize("bad", [b"\x05", b"\x07\x00\x00"])
def test_truncated_request_stream_fin(bad: bytes) -> None:
    pair = Pair()
    pair.server.receive_stream_data(0, bad, True)
    assert any(isinstance(c, CloseConnection) for c in pair.server.commands())


def test_answering_a_request_the_peer_already_cancelled_is_harmless() -> None:
    # Found by the relay fuzz test: SUBSCRIBE immediately followed by FIN.
    pair = Pair()
    pair.server.receive_stream_data(0, encode_message(m.Subscribe(0, NS, b"x"), P), True)
    s_ev = pair.server.events()
    assert of(s_ev, ev.SubscribeRequested) and of(s_ev, ev.RequestClosed)
    assert pair.server.accept_subscribe(0) is None
    pair.server.accept_request(0)
    assert not pair.server.closed


def test_goaway_request_id_is_the_next_unprocessed_peer_request() -> None:
    pair = Pair()
    pair.client.subscribe(NS, b"a")
    pair.client.subscribe(NS, b"b")
    pair.pump()
    pair.server.goaway(b"", 100)
    ctrl = pair.server._control_out
    assert ctrl is not None
    # the server processed client requests 0 and 2, so the next is 4 (§9.4)
    writes = [c for c in pair.server.commands() if isinstance(c, StreamWrite)]
    assert writes[-1].stream_id == ctrl
    assert writes[-1].data == encode_message(m.Goaway(b"", 100, 4), P)


def test_goaway_with_wrong_parity_request_id() -> None:
    pair = Pair()
    ctrl = pair.server._control_out
    assert ctrl is not None
    pair.client.receive_stream_data(ctrl, encode_message(m.Goaway(b"", 0, 3), P), False)
    closes = [c for c in pair.client.commands() if isinstance(c, CloseConnection)]
    assert closes and closes[0].code == 0x4  # INVALID_REQUEST_ID


def test_no_new_stream_for_a_subgroup_after_stop_sending() -> None:
    pair = Pair()
    pair.client.subscribe(NS, b"t")
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id)
    assert pair.server.send_object(req.request_id, 0, 0, b"a")
    sid = [c for c in pair.server.commands() if isinstance(c, StreamWrite)][-1].stream_id
    pair.server.stop_sending_received(sid, 0x1)
    assert any(isinstance(c, StreamReset) and c.stream_id == sid for c in pair.server.commands())
    # §10.4.3: the rest of that subgroup is not re-sent on a new stream; the next group is
    assert not pair.server.send_object(req.request_id, 0, 1, b"b")
    assert pair.server.send_object(req.request_id, 1, 0, b"c")


def test_subgroup_fin_is_reported() -> None:
    pair = Pair()
    rid = pair.client.subscribe(NS, b"t")
    _, s_ev = pair.pump()
    req = of(s_ev, ev.SubscribeRequested)[0]
    pair.server.accept_subscribe(req.request_id)
    pair.server.send_object(req.request_id, 3, 0, b"a")
    pair.server.end_subgroup(req.request_id, 3)
    c_ev, _ = pair.pump()
    assert of(c_ev, ev.SubgroupFinished) == [ev.SubgroupFinished(rid, 3, 0, False)]


@pytest.mark.parametrize("first", [b".", b".session"])
def test_reserved_namespaces_are_refused(first: bytes) -> None:
    pair = Pair()
    rid = pair.client.subscribe((first, b"x"), b"t")
    c_ev, s_ev = pair.pump()
    assert not of(s_ev, ev.SubscribeRequested)
    assert of(c_ev, ev.RequestRejected)[0].request_id == rid
    assert of(c_ev, ev.RequestRejected)[0].error_code == 0x10  # DOES_NOT_EXIST


def test_fin_after_a_rejected_request_is_not_a_new_request() -> None:
    pair = Pair()
    raw = encode_message(m.Subscribe(0, (b".", b"x"), b"t"), P)
    pair.server.receive_stream_data(0, raw, False)
    pair.server.receive_stream_data(0, b"", True)  # the subscriber's FIN arrives later
    assert not [c for c in pair.server.commands() if isinstance(c, CloseConnection)]
    assert not pair.server.closed


def _subscribed_pair() -> tuple[Pair, int]:
    pair = Pair()
    pair.pump()
    pair.client.subscribe(NS, b"alice", {"forward": 1})
    _, s_ev = pair.pump()
    (req,) = of(s_ev, ev.SubscribeRequested)
    pair.server.accept_subscribe(req.request_id, None)
    return pair, req.request_id


def test_fan_out_encodes_each_object_once_per_stream_state() -> None:
    (a, ra), (b, rb), (c, rc) = [_subscribed_pair() for _ in range(3)]
    for obj in (0, 1):
        memo: dict[int | None, bytes] = {}
        for pair, rid in ((a, ra), (b, rb)):
            assert pair.server.send_object(rid, 1, obj, b"ab"[obj : obj + 1], encoded=memo)
        assert len(memo) == 1  # both streams were at the same point
    memo = {}
    for pair, rid in ((a, ra), (b, rb), (c, rc)):  # c joins at object 2: a new stream
        assert pair.server.send_object(rid, 1, 2, b"c", encoded=memo)
    # after object 1: Object ID Delta 0, Properties Length 0, Payload Length 1, "c";
    # first on c's stream: Object ID Delta 2 (absolute), the rest alike
    assert memo == {1: bytes.fromhex("00 00 01 63"), None: bytes.fromhex("02 00 01 63")}
    for pair, want in ((a, [b"a", b"b", b"c"]), (b, [b"a", b"b", b"c"]), (c, [b"c"])):
        c_ev, _ = pair.pump()
        assert [o.payload for o in of(c_ev, ev.ObjectReceived)] == want
