"""Codec tests: vi64 (§1.4.1), control messages (§9), data streams (§10.4)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.moqt import messages as m
from moqmls.moqt.codec import (
    Location,
    Reader,
    SubscriptionFilter,
    decode_namespace,
    decode_one,
    decode_properties,
    encode_message,
    encode_namespace,
    encode_properties,
)
from moqmls.moqt.errors import (
    DecodeError,
    EncodeError,
    KeyValueFormattingError,
    MoQTError,
    ProtocolViolation,
    TrailingDataError,
    TruncatedError,
)
from moqmls.moqt.objects import (
    DataStreamParser,
    EndOfRange,
    FetchHeader,
    ObjectData,
    SubgroupHeader,
    encode_fetch_header,
    encode_fetch_object,
    encode_subgroup_header,
    encode_subgroup_object,
)
from moqmls.moqt.profile import DRAFT_18, profile_for_alpn
from moqmls.moqt.varint import decode_vi64, encode_vi64

P = DRAFT_18

# §1.4.1 "Example Integer Encodings"
SPEC_VARINTS = [
    ("25", 37),
    ("8025", 37),
    ("bbbd", 15293),
    ("ed7f3e7d", 226442877),
    ("faa1a0e403d8", 2893212287960),
    ("fc8998abc66bc0", 151288809941952),
    ("fefa318fa8e3ca11", 70423237261249041),
    ("ffffffffffffffffff", 18446744073709551615),
]


@pytest.mark.parametrize(("hexstr", "value"), SPEC_VARINTS)
def test_vi64_spec_examples(hexstr: str, value: int) -> None:
    raw = bytes.fromhex(hexstr)
    assert decode_vi64(raw, 0) == (value, len(raw))


def test_vi64_minimal_lengths_follow_the_table() -> None:
    # Table "Summary of Integer Encodings": upper bounds of each length.
    bounds = [
        127,
        16383,
        2097151,
        268435455,
        34359738367,
        4398046511103,
        562949953421311,
        72057594037927935,
        18446744073709551615,
    ]
    for length, bound in enumerate(bounds, start=1):
        assert len(encode_vi64(bound)) == length
        if length < 9:
            assert len(encode_vi64(bound + 1)) == length + 1
    assert encode_vi64(0x2F00) == bytes.fromhex("af00")


def test_vi64_rejects_out_of_range_and_truncation() -> None:
    with pytest.raises(EncodeError):
        encode_vi64(1 << 64)
    with pytest.raises(EncodeError):
        encode_vi64(-1)
    with pytest.raises(TruncatedError):
        decode_vi64(bytes.fromhex("ed7f3e"), 0)
    with pytest.raises(TruncatedError):
        decode_vi64(b"", 0)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_vi64_roundtrip(value: int) -> None:
    raw = encode_vi64(value)
    assert decode_vi64(raw + b"\x00", 0) == (value, len(raw))


def test_subscribe_bytes_by_hand() -> None:
    msg = m.Subscribe(4, (b"a", b"b"), b"x", {"forward": 1})
    # type 0x03, length 0x000b (11 payload bytes), request id 4, 2 fields "a" "b", name "x",
    # 1 parameter: type 0x10 (FORWARD, uint8) = 1
    expected = bytes.fromhex("03000b0402016101620178011001")
    assert encode_message(msg, P) == expected
    assert decode_one(expected, P) == msg


def test_setup_uses_type_0x2f00_and_key_value_pairs() -> None:
    msg = m.Setup(((0x04, 0), (0x07, b"moqmls")))
    raw = encode_message(msg, P)
    # 0x2F00 as vi64 is af00; option 4 (even: varint 0), option 7 = delta 3 (odd: length+bytes)
    assert raw == bytes.fromhex("af00000a04000306") + b"moqmls"
    assert decode_one(raw, P) == msg


MESSAGES = [
    m.Goaway(b"moqt://x", 100, 5),
    m.Goaway(b"", 0),
    m.SubscribeOk(3, {"largest_object": Location(7, 2), "expires": 0}, ((0x0E, 10),)),
    m.Publish(2, (b"g", b"keypackage"), b"alice", 9, {"forward": 0}, ((0x0B, b"imm"),)),
    m.PublishDone(2, 5, "done"),
    m.Fetch(6, 1, (b"g",), b"t", Location(1, 0), Location(3, 0), params={"group_order": 1}),
    m.Fetch(8, 2, joining_request_id=2, joining_start=3),
    m.FetchOk(1, Location(5, 1), {}, ()),
    m.TrackStatus(10, (b"ns",), b"t", {}),
    m.PublishNamespace(12, (b"ns", b"x"), {"authorization_token": b"\x03\x00tok"}),
    m.NamespaceMsg((b"s",)),
    m.NamespaceDone((b"s",)),
    m.SubscribeNamespace(14, (), {}),
    m.SubscribeTracks(16, (b"g",), {"forward": 1}),
    m.PublishBlocked((b"x",), b"y"),
    m.RequestUpdate(18, {"subscription_filter": SubscriptionFilter(4, Location(1, 2), 3)}),
    m.RequestOk({}, ()),
    m.RequestErrorMsg(0x10, 0, "nope"),
    m.RequestErrorMsg(0x34, 1, "moved", m.Redirect(b"", (b"a",), b"b")),
    m.Subscribe(20, (b"a",), b"", {"subscription_filter": SubscriptionFilter(2)}),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda x: type(x).__name__)
def test_message_roundtrip(msg: object) -> None:
    raw = encode_message(msg, P)
    assert decode_one(raw, P) == msg


def test_unknown_message_type_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation):
        decode_one(bytes.fromhex("3f0000"), P)


def test_length_mismatch_is_rejected() -> None:
    raw = encode_message(m.NamespaceMsg((b"s",)), P)
    padded = raw[:1] + (int.from_bytes(raw[1:3], "big") + 1).to_bytes(2, "big") + raw[3:] + b"\0"
    with pytest.raises(TrailingDataError):
        decode_one(padded, P)
    short = raw[:1] + (int.from_bytes(raw[1:3], "big") - 1).to_bytes(2, "big") + raw[3:-1]
    with pytest.raises(TruncatedError):
        decode_one(short, P)


def test_unknown_parameter_and_wrong_scope_and_bad_value() -> None:
    # SUBSCRIBE with parameter type 0x7e (undefined in -18)
    body = bytes.fromhex("000000017e00")
    with pytest.raises(ProtocolViolation):
        decode_one(b"\x03" + len(body).to_bytes(2, "big") + body, P)
    # FILL_TIMEOUT (0x0A) is only allowed in FETCH
    body = bytes.fromhex("000000010a05")
    with pytest.raises(ProtocolViolation):
        decode_one(b"\x03" + len(body).to_bytes(2, "big") + body, P)
    # FORWARD = 2 is outside {0, 1}
    body = bytes.fromhex("000000011002")
    with pytest.raises(ProtocolViolation):
        decode_one(b"\x03" + len(body).to_bytes(2, "big") + body, P)


def test_namespace_limits() -> None:
    with pytest.raises(ProtocolViolation):
        decode_namespace(Reader(bytes.fromhex("0100")))  # empty field
    with pytest.raises(ProtocolViolation):
        decode_namespace(Reader(encode_vi64(33) + b"\x01a" * 33))
    with pytest.raises(EncodeError):
        encode_namespace((b"",))
    big = (b"x" * 4000, b"y" * 200)
    with pytest.raises(ProtocolViolation):
        decode_namespace(Reader(encode_namespace(big)))


def test_key_value_pairs_delta_and_parity() -> None:
    props = ((2, 5), (3, b"abc"), (0x3C, 7))
    raw = encode_properties(props)
    # type 2 -> delta 2, value 5; type 3 -> delta 1, length 3; type 0x3c -> delta 0x39
    assert raw == bytes.fromhex("020501036162633907")
    assert decode_properties(Reader(raw)) == props
    with pytest.raises(KeyValueFormattingError):
        decode_properties(Reader(bytes.fromhex("0105ab")))


def test_spec_example_subgroup_stream() -> None:
    # §10.6 first example: type 0x14, alias 2, group 0, subgroup 0, priority 0; "abcd", "efgh"
    raw = bytes.fromhex("14020000000004") + b"abcd" + b"\x00\x04efgh"
    parser = DataStreamParser(P)
    items = []
    for i in range(len(raw)):  # byte by byte: the parser must wait for complete items
        items += parser.feed(raw[i : i + 1])
    parser.finish()
    header = items[0]
    assert isinstance(header, SubgroupHeader)
    assert (header.track_alias, header.group_id, header.subgroup_id, header.priority) == (
        2,
        0,
        0,
        0,
    )
    assert [(o.object_id, o.payload) for o in items[1:]] == [(0, b"abcd"), (1, b"efgh")]


def test_subgroup_roundtrip_with_properties_and_status() -> None:
    h = SubgroupHeader(7, 3, 0, None, True, True, True)
    raw = encode_subgroup_header(h, P)
    assert raw[0] == 0x10 | 0x01 | 0x08 | 0x20 | 0x40
    raw += encode_subgroup_object(h, None, 2, b"p1", ((0x38, 1),))
    raw += encode_subgroup_object(h, 2, 5, b"p2")
    raw += encode_subgroup_object(h, 5, 6, b"", status=3)
    items = DataStreamParser(P).feed(raw)
    objs = [i for i in items if isinstance(i, ObjectData)]
    assert [(o.object_id, o.payload, o.properties, o.status) for o in objs] == [
        (2, b"p1", ((0x38, 1),), 0),
        (5, b"p2", (), 0),
        (6, b"", (), 3),
    ]


@pytest.mark.parametrize("stype", [0x16, 0x17, 0x1E, 0x7F, 0x00, 0x80, 0x90])
def test_invalid_subgroup_types(stype: int) -> None:
    with pytest.raises(ProtocolViolation):
        DataStreamParser(P).feed(encode_vi64(stype) + b"\x00\x00\x00")


def test_fin_inside_object_is_a_violation() -> None:
    h = SubgroupHeader(1, 0, 0, 0)
    raw = encode_subgroup_header(h, P) + encode_subgroup_object(h, None, 0, b"abcdef")
    parser = DataStreamParser(P)
    parser.feed(raw[:-2])
    with pytest.raises(ProtocolViolation):
        parser.finish()


def test_fetch_stream_roundtrip() -> None:
    objs = [
        ObjectData(0, 0, b"a", ((2, 5),), 0, 1),
        ObjectData(0, 1, b"b", (), 0, 1),
        ObjectData(0, 4, b"c", (), 1, 2),
        ObjectData(3, 2, b"d", (), 0, 7),
    ]
    raw = encode_fetch_header(4, P)
    prev = None
    for o in objs:
        raw += encode_fetch_object(prev, o)
        prev = o
    items = DataStreamParser(P).feed(raw)
    assert items[0] == FetchHeader(4)
    assert items[1:] == objs


def test_fetch_stream_by_hand_and_end_of_range() -> None:
    # flags 0x0C|0x10 (group+object present, priority present), subgroup 0 implied;
    # group 5, object 1, priority 9, length 2 "hi"; then End of Non-Existent Range to {6, 0};
    # then flags 0x08 (group delta present): group = 6 + 0 + 1 = 7, object = 6+1? no: with
    # group delta present and no object delta, object = prior(0) + 1 = 1; priority reuses 9.
    raw = encode_vi64(5) + encode_vi64(3)
    raw += bytes.fromhex("1c05010902") + b"hi"
    raw += encode_vi64(0x8C) + bytes.fromhex("0600")
    raw += bytes.fromhex("080001") + b"z"
    items = DataStreamParser(P).feed(raw)
    assert items[0] == FetchHeader(3)
    assert items[1] == ObjectData(5, 1, b"hi", (), 0, 9)
    assert items[2] == EndOfRange(6, 0, False)
    assert items[3] == ObjectData(7, 1, b"z", (), 0, 9)


def test_fetch_first_object_must_be_absolute() -> None:
    raw = encode_vi64(5) + encode_vi64(3) + bytes.fromhex("100900")
    with pytest.raises(ProtocolViolation):
        DataStreamParser(P).feed(raw)


def test_profile_is_chosen_by_alpn() -> None:
    assert profile_for_alpn("moqt-18") is DRAFT_18
    with pytest.raises(MoQTError) as info:
        profile_for_alpn("moqt-99")
    assert info.value.code == 0x15


# --- fuzzing -------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_control_decoder_only_raises_moqt_errors(data: bytes) -> None:
    with contextlib.suppress(MoQTError):
        decode_one(data, P)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MESSAGES), st.data())
def test_fuzz_mutated_messages(msg: object, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg, P))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(MoQTError):
        decode_one(bytes(raw), P)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 17))
def test_fuzz_data_stream_parser(data: bytes, chunk: int) -> None:
    parser = DataStreamParser(P)
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
        parser.finish()
    except (DecodeError, ProtocolViolation):
        pass


names = st.binary(min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 1 << 40),
    st.lists(names, max_size=4).map(tuple),
    st.binary(max_size=16),
    st.sampled_from([0, 1]),
    st.lists(
        st.tuples(st.integers(0, 300).map(lambda k: k * 2), st.integers(0, 1 << 30)), max_size=3
    ),
)
def test_publish_roundtrip_property(
    rid: int, ns: tuple[bytes, ...], name: bytes, fwd: int, props: list[tuple[int, int]]
) -> None:
    msg = m.Publish(rid, ns, name, rid + 1, {"forward": fwd}, tuple(sorted(props)))
    assert decode_one(encode_message(msg, P), P) == msg
