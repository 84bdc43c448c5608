"""The draft-22 MoQT profile (ALPN ``moqt-22``), built from the draft-18 table.

What changes from draft-18 (see ``moq-transport-deltas-19-22.md`` and the 2026-08 main
text): GOAWAY loses its Request ID (-19); 0x1E PUBLISH_OK is reserved and 0xF is named
PUBLISH_SKIPPED (-19); PUBLISH_STATE_NOTIFY 0x22 (-20); FETCH carries only the track and
Parameters, its range being a LOCATION_FILTER with an inclusive end, and FETCH_OK's End
Location is inclusive (-20); FILL_PARAMETERS 0x23 replaces joining FETCH (-20); Range
Filters 0x25-0x29 (-19); INCLUDE_PROPERTIES 0x35 (-20); LOCATION_FILTER 0x21 is typed
with no Length (-22); new Setup Options and error codes (-19). Varints are unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from moqmls.moqt import messages as m
from moqmls.moqt.codec import (
    BYTES,
    NAMESPACE,
    OPEN_END,
    PARAMS,
    URI,
    VI,
    Field,
    Location,
    MessageSpec,
    Reader,
)
from moqmls.moqt.errors import EncodeError, KeyValueFormattingError, ProtocolViolation
from moqmls.moqt.profile import DRAFT_18, PROFILES, ParamSpec, Profile

__all__ = ["DRAFT_22", "OPEN_END", "LocationFilter", "RangeFilter"]
from moqmls.moqt.varint import MAX_VI64, encode_vi64

# Location Filter Types of draft-22 and how many vi64 fields follow each.
LF_NONE, LF_RELATIVE, LF_START, LF_START_END_GROUP, LF_RANGE, LF_NEXT_OBJECT = range(6)
_LF_FIELDS = {LF_NONE: 0, LF_RELATIVE: 1, LF_START: 2, LF_START_END_GROUP: 3, LF_RANGE: 4}
_LF_FIELDS[LF_NEXT_OBJECT] = 0


@dataclass(frozen=True)
class LocationFilter:
    """A draft-22 LOCATION_FILTER: a type, then the fields that type needs."""

    filter_type: int
    start_group: int = 0
    start_object: int = 0
    end_group_delta: int = 0
    end_object: int = 0

    def fields(self) -> tuple[int, ...]:
        """The vi64 fields written after the type."""
        all_fields = (self.start_group, self.start_object, self.end_group_delta, self.end_object)
        return all_fields[: _LF_FIELDS[self.filter_type]]

    def window(self, largest: Location | None) -> tuple[Location, Location | None]:
        """First and last (inclusive) Location passing the filter (main §Location Filters)."""
        t = self.filter_type
        if t == LF_RELATIVE:
            if largest is None:
                return Location(0, 0), None
            return Location(max(largest.group + 1 - self.start_group, 0), 0), None
        if t == LF_NEXT_OBJECT:
            if largest is None:
                return Location(0, 0), None
            return Location(largest.group, largest.object + 1), None
        if t == LF_NONE:
            return Location(0, 0), None
        start = Location(self.start_group, self.start_object)
        if t == LF_START:
            return start, None
        end_group = self.start_group + self.end_group_delta
        return start, Location(end_group, self.end_object if t == LF_RANGE else MAX_VI64)


class _TypedLocationFilterKind:
    """LOCATION_FILTER value in draft-22: Filter Type (vi64) and its fields, no Length."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        if value.filter_type not in _LF_FIELDS:
            raise EncodeError(f"unknown location filter type {value.filter_type}")
        return b"".join(encode_vi64(v) for v in (value.filter_type, *value.fields()))

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        ftype = r.vi()
        if ftype not in _LF_FIELDS:
            raise ProtocolViolation(f"unknown location filter type {ftype}")
        values = [r.vi() for _ in range(_LF_FIELDS[ftype])]
        flt = LocationFilter(ftype, *values)
        if flt.start_group + flt.end_group_delta > MAX_VI64:
            raise ProtocolViolation("location filter end group exceeds 2^64-1")
        return flt


@dataclass(frozen=True)
class RangeFilter:
    """A Range Filter (0x25-0x29): SetID, Property Type (0x28/0x29), inclusive ranges.

    The last range may be open (end None).
    """

    set_id: int
    ranges: tuple[tuple[int, int | None], ...]
    property_type: int | None = None


