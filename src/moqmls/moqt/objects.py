"""Data streams: SUBGROUP_HEADER and FETCH_HEADER streams and their objects
(draft-ietf-moq-transport-18 §10.4).

`DataStreamParser` is fed the bytes of one unidirectional stream as they arrive and
returns the header and each complete object; the `encode_*` functions write them.
"""

from __future__ import annotations

from dataclasses import dataclass

from moqmls.moqt.codec import (
    Properties,
    Reader,
    decode_properties,
    encode_properties,
)
from moqmls.moqt.errors import ProtocolViolation, TruncatedError
from moqmls.moqt.profile import DataStreamBits, Profile
from moqmls.moqt.varint import MAX_VI64, decode_vi64, encode_vi64


@dataclass(frozen=True)
class SubgroupHeader:
    """SUBGROUP_HEADER (§10.4.2)."""

    track_alias: int
    group_id: int
    subgroup_id: int | None  # None: the first object's ID (mode 0b01)
    priority: int | None  # None: the subscription's default priority
    has_properties: bool = True
    end_of_group: bool = False
    first_object: bool = True


@dataclass(frozen=True)
class FetchHeader:
    """FETCH_HEADER (§10.4.4)."""

    request_id: int


@dataclass(frozen=True)
class PaddingHeader:
    """A padding stream (§10.5.1); its data is discarded."""


@dataclass(frozen=True)
class ObjectData:
    """One object read from (or written to) a data stream (§10.2.1)."""

    group_id: int
    object_id: int
    payload: bytes = b""
    properties: Properties = ()
    subgroup_id: int | None = 0
    priority: int | None = None
    status: int = 0


@dataclass(frozen=True)
class EndOfRange:
    """A FETCH End of Range marker (§10.4.4.2): objects up to here do not exist / unknown.

    `timed_out` is the End of Timed-Out Range of later drafts (0x20C, -20): the publisher
    gave up waiting for them.
    """

    group_id: int
    object_id: int
    unknown: bool
    timed_out: bool = False


StreamItem = SubgroupHeader | FetchHeader | PaddingHeader | ObjectData | EndOfRange


def subgroup_type(h: SubgroupHeader, bits: DataStreamBits) -> int:
    """The SUBGROUP_HEADER type byte for `h` (§10.4.2)."""
    t = bits.subgroup_base
    if h.has_properties:
        t |= bits.subgroup_properties
    if h.subgroup_id is None:
        t |= 0b01 << 1
    elif h.subgroup_id != 0:
        t |= 0b10 << 1
    if h.end_of_group:
        t |= bits.subgroup_end_of_group
    if h.priority is None:
        t |= bits.subgroup_default_priority
    if h.first_object:
        t |= bits.subgroup_first_object
    return t


def encode_subgroup_header(h: SubgroupHeader, profile: Profile) -> bytes:
    """A SUBGROUP_HEADER (§10.4.2)."""
    t = subgroup_type(h, profile.data)
    out = encode_vi64(t) + encode_vi64(h.track_alias) + encode_vi64(h.group_id)
    if (t & profile.data.subgroup_id_mode_mask) >> 1 == 0b10:
        assert h.subgroup_id is not None
        out += encode_vi64(h.subgroup_id)
    if h.priority is not None:
        out += bytes((h.priority,))
    return out


def encode_subgroup_object(
    header: SubgroupHeader,
    previous_id: int | None,
    object_id: int,
    payload: bytes,
    properties: Properties = (),
    status: int = 0,
) -> bytes:
    """The object fields on a subgroup stream (§10.4.2); IDs must increase."""
    if previous_id is None:
        delta = object_id
    elif object_id > previous_id:
        delta = object_id - previous_id - 1
    else:
        raise ProtocolViolation("object IDs on a subgroup stream must increase")
    out = [encode_vi64(delta)]
    if header.has_properties:
        props = encode_properties(properties) if status == 0 else b""
        out += [encode_vi64(len(props)), props]
    elif properties:
        raise ProtocolViolation("properties on a subgroup opened without PROPERTIES")
    out.append(encode_vi64(len(payload)))
    if payload:
        if status != 0:
            raise ProtocolViolation("objects with a non-normal status carry no payload")
        out.append(payload)
    else:
        out.append(encode_vi64(status))
    return b"".join(out)


