"""MoQT variable-length integers, vi64 (draft-ietf-moq-transport-18 §1.4.1).

The number of leading 1 bits of the first byte gives the length (1 to 9 bytes); the
remaining bits are the value in network byte order. Non-minimal encodings are valid.
"""

from __future__ import annotations

from moqmls.moqt.errors import EncodeError, TruncatedError

MAX_VI64 = (1 << 64) - 1

# (exclusive upper bound of values, total length, prefix bits placed in the first byte)
_LENGTHS: tuple[tuple[int, int, int], ...] = tuple(
    (1 << (7 * n), n, (0xFF << (9 - n)) & 0xFF) for n in range(1, 9)
)


def encoded_length(value: int) -> int:
    """Number of bytes of the minimal vi64 encoding of `value` (§1.4.1)."""
    for bound, length, _ in _LENGTHS:
        if value < bound:
            return length
    return 9


def encode_vi64(value: int) -> bytes:
    """The minimal vi64 encoding of `value` (§1.4.1)."""
    if value < 0x80:
        if value < 0:
            raise EncodeError(f"vi64 cannot encode negative {value}")
        return bytes((value,))
    if value > MAX_VI64:
        raise EncodeError(f"vi64 cannot encode {value} (> 2^64-1)")
    for bound, length, prefix in _LENGTHS:
        if value < bound:
            raw = value.to_bytes(length, "big")
            return bytes((raw[0] | prefix,)) + raw[1:]
    return b"\xff" + value.to_bytes(8, "big")


def decode_vi64(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode one vi64 at `pos`; returns (value, position after it) (§1.4.1)."""
    if pos >= len(data):
        raise TruncatedError("vi64 truncated")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    length = 9 if first == 0xFF else 8 - (first ^ 0xFF).bit_length() + 1
    end = pos + length
    if end > len(data):
        raise TruncatedError("vi64 truncated")
    if length == 9:
        return int.from_bytes(data[pos + 1 : end], "big"), end
    mask = 0xFF >> length
    value = int.from_bytes(bytes((first & mask,)) + bytes(data[pos + 1 : end]), "big")
    return value, end