class _RangeFilterKind:
    """Length (vi64), SetID (8), [Property Type (vi64)], then delta-coded Start/End pairs."""

    def __init__(self, with_property: bool) -> None:
        self.with_property = with_property

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        if value is None:
            return b"\x00"  # Length 0 removes the filter (REQUEST_UPDATE)
        if not 0 <= value.set_id <= 255:
            raise EncodeError(f"SetID {value.set_id} is not 8 bits")
        body = [bytes((value.set_id,))]
        if self.with_property:
            body.append(encode_vi64(value.property_type or 0))
        previous_end = 0
        for i, (start, end) in enumerate(value.ranges):
            body.append(encode_vi64(start - previous_end))
            if end is None:
                if i != len(value.ranges) - 1:
                    raise EncodeError("only the last range may be open")
                break
            body.append(encode_vi64(end - start))
            previous_end = end
        raw = b"".join(body)
        return encode_vi64(len(raw)) + raw

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        inner = r.sub(r.vi())
        if not inner.remaining():
            return None
        set_id = inner.u8()
        ptype = inner.vi() if self.with_property else None
        ranges: list[tuple[int, int | None]] = []
        previous_end = 0
        while inner.remaining():
            start = previous_end + inner.vi()
            end = start + inner.vi() if inner.remaining() else None
            if start > MAX_VI64 or (end is not None and end > MAX_VI64):
                raise ProtocolViolation("range filter value exceeds 2^64-1")
            ranges.append((start, end))
            previous_end = end if end is not None else start
        return RangeFilter(set_id, tuple(ranges), ptype)


class _FillParametersKind:
    """FILL_PARAMETERS value: Length (vi64), then a nested Number of Parameters + Parameters."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        raw = PARAMS.encode(value, profile, "FILL_PARAMETERS")
        return encode_vi64(len(raw)) + raw

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        inner = r.sub(r.vi())
        params = PARAMS.decode(inner, profile, "FILL_PARAMETERS")
        if inner.remaining():
            raise KeyValueFormattingError("trailing bytes in FILL_PARAMETERS")
        return params


# --- FETCH and FETCH_OK: draft-18 values <-> the draft-20+ wire ----------------------------


def _fetch_to_wire(msg: m.Fetch) -> m.Fetch:
    """Carry a FETCH range [start, end) as a LOCATION_FILTER with an inclusive end."""
    if msg.fetch_type != 1:
        raise EncodeError("joining FETCH does not exist from draft-20; use FILL_PARAMETERS")
    params = dict(msg.params)
    start, end = msg.start, msg.end
    if end == OPEN_END:
        if start != Location(0, 0):
            params["subscription_filter"] = LocationFilter(LF_START, start.group, start.object)
    else:
        if end.group < start.group:
            raise EncodeError("FETCH end before start")
        delta = end.group - start.group
        if end.object == 0:  # the whole end group
            flt = LocationFilter(LF_START_END_GROUP, start.group, start.object, delta)
        else:
            flt = LocationFilter(LF_RANGE, start.group, start.object, delta, end.object - 1)
        params["subscription_filter"] = flt
    return dataclasses.replace(msg, params=params)


def _fetch_from_wire(msg: m.Fetch) -> m.Fetch:
    """Read a draft-20+ FETCH range back as [start, end) of a standalone FETCH."""
    params = dict(msg.params)
    flt = params.pop("subscription_filter", None)
    if flt is None or flt.filter_type == LF_NONE:
        return dataclasses.replace(msg, start=Location(0, 0), end=OPEN_END, params=params)
    if flt.filter_type in (LF_RELATIVE, LF_NEXT_OBJECT):
        # relative to Largest Object: only the responder's track state can resolve it
        return dataclasses.replace(msg, fetch_type=0, params={**params, "subscription_filter": flt})
    start = Location(flt.start_group, flt.start_object)
    end_group = flt.start_group + flt.end_group_delta
    if flt.filter_type == LF_START:
        end = OPEN_END
    elif flt.filter_type == LF_START_END_GROUP or flt.end_object >= END_OF_GROUP_OBJECT:
        end = Location(end_group, 0)  # the whole end group
    else:
        end = Location(end_group, flt.end_object + 1)
    return dataclasses.replace(msg, start=start, end=end, params=params)


def _fill_parameters(start: Location, end: Location) -> dict[str, Any]:
    """FILL_PARAMETERS asking for [start, end): its LOCATION_FILTER, read as a FETCH's."""
    flt = _fetch_to_wire(m.Fetch(start=start, end=end)).params.get("subscription_filter")
    return {} if flt is None else {"subscription_filter": flt}


