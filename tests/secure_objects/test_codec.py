"""Wire encodings (draft-ietf-moq-secure-objects §3.3, §4; moq-transport-18 §1.4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.secure_objects import (
    BadPropertiesError,
    DecodeError,
    IdOutOfRangeError,
    Property,
    TruncatedError,
)
from moqmls.secure_objects.codec import (
    decode_key_id,
    decode_plaintext,
    decode_properties,
    decode_vi64,
    encode_plaintext,
    encode_properties,
    encode_vi64,
)

h = bytes.fromhex

# moq-transport-18 §1.4.1, "Example Integer Encodings".
SPEC_EXAMPLES = [
    ("25", 37),
    ("8025", 37),
    ("bbbd", 15_293),
    ("ed7f3e7d", 226_442_877),
    ("faa1a0e403d8", 2_893_212_287_960),
    ("fc8998abc66bc0", 151_288_809_941_952),
    ("fefa318fa8e3ca11", 70_423_237_261_249_041),
    ("ffffffffffffffffff", 18_446_744_073_709_551_615),
]


@pytest.mark.parametrize(("encoded", "value"), SPEC_EXAMPLES)
def test_vi64_spec_examples_decode(encoded: str, value: int) -> None:
    data = h(encoded)
    assert decode_vi64(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize(
    ("value", "length"),
    [(0, 1), (127, 1), (128, 2), (16383, 2), (16384, 3), (2**56 - 1, 8), (2**56, 9)],
)
def test_vi64_minimal_lengths(value: int, length: int) -> None:
    """Range table of §1.4.1: 7 usable bits per byte up to 8 bytes, then 9 bytes for 64."""
    assert len(encode_vi64(value)) == length


def test_vi64_encodes_spec_examples_that_are_minimal() -> None:
    for encoded, value in SPEC_EXAMPLES:
        if encoded != "8025":  # the non-minimal example
            assert encode_vi64(value) == h(encoded)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_vi64_out_of_range(value: int) -> None:
    with pytest.raises(IdOutOfRangeError):
        encode_vi64(value)


@given(st.integers(0, 2**64 - 1))
def test_vi64_roundtrip(value: int) -> None:
    data = encode_vi64(value)
    assert decode_vi64(data, 0, len(data)) == (value, len(data))


@pytest.mark.parametrize("encoded", ["", "80", "c000", "ff00000000000000"])
def test_vi64_truncated(encoded: str) -> None:
    data = h(encoded)
    with pytest.raises(TruncatedError):
        decode_vi64(data, 0, len(data))


def test_key_id_property_matches_draft_vector() -> None:
    """The draft's AADs end in 00 02 01 07 for Key ID 7."""
    assert encode_properties([Property.key_id(7)]) == h("00020107")


def test_key_id_property_must_be_one_vi64() -> None:
    assert decode_key_id(Property(2, h("8007"))) == 7  # non-minimal is still a vi64
    with pytest.raises(BadPropertiesError):
        decode_key_id(Property(2, b""))
    with pytest.raises(BadPropertiesError):
        decode_key_id(Property(2, h("0707")))


def test_padding_property_uses_32_bit_length() -> None:
    """§4.3: the Padding length is 4 bytes, unlike other properties."""
    encoded = encode_plaintext(b"hi", (), 3)
    assert encoded == h("026869" + "000a" + "09" + "0032" + "00000003" + "000000")
    assert decode_plaintext(encoded) == (b"hi", (), 3)


def test_plaintext_without_properties_is_just_the_payload() -> None:
    assert encode_plaintext(b"abc") == h("03616263")


@pytest.mark.parametrize(
    ("hexdata", "error"),
    [
        ("", TruncatedError),
        ("05616263", TruncatedError),  # payload shorter than announced
        ("0161" + "0001", BadPropertiesError),  # list type must be 0xA
        ("0161" + "000a05" + "0001", TruncatedError),  # list body shorter than announced
        ("0161" + "000a00" + "ff", DecodeError),  # bytes after the list
        ("0161" + "000a04" + "00010561", TruncatedError),  # property inside is truncated
        ("0161" + "000a09" + "003200000000" + "000100", BadPropertiesError),  # padding not last
        ("0161" + "000a", TruncatedError),
    ],
)
def test_bad_plaintexts(hexdata: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_plaintext(h(hexdata))


@pytest.mark.parametrize("bad_type", [0x0A, 0x32])
def test_reserved_types_not_allowed_as_encrypted_properties(bad_type: int) -> None:
    with pytest.raises(BadPropertiesError):
        encode_plaintext(b"", (Property(bad_type, b"x"),))


@pytest.mark.parametrize("prop", [Property(-1, b""), Property(0x10000, b"")])
def test_property_type_must_fit_16_bits(prop: Property) -> None:
    with pytest.raises(BadPropertiesError):
        encode_properties([prop])


properties = st.lists(
    st.builds(
        Property,
        st.integers(0, 0xFFFF).filter(lambda t: t not in (0x0A, 0x32)),
        st.binary(max_size=300),
    ),
    max_size=5,
).map(tuple)


@given(properties)
def test_properties_roundtrip(props: tuple[Property, ...]) -> None:
    assert decode_properties(encode_properties(props)) == props


@given(st.binary(max_size=400), properties, st.integers(0, 300))
def test_plaintext_roundtrip(payload: bytes, props: tuple[Property, ...], padding: int) -> None:
    encoded = encode_plaintext(payload, props, padding)
    assert decode_plaintext(encoded) == (payload, props, padding)


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_fuzz_decode_plaintext(data: bytes) -> None:
    """Arbitrary bytes give a plaintext or a DecodeError, never another exception."""
    try:
        pt = decode_plaintext(data)
    except DecodeError:
        return
    payload, props, padding = pt
    assert isinstance(payload, bytes) and padding >= 0
    assert all(isinstance(p, Property) for p in props)


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_fuzz_decode_properties(data: bytes) -> None:
    try:
        props = decode_properties(data)
    except DecodeError:
        return
    again = encode_properties(props)
    assert decode_properties(again) == props
    assert len(again) <= len(data)  # ours is the shortest encoding of the same properties


@given(st.binary(max_size=12))
def test_fuzz_decode_vi64(data: bytes) -> None:
    try:
        value, used = decode_vi64(data, 0, len(data))
    except TruncatedError:
        return
    assert 0 <= value < 2**64 and 1 <= used <= 9


@settings(max_examples=300)
@given(st.binary(max_size=20), st.binary(max_size=40))
def test_fuzz_encrypted_properties_list(payload: bytes, tail: bytes) -> None:
    """A valid payload followed by a mangled list: the list parser must fail cleanly."""
    data = encode_plaintext(payload) + b"\x00\x0a" + encode_vi64(len(tail)) + tail
    try:
        got_payload, props, padding = decode_plaintext(data)
    except DecodeError:
        return
    assert got_payload == payload
    # Non-minimal lengths and non-zero padding decode too, so compare decoded values.
    assert decode_plaintext(encode_plaintext(payload, props, padding)) == (payload, props, padding)
