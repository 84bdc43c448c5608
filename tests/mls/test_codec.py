"""RFC 9420 §2.1: the presentation language, read like the spec."""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moqmls.mls.codec import (
    OPAQUE,
    UINT8,
    UINT16,
    Enum,
    Optional,
    Reader,
    Select,
    Struct,
    StructWire,
    Vector,
    Writer,
    wire,
)
from moqmls.mls.errors import (
    DecodeError,
    InvalidEnumError,
    InvalidOptionalError,
    InvalidVarintError,
    TrailingDataError,
    TruncatedError,
)


class Colour(enum.IntEnum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Inner(Struct):
    x: int = wire(UINT16)
    data: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class Outer(Struct):
    colour: Colour = wire(Enum(Colour, 1))
    body: object = wire(Select("colour", {Colour.RED: StructWire(Inner), Colour.BLUE: None}))
    items: tuple[int, ...] = wire(Vector(UINT8))
    maybe: bytes | None = wire(Optional(OPAQUE))


def test_spec_varint_examples() -> None:
    assert Reader(bytes.fromhex("9d7f3e7d")).varint() == 494878333
    assert Reader(bytes.fromhex("7bbd")).varint() == 15293
    assert Reader(bytes.fromhex("25")).varint() == 37


def test_varint_rejects_prefix_11_and_non_minimal() -> None:
    with pytest.raises(InvalidVarintError):
        Reader(b"\xc0\x00\x00\x00\x00\x00\x00\x01").varint()
    with pytest.raises(InvalidVarintError):
        Reader(b"\x40\x25").varint()  # 37 in two bytes
    with pytest.raises(InvalidVarintError):
        Reader(b"\x80\x00\x3f\xff").varint()  # 16383 in four bytes


@given(st.integers(min_value=0, max_value=(1 << 30) - 1))
def test_varint_round_trip(value: int) -> None:
    w = Writer()
    w.varint(value)
    r = Reader(bytes(w.buf))
    assert r.varint() == value
    r.finish()


def test_struct_round_trip_with_select_vector_optional() -> None:
    value = Outer(Colour.RED, Inner(7, b"abc"), (1, 2, 3), b"z")
    encoded = value.encode()
    assert encoded == bytes.fromhex("010007036162630301020301017a")
    assert Outer.decode(encoded) == value
    empty_case = Outer(Colour.BLUE, None, (), None)
    assert empty_case.encode() == bytes.fromhex("020000")
    assert Outer.decode(empty_case.encode()) == empty_case


@pytest.mark.parametrize(
    ("hex_input", "error"),
    [
        ("03", InvalidEnumError),  # colour 3 is not a Colour
        ("01000705616263", TruncatedError),  # opaque longer than the input
        ("020002", InvalidOptionalError),  # presence octet 2
        ("020000ff", TrailingDataError),
        ("02c0", InvalidVarintError),
        ("", TruncatedError),
    ],
)
def test_malformed_input_raises_precise_errors(hex_input: str, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        Outer.decode(bytes.fromhex(hex_input))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Outer.decode(data)