#: Inclusive End Object standing for "the end of the group". Not 2^64-1: moq-rs reads
#: vi64 only up to 2^62-1 (the QUIC varint range) and closes the session beyond it.
END_OF_GROUP_OBJECT = (1 << 62) - 1


def _fetch_ok_to_wire(msg: m.FetchOk) -> m.FetchOk:
    """FETCH_OK End Location: draft-18's "last + 1, or Object 0 = whole group" -> inclusive."""
    end = msg.end_location
    if end.object == 0:
        inclusive = Location(end.group, END_OF_GROUP_OBJECT)
    else:
        inclusive = Location(end.group, end.object - 1)
    return dataclasses.replace(msg, end_location=inclusive)


def _fetch_ok_from_wire(msg: m.FetchOk) -> m.FetchOk:
    """The inverse of `_fetch_ok_to_wire`."""
    end = msg.end_location
    if end.object >= END_OF_GROUP_OBJECT:
        exclusive = Location(end.group, 0)
    else:
        exclusive = Location(end.group, end.object + 1)
    return dataclasses.replace(msg, end_location=exclusive)


# --- the table -------------------------------------------------------------------------------

_D18 = {s.name: s for s in DRAFT_18.messages}


def _same(name: str, new_name: str | None = None) -> MessageSpec:
    spec = _D18[name]
    return spec if new_name is None else dataclasses.replace(spec, name=new_name)


_D22_MESSAGES = (
    _same("SETUP"),
    MessageSpec(0x10, m.Goaway, (Field("new_session_uri", URI), Field("timeout", VI)), "GOAWAY"),
    _same("SUBSCRIBE"),
    _same("SUBSCRIBE_OK"),
    MessageSpec(0x22, m.PublishStateNotify, (Field("params", PARAMS),), "PUBLISH_STATE_NOTIFY"),
    _same("PUBLISH"),
    _same("PUBLISH_DONE"),
    MessageSpec(
        0x16,
        m.Fetch,
        (
            Field("request_id", VI),
            Field("track_namespace", NAMESPACE),
            Field("track_name", BYTES),
            Field("params", PARAMS),
        ),
        "FETCH",
        to_wire=_fetch_to_wire,
        from_wire=_fetch_from_wire,
    ),
    dataclasses.replace(_D18["FETCH_OK"], to_wire=_fetch_ok_to_wire, from_wire=_fetch_ok_from_wire),
    _same("TRACK_STATUS"),
    _same("PUBLISH_NAMESPACE"),
    _same("SUBSCRIBE_NAMESPACE"),
    _same("SUBSCRIBE_TRACKS"),
    _same("NAMESPACE"),
    _same("NAMESPACE_DONE"),
    _same("PUBLISH_BLOCKED", "PUBLISH_SKIPPED"),
    _same("REQUEST_UPDATE"),
    _same("REQUEST_OK"),
    _same("REQUEST_ERROR"),
)


def _scope(*names: str) -> frozenset[str]:
    return frozenset(names)


