"""Wire encodings of draft-ietf-moq-secure-objects §3.3 and §4.

* vi64: MoQT's variable-length integer (draft-ietf-moq-transport-18 §1.4.1), whose leading
  1-bits give its length (1-9 bytes, any 64-bit value). Encoding is minimal; decoding accepts
  any valid length, as MoQT allows.
* Property: 16-bit type, vi64 length, value. The draft reads "the property type (16 bits)"
  (§3.3.3) and its test vectors encode Key ID 7 as ``00 02 01 07``; §4.3 says the length of
  properties other than Padding is a MoQT varint.
* Padding property (§4.3): 16-bit type 0x32, a 32-bit length, that many zero bytes. §4.3's
  receiver steps speak of a "1-byte type", which would make the property list ambiguous; we
  keep the 16-bit type every other property uses.
* Encrypted Properties List (§4.2): itself a property of type 0xA whose value is a sequence
  of properties, the Padding property (if any) last.
* Plaintext (§3.3.2): vi64 payload length, payload, then the Encrypted Properties List if any.

Each layout is declared once as a tuple of fields; `encode_layout` and `decode_layout` both
read that declaration. Decoders take ``(data, pos, end)`` and return ``(value, new_pos)`` so the
per-object path allocates no reader objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from moqmls.secure_objects.errors import (
    BadPropertiesError,
    DecodeError,
    IdOutOfRangeError,
    TruncatedError,
)

MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1
MAX_U16 = (1 << 16) - 1

#: The one-byte vi64s, 0-127.
SHORT_VI64 = tuple(bytes((i,)) for i in range(0x80))

KEY_ID_PROPERTY = 0x02
ENCRYPTED_PROPERTIES_LIST = 0x0A
PADDING_PROPERTY = 0x32


def encode_vi64(value: int) -> bytes:
    """A MoQT variable-length integer, shortest form (moq-transport-18 §1.4.1)."""
    if 0 <= value < 0x80:
        return SHORT_VI64[value]
    if 0x80 <= value < 0x4000:  # payload lengths of typical media objects: one branch
        return (0x8000 | value).to_bytes(2, "big")
    if value < 0 or value > MAX_U64:
        raise IdOutOfRangeError(f"vi64 cannot encode {value}")
    for n in range(3, 9):
        if value < 1 << (7 * n):
            prefix = ((1 << (n - 1)) - 1) << (7 * n + 1)  # n-1 leading 1-bits, then a 0
            return (prefix | value).to_bytes(n, "big")
    return b"\xff" + value.to_bytes(8, "big")


def decode_vi64(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a vi64 at ``pos``; any of its valid lengths is accepted."""
    if pos >= end:
        raise TruncatedError("vi64 expected, input ended")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first < 0xC0 and pos + 2 <= end:  # 2 bytes: payload lengths up to 16 kB
        return (first & 0x3F) << 8 | data[pos + 1], pos + 2
    n = 9 - (first ^ 0xFF).bit_length()  # leading 1-bits + 1; 0xFF gives 9
    if pos + n > end:
        raise TruncatedError(f"{n}-byte vi64, {end - pos} byte(s) left")
    value = int.from_bytes(data[pos + 1 : pos + n], "big")
    if n < 9:
        value |= (first & (0xFF >> n)) << (8 * (n - 1))
    return value, pos + n


class Field(Protocol):
    """One field of a wire layout."""

    def encode(self, value: object) -> bytes: ...

    def decode(self, data: bytes, pos: int, end: int) -> tuple[object, int]: ...


class _U16:
    def encode(self, value: object) -> bytes:
        if not isinstance(value, int) or not 0 <= value <= MAX_U16:
            raise BadPropertiesError(f"property type {value!r} is not a 16-bit value")
        return value.to_bytes(2, "big")

    def decode(self, data: bytes, pos: int, end: int) -> tuple[object, int]:
        if pos + 2 > end:
            raise TruncatedError("16-bit property type expected, input ended")
        return int.from_bytes(data[pos : pos + 2], "big"), pos + 2


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected bytes, got {type(value).__name__}")


class _VarBytes:
    """Bytes after a vi64 length."""

    def encode(self, value: object) -> bytes:
        if type(value) is not bytes:
            value = _as_bytes(value)
        return encode_vi64(len(value)) + value

    def decode(self, data: bytes, pos: int, end: int) -> tuple[bytes, int]:
        length, pos = decode_vi64(data, pos, end)
        if pos + length > end:
            raise TruncatedError(f"value of {length} byte(s), {end - pos} left")
        return data[pos : pos + length], pos + length


class _U32Bytes:
    """Bytes after a 32-bit length (§4.3)."""

    def encode(self, value: object) -> bytes:
        if type(value) is not bytes:
            value = _as_bytes(value)
        if len(value) > MAX_U32:
            raise BadPropertiesError(f"{len(value)} bytes exceed a 32-bit length")
        return len(value).to_bytes(4, "big") + value

    def decode(self, data: bytes, pos: int, end: int) -> tuple[bytes, int]:
        if pos + 4 > end:
            raise TruncatedError("32-bit length expected, input ended")
        length = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + length > end:
            raise TruncatedError(f"value of {length} byte(s), {end - pos} left")
        return data[pos : pos + length], pos + length


