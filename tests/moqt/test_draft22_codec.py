"""Properties of the draft-22 codec: random bytes never escape as anything but MoQTError,
filters round-trip, and a FETCH range means the same Locations in -18 and -22."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location, decode_message, decode_one, encode_message
from moqmls.moqt.errors import MoQTError
from moqmls.moqt.profile import DRAFT_18
from moqmls.moqt.profile22 import DRAFT_22, OPEN_END, LocationFilter, RangeFilter
from moqmls.moqt.session import in_fetch_range

P = DRAFT_22
small = st.integers(0, 300)
big = st.integers(0, (1 << 62) - 1)


@settings(max_examples=400)
@given(st.sampled_from(sorted(P.spec_by_code)), st.binary(max_size=40))
def test_random_payloads_raise_only_moqt_errors(code: int, payload: bytes) -> None:
    with contextlib.suppress(MoQTError):
        decode_message(code, payload, 0, len(payload), P)


@st.composite
def location_filters(draw: st.DrawFn) -> LocationFilter:
    ftype = draw(st.integers(0, 5))
    fields = [draw(big) for _ in range({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 0}[ftype])]
    return LocationFilter(ftype, *fields)


@given(location_filters())
def test_location_filter_round_trip(flt: LocationFilter) -> None:
    msg = m.Subscribe(0, (b"a",), b"t", {"subscription_filter": flt})
    assert decode_one(encode_message(msg, P), P) == msg


@st.composite
def range_filters(draw: st.DrawFn, with_property: bool) -> RangeFilter:
    bounds = sorted(draw(st.lists(small, min_size=1, max_size=8, unique=True)))
    if len(bounds) % 2:
        bounds.append(bounds[-1])  # a degenerate last range (start == end) is allowed
    pairs: list[tuple[int, int | None]] = list(zip(bounds[::2], bounds[1::2], strict=True))
    if draw(st.booleans()):
        pairs[-1] = (pairs[-1][0], None)
    ptype = draw(st.integers(0, 100)) * 2 if with_property else None
    return RangeFilter(draw(st.integers(0, 255)), tuple(pairs), ptype)


@given(st.lists(range_filters(False), min_size=1, max_size=3), range_filters(True))
def test_range_filters_round_trip(subgroups: list[RangeFilter], prop: RangeFilter) -> None:
    params = {"subgroup_filter": tuple(subgroups), "object_property_filter": (prop,)}
    msg = m.Subscribe(2, (), b"", params)
    assert decode_one(encode_message(msg, P), P) == msg


@st.composite
def fetch_ranges(draw: st.DrawFn) -> tuple[Location, Location]:
    start = Location(draw(small), draw(small))
    kind = draw(st.sampled_from(["open", "group", "object"]))
    if kind == "open":
        return start, OPEN_END
    end_group = start.group + draw(st.integers(0, 5))
    if kind == "group":
        return start, Location(end_group, 0)
    low = start.object + 1 if end_group == start.group else 1
    return start, Location(end_group, draw(st.integers(low, low + 300)))


@given(fetch_ranges(), st.lists(st.tuples(small, small), max_size=30))
def test_fetch_range_means_the_same_locations_in_both_drafts(
    rng: tuple[Location, Location], probes: list[tuple[int, int]]
) -> None:
    start, end = rng
    msg = m.Fetch(4, 1, (b"a",), b"t", start, end)
    # the same value survives both wire forms
    assert decode_one(encode_message(msg, P), P) == msg
    if end != OPEN_END:
        assert decode_one(encode_message(msg, DRAFT_18), DRAFT_18) == msg
    # and the -22 LOCATION_FILTER passes exactly the Locations of the -18 range
    flt = P.fill_parameters(start, end).get("subscription_filter") if P.fill_parameters else None
    for g, o in probes:
        loc = Location(g, o)
        if flt is None:
            in22 = True
        else:
            lo, hi = flt.window(None)
            in22 = lo <= loc and (hi is None or loc <= hi)
        assert in22 == in_fetch_range(loc, start, end), (loc, start, end, flt)
