"""Codec corpus, draft-22: every control message against hand-checked bytes
(`tests/moqt/corpus/d22.py`), encoded and decoded; data streams as in -18."""

from __future__ import annotations

import pytest

from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location, decode_one, encode_message
from moqmls.moqt.errors import EncodeError, MoQTError
from moqmls.moqt.objects import DataStreamParser, PaddingHeader
from moqmls.moqt.profile import PROFILES, profile_for_alpn
from moqmls.moqt.profile22 import DRAFT_22, OPEN_END, LocationFilter, RangeFilter
from moqmls.moqt.varint import MAX_VI64

from .corpus import Case, d18, d22, wire

P = DRAFT_22


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def test_profile_is_chosen_by_alpn() -> None:
    assert profile_for_alpn("moqt-22") is DRAFT_22
    assert set(PROFILES) == {"moqt-18", "moqt-22"}


@pytest.mark.parametrize("case", d22.MESSAGES, ids=_ids(d22.MESSAGES))
def test_message_encodes_to_the_hand_written_bytes(case: Case) -> None:
    assert encode_message(case.value, P).hex() == case.data.hex()


@pytest.mark.parametrize("case", d22.MESSAGES, ids=_ids(d22.MESSAGES))
def test_message_decodes_from_the_hand_written_bytes(case: Case) -> None:
    assert decode_one(case.data, P) == case.value


@pytest.mark.parametrize("case", d22.ENCODE_ONLY, ids=_ids(d22.ENCODE_ONLY))
def test_fields_this_draft_no_longer_carries(case: Case) -> None:
    assert encode_message(case.value, P).hex() == case.data.hex()


def test_corpus_covers_every_message_type_of_the_draft() -> None:
    covered = {c.data[0] if c.data[0] < 0x80 else 0x2F00 for c in d22.MESSAGES}
    assert covered == set(P.spec_by_code)
    assert 0x1E not in P.spec_by_code and 0x22 in P.spec_by_code


@pytest.mark.parametrize(("why", "hexstr"), d22.REFUSED, ids=[w for w, _ in d22.REFUSED])
def test_refused_messages(why: str, hexstr: str) -> None:
    with pytest.raises(MoQTError) as info:
        decode_one(wire(hexstr), P)
    assert info.value.code in (0x3, 0x6), why


def test_joining_fetch_does_not_exist_in_draft_22() -> None:
    with pytest.raises(EncodeError):
        encode_message(m.Fetch(0, 2, joining_request_id=0, joining_start=1), P)


def test_relative_fetch_filter_is_left_to_the_responder() -> None:
    # FETCH 0, ("a"), "c", LOCATION_FILTER Type 1 StartGroup 2
    got = decode_one(wire("16 00 0A 00 01 01 61 01 63 01 21 01 02"), P)
    assert got.fetch_type == 0
    assert got.params["subscription_filter"] == LocationFilter(1, 2)


# --- data streams are unchanged from -18 --------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [*d18.SUBGROUP_HEADERS, d18.SUBGROUP_STREAM, d18.FETCH_STREAM, d18.FETCH_STREAM_COMPACT],
    ids=lambda c: c.name,
)
def test_data_streams_parse_as_in_draft_18(case: Case) -> None:
    expected = case.value if isinstance(case.value, tuple) else (case.value,)
    assert DataStreamParser(P).feed(case.data) == list(expected)


def test_padding_stream() -> None:
    assert DataStreamParser(P).feed(wire(d18.PADDING_STREAM)) == [PaddingHeader()]


# --- Location Filter semantics (main §Location Filters) -------------------------------------

LARGEST = Location(7, 3)
WINDOWS = [
    # StartGroup=0 starts at the Next Group, 1 at the current group, 2 one group before
    (LocationFilter(1, 0), LARGEST, Location(8, 0), None),
    (LocationFilter(1, 1), LARGEST, Location(7, 0), None),
    (LocationFilter(1, 2), LARGEST, Location(6, 0), None),
    # a relative start below group 0 is clamped to 0
    (LocationFilter(1, 20), LARGEST, Location(0, 0), None),
    # next object: {Largest.Group, Largest.Object + 1}, or {0, 0} before any content
    (LocationFilter(5), LARGEST, Location(7, 4), None),
    (LocationFilter(5), None, Location(0, 0), None),
    (LocationFilter(2, 3, 1), LARGEST, Location(3, 1), None),
    # three fields: the whole of group StartGroup + EndGroupDelta
    (LocationFilter(3, 3, 1, 2), LARGEST, Location(3, 1), Location(5, MAX_VI64)),
    # four fields: inclusive end {StartGroup + EndGroupDelta, EndObject}
    (LocationFilter(4, 3, 1, 2, 6), LARGEST, Location(3, 1), Location(5, 6)),
]


@pytest.mark.parametrize(("flt", "largest", "start", "end"), WINDOWS)
def test_location_filter_window(
    flt: LocationFilter, largest: Location | None, start: Location, end: Location | None
) -> None:
    assert flt.window(largest) == (start, end)


def test_fill_parameters_for_a_range() -> None:
    # [start, end) in FETCH terms becomes FILL_PARAMETERS' LOCATION_FILTER, as for a FETCH
    assert P.fill_parameters is not None
    assert P.fill_parameters(Location(2, 0), OPEN_END) == {
        "subscription_filter": LocationFilter(2, 2, 0)
    }
    assert P.fill_parameters(Location(0, 0), Location(3, 0)) == {
        "subscription_filter": LocationFilter(3, 0, 0, 3)
    }
    assert P.fill_parameters(Location(0, 0), OPEN_END) == {}
    assert profile_for_alpn("moqt-18").fill_parameters is None


def test_range_filter_set_id_is_eight_bits() -> None:
    msg = m.Subscribe(0, (), b"", {"subgroup_filter": (RangeFilter(256, ((1, 2),)),)})
    with pytest.raises(EncodeError):
        encode_message(msg, P)


def test_timed_out_range_marker_parses_at_draft_22() -> None:
    case = d22.FETCH_STREAM_TIMED_OUT
    assert DataStreamParser(P).feed(case.data) == list(case.value)


def test_timed_out_range_marker_is_a_violation_at_draft_18() -> None:
    # 0x20C did not exist before -20: the -18 parser refuses it as an unknown flag value
    parser = DataStreamParser(profile_for_alpn("moqt-18"))
    with pytest.raises(MoQTError) as info:
        parser.feed(d22.FETCH_STREAM_TIMED_OUT.data)
    assert info.value.code == 0x3