U16: Field = _U16()
VAR_BYTES = _VarBytes()
U32_BYTES: Field = _U32Bytes()

Layout = tuple[Field, ...]

#: §4 / §3.3.3: Type (16), Length (vi64), Value.
PROPERTY_LAYOUT: Layout = (U16, VAR_BYTES)
#: §4.3: Type (16) = 0x32, Length (32), Padding.
PADDING_LAYOUT: Layout = (U16, U32_BYTES)
#: §3.3.2: Serialize(original_payload) = vi64 length + bytes.
PAYLOAD_FIELD = VAR_BYTES


def encode_layout(layout: Layout, values: Sequence[object]) -> bytes:
    """Encode ``values`` field by field."""
    return b"".join(f.encode(v) for f, v in zip(layout, values, strict=True))


def decode_layout(layout: Layout, data: bytes, pos: int, end: int) -> tuple[list[object], int]:
    """Decode one value per field of ``layout`` starting at ``pos``."""
    out: list[object] = []
    for f in layout:
        value, pos = f.decode(data, pos, end)
        out.append(value)
    return out, pos


@dataclass(frozen=True, slots=True)
class Property:
    """One object property: a 16-bit type and its value bytes (§4)."""

    type: int
    value: bytes

    @classmethod
    def key_id(cls, key_id: int) -> Property:
        """The Secure Object Key ID property (§4.1): its value is the Key ID as a vi64."""
        return cls(KEY_ID_PROPERTY, encode_vi64(key_id))


def _layout_for(prop_type: int) -> Layout:
    return PADDING_LAYOUT if prop_type == PADDING_PROPERTY else PROPERTY_LAYOUT


def encode_properties(properties: Sequence[Property]) -> bytes:
    """Properties back to back, each by the layout its type calls for."""
    return b"".join(encode_layout(_layout_for(p.type), (p.type, p.value)) for p in properties)


def decode_properties(data: bytes, pos: int = 0, end: int | None = None) -> tuple[Property, ...]:
    """Every property in ``data[pos:end]``; the whole range must be consumed."""
    end = len(data) if end is None else end
    out: list[Property] = []
    while pos < end:
        prop_type, _ = U16.decode(data, pos, end)  # peek: the type picks the layout
        assert isinstance(prop_type, int)
        (_, value), pos = decode_layout(_layout_for(prop_type), data, pos, end)
        assert isinstance(value, bytes)
        out.append(Property(prop_type, value))
    return tuple(out)


def decode_key_id(prop: Property) -> int:
    """The Key ID in a Secure Object Key ID property: exactly one vi64 (§4.1)."""
    value = prop.value
    if len(value) == 1 and value[0] < 0x80:  # Key IDs below 128: the common case
        return value[0]
    try:
        key_id, used = decode_vi64(value, 0, len(value))
    except TruncatedError as exc:
        raise BadPropertiesError(f"Key ID property value is not a vi64: {exc}") from exc
    if used != len(value):
        raise BadPropertiesError(f"Key ID property has {len(value) - used} trailing byte(s)")
    return key_id


#: A decoded plaintext (§3.3.2): payload, encrypted properties, Padding length (0 = none).
#: A plain tuple: one is built for every object received.
Plaintext = tuple[bytes, tuple[Property, ...], int]


def encode_plaintext(
    payload: bytes, encrypted_properties: Sequence[Property] = (), padding: int = 0
) -> bytes:
    """``Serialize(original_payload) + Serialize(Encrypted Properties List)`` (§3.3.2)."""
    head = PAYLOAD_FIELD.encode(payload)
    if not encrypted_properties and not padding:
        return head
    for p in encrypted_properties:
        if p.type in (ENCRYPTED_PROPERTIES_LIST, PADDING_PROPERTY):
            raise BadPropertiesError(f"property type {p.type:#x} is not allowed in the list")
    if not 0 <= padding <= MAX_U32:
        raise BadPropertiesError(f"padding of {padding} bytes does not fit 32 bits")
    props = list(encrypted_properties)
    if padding:
        props.append(Property(PADDING_PROPERTY, bytes(padding)))
    body = encode_properties(props)
    return head + encode_layout(PROPERTY_LAYOUT, (ENCRYPTED_PROPERTIES_LIST, body))


def decode_plaintext(data: bytes) -> Plaintext:
    """Parse a decrypted plaintext (§3.3.3 steps 1-4); any parse failure raises."""
    end = len(data)
    payload, pos = PAYLOAD_FIELD.decode(data, 0, end)
    if pos == end:
        return payload, (), 0
    type_field, body_field = PROPERTY_LAYOUT
    list_type, pos = type_field.decode(data, pos, end)
    if list_type != ENCRYPTED_PROPERTIES_LIST:  # §3.3.3 step 4: checked before the length
        raise BadPropertiesError(f"expected the Encrypted Properties List, got type {list_type!r}")
    body, pos = body_field.decode(data, pos, end)
    if pos != end:
        raise DecodeError(f"{end - pos} byte(s) after the Encrypted Properties List")
    assert isinstance(body, bytes)
    props = decode_properties(body)
    padding = 0
    if props and props[-1].type == PADDING_PROPERTY:
        padding = len(props[-1].value)
        props = props[:-1]
    if any(p.type == PADDING_PROPERTY for p in props):
        raise BadPropertiesError("the Padding property must be the last in the list")
    return payload, props, padding
