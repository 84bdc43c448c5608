"""Data-driven MoQT wire codec (draft-ietf-moq-transport-18 §1.4, §9, §10).

Each control message is a frozen dataclass in `moqmls.moqt.messages`; its wire layout is
a tuple of `Field`s held by the draft profile (`moqmls.moqt.profile`). `encode_message`
and `decode_message` walk that one layout, so encoding and decoding never drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from moqmls.moqt.errors import (
    EncodeError,
    KeyValueFormattingError,
    ProtocolViolation,
    TrailingDataError,
    TruncatedError,
)
from moqmls.moqt.varint import MAX_VI64, decode_vi64, encode_vi64

if TYPE_CHECKING:
    from moqmls.moqt.profile import Profile

Namespace: TypeAlias = tuple[bytes, ...]
PropertyValue: TypeAlias = int | bytes
Properties: TypeAlias = tuple[tuple[int, PropertyValue], ...]

MAX_NAMESPACE_FIELDS = 32
MAX_FULL_NAME = 4096
MAX_KVP_LENGTH = 0xFFFF
MAX_REASON = 1024
MAX_URI = 8192
MAX_CONTROL_PAYLOAD = 0xFFFF


@dataclass(frozen=True, order=True)
class Location:
    """A Location {Group, Object} (§1.4.2); ordered as the draft orders Locations."""

    group: int
    object: int


#: A FETCH End Location ("last + 1", §9.14.1) past any object: "up to the Largest Object".
OPEN_END = Location(MAX_VI64, 0)


class LocationWindow(Protocol):
    """A filter value that resolves to the Locations it passes (every draft's filter)."""

    def window(self, largest: Location | None) -> tuple[Location, Location | None]: ...


@dataclass(frozen=True)
class SubscriptionFilter:
    """A Subscription Filter (§5.1.2): type, optional start and end group delta."""

    filter_type: int
    start: Location | None = None
    end_group_delta: int | None = None

    def window(self, largest: Location | None) -> tuple[Location, Location | None]:
        """First and last (inclusive) Location passing the filter (§5.1.2)."""
        if self.filter_type in (3, 4) and self.start is not None:
            if self.filter_type == 3:
                return self.start, None
            return self.start, Location(self.start.group + (self.end_group_delta or 0), MAX_VI64)
        if largest is None:
            return Location(0, 0), None
        if self.filter_type == 1:
            return Location(largest.group + 1, 0), None
        return Location(largest.group, largest.object + 1), None


class Reader:
    """A cursor over bytes that raises `TruncatedError` rather than IndexError."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int = -1) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end < 0 else end

    def remaining(self) -> int:
        return self.end - self.pos

    def vi(self) -> int:
        value, pos = decode_vi64(self.data, self.pos)
        if pos > self.end:
            raise TruncatedError("vi64 truncated")
        self.pos = pos
        return value

    def u8(self) -> int:
        if self.pos >= self.end:
            raise TruncatedError("uint8 truncated")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        if self.pos + 2 > self.end:
            raise TruncatedError("uint16 truncated")
        value = (self.data[self.pos] << 8) | self.data[self.pos + 1]
        self.pos += 2
        return value

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise TruncatedError(f"{n} bytes announced, {self.end - self.pos} left")
        value = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return value

    def sub(self, n: int) -> Reader:
        """A reader over the next `n` bytes, consuming them from this one."""
        if n > self.end - self.pos:
            raise TruncatedError(f"{n} bytes announced, {self.end - self.pos} left")
        inner = Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return inner


# --- structures shared by messages and data streams (§1.4, §2.4.1) ---------------------


def encode_namespace(ns: Namespace) -> bytes:
    """Track Namespace (§2.4.1): field count then length-prefixed fields."""
    if len(ns) > MAX_NAMESPACE_FIELDS:
        raise EncodeError(f"namespace has {len(ns)} fields (max {MAX_NAMESPACE_FIELDS})")
    out = [encode_vi64(len(ns))]
    for part in ns:
        if not part:
            raise EncodeError("namespace fields must not be empty")
        out += [encode_vi64(len(part)), part]
    return b"".join(out)


def decode_namespace(r: Reader) -> Namespace:
    """Track Namespace (§2.4.1), enforcing the 32-field and 4096-byte limits."""
    count = r.vi()
    if count > MAX_NAMESPACE_FIELDS:
        raise ProtocolViolation(f"namespace has {count} fields (max {MAX_NAMESPACE_FIELDS})")
    parts = []
    total = 0
    for _ in range(count):
        length = r.vi()
        if length == 0:
            raise ProtocolViolation("empty namespace field")
        total += length
        if total > MAX_FULL_NAME:
            raise ProtocolViolation("namespace longer than 4096 bytes")
        parts.append(r.take(length))
    return tuple(parts)


def encode_properties(props: Properties) -> bytes:
    """Key-Value-Pairs with delta-coded types (§1.4.3), sorted by type."""
    out = []
    previous = 0
    for key, value in sorted(props, key=lambda kv: kv[0]):
        out.append(encode_vi64(key - previous))
        previous = key
        if key % 2:
            if not isinstance(value, bytes) or len(value) > MAX_KVP_LENGTH:
                raise EncodeError(f"property {key:#x} (odd) needs bytes of at most 65535")
            out += [encode_vi64(len(value)), value]
        else:
            if not isinstance(value, int):
                raise EncodeError(f"property {key:#x} (even) needs an integer")
            out.append(encode_vi64(value))
    return b"".join(out)


def decode_properties(r: Reader) -> Properties:
    """Key-Value-Pairs (§1.4.3) filling the whole reader."""
    props: list[tuple[int, PropertyValue]] = []
    key = 0
    while r.remaining():
        key += r.vi()
        if key > MAX_VI64:
            raise ProtocolViolation("Key-Value-Pair type exceeds 2^64-1")
        if key % 2:
            length = r.vi()
            if length > MAX_KVP_LENGTH:
                raise ProtocolViolation("Key-Value-Pair longer than 65535 bytes")
            try:
                props.append((key, r.take(length)))
            except TruncatedError as exc:
                raise KeyValueFormattingError(str(exc)) from exc
        else:
            try:
                props.append((key, r.vi()))
            except TruncatedError as exc:
                raise KeyValueFormattingError(str(exc)) from exc
    return tuple(props)


def as_properties(
    value: Mapping[int, PropertyValue] | Sequence[tuple[int, PropertyValue]],
) -> Properties:
    """Normalise a mapping or pair sequence to sorted `Properties`."""
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted(((int(k), v) for k, v in items), key=lambda kv: kv[0]))


# --- field kinds -------------------------------------------------------------------------


class Kind(Protocol):
    """How one field is written and read."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes: ...

    def decode(self, r: Reader, profile: Profile, message: str) -> Any: ...


class _Vi:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        return encode_vi64(int(value))

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return r.vi()


class _U8:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        if not 0 <= value <= 255:
            raise EncodeError(f"uint8 out of range: {value}")
        return bytes((value,))

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return r.u8()


class _Bytes:
    def __init__(self, limit: int = MAX_FULL_NAME) -> None:
        self.limit = limit

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        if len(value) > self.limit:
            raise EncodeError(f"field longer than {self.limit} bytes")
        return encode_vi64(len(value)) + bytes(value)

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        length = r.vi()
        if length > self.limit:
            raise ProtocolViolation(f"field of {length} bytes exceeds {self.limit}")
        return r.take(length)


class _Reason:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        raw = str(value).encode()[:MAX_REASON]
        return encode_vi64(len(raw)) + raw

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        length = r.vi()
        if length > MAX_REASON:
            raise ProtocolViolation("reason phrase longer than 1024 bytes")
        return r.take(length).decode("utf-8", errors="replace")


class _Namespace:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        return encode_namespace(value)

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return decode_namespace(r)


class _Location:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        return encode_vi64(value.group) + encode_vi64(value.object)

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return Location(r.vi(), r.vi())


class _Rest:
    """Track Properties: Key-Value-Pairs up to the end of the message (§2.5)."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        return encode_properties(value)

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return decode_properties(r)


class _Params:
    """Message Parameters (§9.2): a count, then delta-coded types with per-type values."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        items = []
        for name, v in value.items():
            spec = profile.param_by_name.get(name)
            if spec is None:
                raise EncodeError(f"parameter {name} does not exist in {profile.alpn}")
            if spec.scope and message not in spec.scope:
                continue  # this draft does not carry it in this message (bridged drafts differ)
            items += [(spec, one) for one in (v if spec.repeatable else (v,))]
        items.sort(key=lambda sv: sv[0].code)  # stable: repeated values keep their order
        out = [encode_vi64(len(items))]
        previous = 0
        for spec, v in items:
            out.append(encode_vi64(spec.code - previous))
            previous = spec.code
            out.append(param_kind(spec.kind).encode(v, profile, message))
        return b"".join(out)

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        count = r.vi()
        params: dict[str, Any] = {}
        code = 0
        for _ in range(count):
            code += r.vi()
            spec = profile.param_by_code.get(code)
            if spec is None:
                raise ProtocolViolation(f"unknown message parameter {code:#x}")
            if spec.scope and message not in spec.scope:
                raise ProtocolViolation(f"parameter {spec.name} not allowed in {message}")
            if spec.name in params and not spec.repeatable:
                raise ProtocolViolation(f"duplicate parameter {spec.name}")
            try:
                value = param_kind(spec.kind).decode(r, profile, message)
            except TruncatedError as exc:
                raise KeyValueFormattingError(f"parameter {spec.name}: {exc}") from exc
            if spec.allowed is not None and value not in spec.allowed:
                raise ProtocolViolation(f"parameter {spec.name} has invalid value {value}")
            params[spec.name] = (*params.get(spec.name, ()), value) if spec.repeatable else value
        return params


class _Filter:
    """Length-prefixed Subscription Filter (§5.1.2, §9.2.10)."""

    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        body = encode_vi64(value.filter_type)
        if value.filter_type in (3, 4):
            assert value.start is not None
            body += encode_vi64(value.start.group) + encode_vi64(value.start.object)
        if value.filter_type == 4:
            body += encode_vi64(value.end_group_delta or 0)
        return encode_vi64(len(body)) + body

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        inner = r.sub(r.vi())
        ftype = inner.vi()
        if ftype not in (1, 2, 3, 4):
            raise ProtocolViolation(f"unknown subscription filter type {ftype}")
        start = Location(inner.vi(), inner.vi()) if ftype in (3, 4) else None
        delta = inner.vi() if ftype == 4 else None
        if start is not None and delta is not None and start.group + delta > MAX_VI64:
            raise ProtocolViolation("filter end group exceeds 2^64-1")
        if inner.remaining():
            raise KeyValueFormattingError("trailing bytes in subscription filter")
        return SubscriptionFilter(ftype, start, delta)


VI = _Vi()
U8 = _U8()
BYTES = _Bytes()
URI = _Bytes(MAX_URI)
REASON = _Reason()
NAMESPACE = _Namespace()
LOCATION = _Location()
PARAMS = _Params()
TRACK_PROPERTIES = _Rest()

PARAM_KINDS: dict[str, Kind] = {
    "u8": U8,
    "vi": VI,
    "loc": LOCATION,
    "bytes": _Bytes(MAX_KVP_LENGTH),
    "ns": NAMESPACE,
    "filter": _Filter(),
}


def param_kind(kind: str | Kind) -> Kind:
    """The codec of a parameter kind: a name in `PARAM_KINDS` or a draft's own `Kind`."""
    return PARAM_KINDS[kind] if isinstance(kind, str) else kind


@dataclass(frozen=True)
class Field:
    """One field of a message layout; `when` makes it conditional on earlier fields."""

    name: str
    kind: Kind
    when: Callable[[dict[str, Any]], bool] | None = None
    optional_tail: bool = False


@dataclass(frozen=True)
class MessageSpec:
    """A message's type code, dataclass and wire layout in one profile."""

    code: int
    cls: type[Any]
    layout: tuple[Field, ...]
    name: str
    #: Maps the version-neutral value to the fields this draft puts on the wire (and back),
    #: e.g. a FETCH range carried as a LOCATION_FILTER parameter from draft-20 on.
    to_wire: Callable[[Any], Any] | None = None
    from_wire: Callable[[Any], Any] | None = None


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    """A message dataclass's field names, looked up once per class (a relay encodes a lot)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def encode_payload(spec: MessageSpec, message: Any, profile: Profile) -> bytes:
    """The payload of `message` following its layout."""
    if spec.to_wire is not None:
        message = spec.to_wire(message)
    values = {name: getattr(message, name) for name in _field_names(type(message))}
    out = []
    for f in spec.layout:
        value = values[f.name]
        if (f.when is not None and not f.when(values)) or (f.optional_tail and value is None):
            continue
        out.append(f.kind.encode(value, profile, spec.name))
    return b"".join(out)


def decode_payload(spec: MessageSpec, r: Reader, profile: Profile) -> Any:
    """Decode a whole payload with its layout; trailing bytes are an error."""
    values: dict[str, Any] = {}
    for f in spec.layout:
        if f.when is not None and not f.when(values):
            continue
        if f.optional_tail and not r.remaining():
            continue
        values[f.name] = f.kind.decode(r, profile, spec.name)
    if r.remaining():
        raise TrailingDataError(f"{r.remaining()} trailing bytes in {spec.name}")
    message = spec.cls(**values)
    return message if spec.from_wire is None else spec.from_wire(message)


def encode_message(message: Any, profile: Profile) -> bytes:
    """A framed control message: Type (vi64), Length (16), Payload (§9)."""
    spec = profile.spec_for(message)
    payload = encode_payload(spec, message, profile)
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise EncodeError(f"{spec.name} payload of {len(payload)} bytes exceeds 65535")
    return encode_vi64(spec.code) + len(payload).to_bytes(2, "big") + payload


def split_message(
    data: bytes | bytearray | memoryview, pos: int = 0
) -> tuple[int, int, int] | None:
    """Find one complete framed message at `pos`: (type, payload start, payload end).

    Returns None when more bytes are needed.
    """
    try:
        mtype, p = decode_vi64(data, pos)
    except TruncatedError:
        return None
    if p + 2 > len(data):
        return None
    length = (data[p] << 8) | data[p + 1]
    if p + 2 + length > len(data):
        return None
    return mtype, p + 2, p + 2 + length


def decode_message(
    mtype: int, data: bytes | bytearray | memoryview, start: int, end: int, profile: Profile
) -> Any:
    """Decode the payload of a message of type `mtype` found by `split_message`."""
    spec = profile.spec_by_code.get(mtype)
    if spec is None:
        raise ProtocolViolation(f"unknown message type {mtype:#x}")
    return decode_payload(spec, Reader(data, start, end), profile)


def decode_one(data: bytes, profile: Profile) -> Any:
    """Decode exactly one framed control message from `data` (tests and tools)."""
    found = split_message(data)
    if found is None:
        raise TruncatedError("incomplete control message")
    mtype, start, end = found
    if end != len(data):
        raise TrailingDataError("bytes after the control message")
    return decode_message(mtype, data, start, end, profile)