def encode_fetch_header(request_id: int, profile: Profile) -> bytes:
    """A FETCH_HEADER (§10.4.4)."""
    return encode_vi64(profile.data.fetch_header) + encode_vi64(request_id)


def encode_fetch_object(previous: ObjectData | None, obj: ObjectData) -> bytes:
    """One object on a FETCH stream in ascending group order (§10.4.4.1).

    Always writes Subgroup ID, Priority and Properties explicitly so no field depends on
    an End of Range marker.
    """
    flags = 0x03 | 0x10 | 0x20
    fields = []
    if previous is None or obj.group_id != previous.group_id:
        flags |= 0x08 | 0x04
        gdelta = obj.group_id if previous is None else obj.group_id - previous.group_id - 1
        if gdelta < 0:
            raise ProtocolViolation("fetch objects must be in ascending group order")
        fields += [
            encode_vi64(gdelta),
            encode_vi64(obj.subgroup_id or 0),
            encode_vi64(obj.object_id),
        ]
    elif obj.object_id == previous.object_id + 1:
        fields.append(encode_vi64(obj.subgroup_id or 0))
    elif obj.object_id > previous.object_id:
        flags |= 0x04
        fields += [
            encode_vi64(obj.subgroup_id or 0),
            encode_vi64(obj.object_id - previous.object_id),
        ]
    else:
        raise ProtocolViolation("fetch objects must be in ascending object order")
    props = encode_properties(obj.properties)
    fields += [
        bytes((obj.priority if obj.priority is not None else 128,)),
        encode_vi64(len(props)),
        props,
        encode_vi64(len(obj.payload)),
        obj.payload,
    ]
    return encode_vi64(flags) + b"".join(fields)