_SUB = ("SUBSCRIBE", "SUBSCRIBE_TRACKS", "REQUEST_UPDATE")
_RANGE_SCOPE = _scope(*_SUB, "FETCH", "FILL_PARAMETERS")
_D22_PARAMS = (
    ParamSpec("object_delivery_timeout", 0x02, "vi", _scope(*_SUB, "PUBLISH")),
    ParamSpec(
        "authorization_token",
        0x03,
        "bytes",
        _scope(
            "PUBLISH",
            "SUBSCRIBE",
            "REQUEST_UPDATE",
            "SUBSCRIBE_NAMESPACE",
            "SUBSCRIBE_TRACKS",
            "PUBLISH_NAMESPACE",
            "TRACK_STATUS",
            "FETCH",
        ),
    ),
    ParamSpec("rendezvous_timeout", 0x04, "vi", _scope("SUBSCRIBE", "SUBSCRIBE_TRACKS")),
    ParamSpec("subgroup_delivery_timeout", 0x06, "vi", _scope(*_SUB, "PUBLISH")),
    # PUBLISH_OK (a REQUEST_OK) carries only EXPIRES from draft-20 on
    ParamSpec(
        "expires", 0x08, "vi", _scope("SUBSCRIBE_OK", "PUBLISH", "REQUEST_OK", "REQUEST_UPDATE")
    ),
    ParamSpec(
        "largest_object",
        0x09,
        "loc",
        _scope("SUBSCRIBE_OK", "PUBLISH", "REQUEST_OK", "PUBLISH_STATE_NOTIFY"),
    ),
    ParamSpec("fill_timeout", 0x0A, "vi", _scope("FETCH", "FILL_PARAMETERS")),
    ParamSpec(
        "forward",
        0x10,
        "u8",
        _scope(*_SUB, "PUBLISH", "PUBLISH_STATE_NOTIFY"),
        frozenset({0, 1}),
    ),
    ParamSpec(
        "subscriber_priority", 0x20, "u8", _scope(*_SUB, "FETCH", "PUBLISH", "FILL_PARAMETERS")
    ),
    # 0x21 LOCATION_FILTER keeps the key of draft-18's SUBSCRIPTION_FILTER, so the session
    # reads "the filter" the same way in every draft.
    ParamSpec(
        "subscription_filter",
        0x21,
        _TypedLocationFilterKind(),
        _scope(*_SUB, "FETCH", "PUBLISH", "PUBLISH_STATE_NOTIFY", "FILL_PARAMETERS"),
    ),
    ParamSpec(
        "group_order",
        0x22,
        "u8",
        _scope("SUBSCRIBE", "SUBSCRIBE_TRACKS", "FETCH", "PUBLISH", "FILL_PARAMETERS"),
        frozenset({1, 2}),
    ),
    ParamSpec(
        "fill_parameters", 0x23, _FillParametersKind(), _scope("SUBSCRIBE", "REQUEST_UPDATE")
    ),
    ParamSpec("subgroup_filter", 0x25, _RangeFilterKind(False), _RANGE_SCOPE, repeatable=True),
    ParamSpec("objectid_filter", 0x26, _RangeFilterKind(False), _RANGE_SCOPE, repeatable=True),
    ParamSpec("priority_filter", 0x27, _RangeFilterKind(False), _RANGE_SCOPE, repeatable=True),
    ParamSpec(
        "object_property_filter", 0x28, _RangeFilterKind(True), _RANGE_SCOPE, repeatable=True
    ),
    ParamSpec(
        "track_property_filter",
        0x29,
        _RangeFilterKind(True),
        _scope("SUBSCRIBE_TRACKS", "REQUEST_UPDATE"),
        repeatable=True,
    ),
    ParamSpec("new_group_request", 0x32, "vi", _scope(*_SUB)),
    ParamSpec("track_namespace_prefix", 0x34, "ns", _scope("REQUEST_UPDATE")),
    ParamSpec(
        "include_properties",
        0x35,
        "u8",
        _scope("SUBSCRIBE", "TRACK_STATUS", "FETCH", "SUBSCRIBE_TRACKS"),
        frozenset({0, 1}),
    ),
)

_D22_REQUEST_ERRORS = {
    k: v
    for k, v in DRAFT_18.request_errors.items()
    if k not in ("DUPLICATE_SUBSCRIPTION", "INVALID_JOINING_REQUEST_ID")
}
_D22_REQUEST_ERRORS.update({"CONFLICTING_FILTERS": 0x35, "INVALID_FILTER": 0x36})

DRAFT_22 = dataclasses.replace(
    DRAFT_18,
    alpn="moqt-22",
    messages=_D22_MESSAGES,
    params=_D22_PARAMS,
    setup_options={
        **DRAFT_18.setup_options,
        "MAX_FILTER_RANGES": 0x06,
        "MAX_REQUEST_UPDATES": 0x08,
    },
    session_errors={
        **DRAFT_18.session_errors,
        "AUTH_TOKEN_CACHE_OVERFLOW": 0x13,
        "DUPLICATE_AUTH_TOKEN_ALIAS": 0x14,
        "UNKNOWN_AUTH_TOKEN_ALIAS": 0x17,
        "EXPIRED_AUTH_TOKEN": 0x18,
        "INVALID_AUTHORITY": 0x19,
        "MALFORMED_AUTHORITY": 0x1A,
        "TOO_MANY_REQUEST_UPDATES": 0x1B,
    },
    request_errors=_D22_REQUEST_ERRORS,
    publish_done={k: v for k, v in DRAFT_18.publish_done.items() if k != "SUBSCRIPTION_ENDED"},
    fill_parameters=_fill_parameters,
    fin_cancels_request=False,
    data=dataclasses.replace(DRAFT_18.data, fetch_end_timed_out=0x20C),
)

PROFILES[DRAFT_22.alpn] = DRAFT_22
