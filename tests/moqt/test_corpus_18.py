"""Codec corpus, draft-18: every control message and data-stream header against
hand-checked bytes (`tests/moqt/corpus/d18.py`), encoded and decoded."""

from __future__ import annotations

import pytest

from moqmls.moqt.codec import decode_one, encode_message
from moqmls.moqt.errors import MoQTError, ProtocolViolation
from moqmls.moqt.objects import (
    DataStreamParser,
    ObjectData,
    PaddingHeader,
    SubgroupHeader,
    encode_fetch_header,
    encode_fetch_object,
    encode_subgroup_header,
    encode_subgroup_object,
)
from moqmls.moqt.profile import DRAFT_18

from .corpus import Case, d18, wire

P = DRAFT_18


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


@pytest.mark.parametrize("case", d18.MESSAGES, ids=_ids(d18.MESSAGES))
def test_message_encodes_to_the_hand_written_bytes(case: Case) -> None:
    assert encode_message(case.value, P).hex() == case.data.hex()


@pytest.mark.parametrize("case", d18.MESSAGES, ids=_ids(d18.MESSAGES))
def test_message_decodes_from_the_hand_written_bytes(case: Case) -> None:
    assert decode_one(case.data, P) == case.value


def test_corpus_covers_every_message_type_of_the_draft() -> None:
    covered = {c.data[0] if c.data[0] < 0x80 else 0x2F00 for c in d18.MESSAGES}
    # §9 table: 0x2F00 SETUP and every one-byte type
    assert covered == set(P.spec_by_code)


@pytest.mark.parametrize("case", d18.SUBGROUP_HEADERS, ids=_ids(d18.SUBGROUP_HEADERS))
def test_subgroup_header(case: Case) -> None:
    assert encode_subgroup_header(case.value, P) == case.data
    assert DataStreamParser(P).feed(case.data) == [case.value]


def test_subgroup_stream_both_ways() -> None:
    case = d18.SUBGROUP_STREAM
    header, first, second = case.value
    assert isinstance(header, SubgroupHeader)
    encoded = encode_subgroup_header(header, P)
    encoded += encode_subgroup_object(header, None, 0, first.payload, first.properties)
    encoded += encode_subgroup_object(header, 0, 2, b"", (), second.status)
    assert encoded == case.data
    assert DataStreamParser(P).feed(case.data) == list(case.value)


def test_subgroup_stream_fed_byte_by_byte() -> None:
    parser = DataStreamParser(P)
    items = []
    for b in d18.SUBGROUP_STREAM.data:
        items += parser.feed(bytes((b,)))
    parser.finish()
    assert items == list(d18.SUBGROUP_STREAM.value)


def test_fetch_stream_both_ways() -> None:
    case = d18.FETCH_STREAM
    header, *objects = case.value
    encoded = encode_fetch_header(header.request_id, P)
    previous: ObjectData | None = None
    for obj in objects:
        encoded += encode_fetch_object(previous, obj)
        previous = obj
    assert encoded.hex() == case.data.hex()
    assert DataStreamParser(P).feed(case.data) == list(case.value)


def test_fetch_stream_compact_flags_and_end_of_range() -> None:
    case = d18.FETCH_STREAM_COMPACT
    assert DataStreamParser(P).feed(case.data) == list(case.value)


def test_padding_stream() -> None:
    assert DataStreamParser(P).feed(wire(d18.PADDING_STREAM)) == [PaddingHeader()]


# --- what the draft says must be refused ------------------------------------------------

REFUSED_MESSAGES = [
    # §9: "An endpoint that receives an unknown message type MUST close the session";
    # 0x01 is RESERVED (SETUP for version 00)
    ("reserved type 0x01", "01 00 00"),
    # §5.1.2: filter types other than 0x1-0x4
    ("filter type 5", "03 00 07 02 00 00 01 21 01 05"),
    # §2.4.1: a namespace field of length 0
    ("empty namespace field", "08 00 02 01 00"),
    # §2.4.1: more than 32 namespace fields
    ("33 namespace fields", "08 00 01 21"),
    # §9.2: an unknown Message Parameter (0x3F)
    ("unknown parameter", "07 00 03 01 3F 00"),
    # §9.2.1 Parameter Scope: RENDEZVOUS_TIMEOUT may appear only in SUBSCRIBE
    ("parameter out of scope", "07 00 03 01 04 00"),
    # §9.2.8: FORWARD outside 0..1
    ("FORWARD 2", "51 00 05 00 00 01 10 02"),
    # §9: the Length must match the payload
    ("trailing byte", "0E 00 06 01 03 62 6F 62 00"),
]


@pytest.mark.parametrize(("why", "hexstr"), REFUSED_MESSAGES, ids=[w for w, _ in REFUSED_MESSAGES])
def test_refused_messages(why: str, hexstr: str) -> None:
    with pytest.raises(MoQTError) as info:
        decode_one(wire(hexstr), P)
    assert info.value.code in (0x3, 0x6), why  # PROTOCOL_VIOLATION / KEY_VALUE_FORMATTING_ERROR


REFUSED_STREAMS = [
    ("subgroup ID mode 0b11", "16 00 00"),
    ("bit 4 clear", "20 00 00"),
    ("type above 0x7F", "80 90 00 00"),
    ("fetch flags 0x80", "05 00 80 80"),
    ("first fetch object refers to a prior object", "05 00 00 00"),
]


@pytest.mark.parametrize(("why", "hexstr"), REFUSED_STREAMS, ids=[w for w, _ in REFUSED_STREAMS])
def test_refused_stream_headers(why: str, hexstr: str) -> None:
    with pytest.raises(ProtocolViolation):
        DataStreamParser(P).feed(wire(hexstr))