class DataStreamParser:
    """Incremental parser of one unidirectional data stream (§10.4)."""

    def __init__(self, profile: Profile, max_buffer: int = 1 << 22) -> None:
        self.bits = profile.data
        self.setup_type = profile.setup_type
        self.buffer = bytearray()
        self.header: StreamItem | None = None
        self.previous_id: int | None = None
        self.previous: ObjectData | None = None
        self.previous_real: ObjectData | None = None
        self.first_subgroup: int | None = None
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> list[StreamItem]:
        """Add bytes; return every item now complete."""
        if isinstance(self.header, PaddingHeader):
            return []
        self.buffer += data
        if len(self.buffer) > self.max_buffer:
            raise ProtocolViolation("data stream buffer limit exceeded")
        items: list[StreamItem] = []
        pos = 0
        while pos < len(self.buffer):
            r = Reader(self.buffer, pos)
            try:
                item = self._next(r)
            except TruncatedError:
                break
            pos = r.pos
            items.append(item)
            if isinstance(item, PaddingHeader):
                pos = len(self.buffer)
                break
        del self.buffer[:pos]
        return items

    def finish(self) -> None:
        """The stream ended (FIN): a partial object is a protocol violation (§10.4)."""
        if self.buffer and not isinstance(self.header, PaddingHeader):
            raise ProtocolViolation("data stream ended inside an object")

    def _next(self, r: Reader) -> StreamItem:
        if self.header is None:
            header = self._header(r)
            self.header = header
            return header
        if isinstance(self.header, SubgroupHeader):
            return self._subgroup_object(r, self.header)
        return self._fetch_object(r)

    def _header(self, r: Reader) -> StreamItem:
        b = self.bits
        stype = r.vi()
        if stype == b.fetch_header:
            return FetchHeader(r.vi())
        if stype == b.padding_stream:
            return PaddingHeader()
        if stype > 0x7F or stype & b.subgroup_valid_mask != b.subgroup_base:
            raise ProtocolViolation(f"unknown data stream type {stype:#x}")
        mode = (stype & b.subgroup_id_mode_mask) >> 1
        if mode == 0b11:
            raise ProtocolViolation(f"reserved subgroup ID mode in type {stype:#x}")
        alias = r.vi()
        group = r.vi()
        subgroup: int | None = 0 if mode == 0 else None
        if mode == 0b10:
            subgroup = r.vi()
        priority = None if stype & b.subgroup_default_priority else r.u8()
        return SubgroupHeader(
            alias,
            group,
            subgroup,
            priority,
            bool(stype & b.subgroup_properties),
            bool(stype & b.subgroup_end_of_group),
            bool(stype & b.subgroup_first_object),
        )

    def _subgroup_object(self, r: Reader, h: SubgroupHeader) -> ObjectData:
        delta = r.vi()
        object_id = delta if self.previous_id is None else self.previous_id + delta + 1
        if object_id > MAX_VI64:
            raise ProtocolViolation("object ID exceeds 2^64-1")
        props: Properties = ()
        if h.has_properties:
            props = decode_properties(r.sub(r.vi()))
        length = r.vi()
        status = 0
        payload = b""
        if length == 0:
            status = r.vi()
            b = self.bits
            if status not in (b.status_normal, b.status_end_of_group, b.status_end_of_track):
                raise ProtocolViolation(f"invalid object status {status:#x}")
            if status != 0 and props:
                raise ProtocolViolation("properties on an object with non-normal status")
        else:
            payload = r.take(length)
        self.previous_id = object_id
        subgroup = h.subgroup_id
        if subgroup is None:
            if self.first_subgroup is None:
                self.first_subgroup = object_id
            subgroup = self.first_subgroup
        return ObjectData(h.group_id, object_id, payload, props, subgroup, h.priority, status)

    def _fetch_object(self, r: Reader) -> ObjectData | EndOfRange:
        flags = r.vi()
        prev = self.previous
        b = self.bits
        if flags in (b.fetch_end_nonexistent, b.fetch_end_unknown, b.fetch_end_timed_out):
            marker = EndOfRange(
                r.vi(), r.vi(), flags == b.fetch_end_unknown, flags == b.fetch_end_timed_out
            )
            self.previous = ObjectData(marker.group_id, marker.object_id)
            return marker
        if flags >= 0x80:
            raise ProtocolViolation(f"invalid fetch serialization flags {flags:#x}")
        if prev is None and (flags & 0x0C) != 0x0C:
            raise ProtocolViolation("first fetch object must carry group and object IDs")
        if flags & 0x08:
            gdelta = r.vi()
            group = gdelta if prev is None else prev.group_id + gdelta + 1
        else:
            assert prev is not None
            group = prev.group_id
        subgroup: int | None
        real = self.previous_real
        mode = flags & 0x03
        if flags & 0x40:
            subgroup = None
        elif mode == 0:
            subgroup = 0
        elif mode == 3:
            subgroup = r.vi()
        else:
            if real is None or real.subgroup_id is None:
                raise ProtocolViolation("fetch object refers to a missing prior subgroup")
            subgroup = real.subgroup_id + (mode - 1)
        if flags & 0x04:
            odelta = r.vi()
            object_id = odelta if (prev is None or flags & 0x08) else prev.object_id + odelta
        else:
            assert prev is not None
            object_id = prev.object_id + 1
        if flags & 0x10:
            priority: int | None = r.u8()
        else:
            if real is None:
                raise ProtocolViolation("fetch object refers to a missing prior priority")
            priority = real.priority
        props = decode_properties(r.sub(r.vi())) if flags & 0x20 else ()
        payload = r.take(r.vi())
        if group > MAX_VI64 or object_id > MAX_VI64:
            raise ProtocolViolation("fetch object location exceeds 2^64-1")
        obj = ObjectData(group, object_id, payload, props, subgroup, priority, 0)
        self.previous = obj
        self.previous_real = obj
        return obj


def peek_stream_type(data: bytes) -> int | None:
    """The stream type vi64 at the start of `data`, or None when incomplete."""
    try:
        return decode_vi64(data, 0)[0]
    except TruncatedError:
        return None
