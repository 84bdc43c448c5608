"""protect / unprotect of one object, every suite, and tampering with every authenticated
field (draft-ietf-moq-secure-objects §3, table "MoQ Object Security Protection Levels")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.secure_objects import (
    AuthenticationError,
    BadPropertiesError,
    IdOutOfRangeError,
    MissingKeyIdError,
    PlainObject,
    Property,
    SecureObject,
    SecureObjectError,
    TrackKeys,
    TruncatedError,
    UnknownKeyIdError,
    cipher_suite,
)

SUITES = [1, 2, 3, 4, 5]
NS = (b"example.com", b"meeting-123")
NAME = b"video"
BASE = b"sixteen byte key"

OBJ = PlainObject(
    group_id=42,
    object_id=1,
    payload=b"hello from moq",
    publisher_priority=128,
    immutable_properties=(Property(4, b"relay-ok"),),
    encrypted_properties=(Property(0x100, b"for-eyes-only"),),
    padding=5,
)


def keys(
    suite: int,
    *,
    key_id: int = 7,
    base: bytes = BASE,
    ns: tuple[bytes, ...] = NS,
    name: bytes = NAME,
) -> TrackKeys:
    return TrackKeys(cipher_suite(suite), key_id, base, ns, name)


@pytest.mark.parametrize("suite", SUITES)
def test_roundtrip(suite: int) -> None:
    k = keys(suite)
    sealed = k.protect(OBJ)
    assert sealed.immutable_properties == (Property.key_id(7), *OBJ.immutable_properties)
    assert b"hello" not in sealed.payload and b"for-eyes" not in sealed.payload
    # payload length: vi64 + 14 + list(2 + 1 + 2+1+13 + 2+4+5) + tag
    assert len(sealed.payload) == 1 + 14 + 3 + 16 + 11 + cipher_suite(suite).nt
    assert keys(suite).unprotect(sealed) == OBJ


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("payload", [b"", b"x" * 200, bytes(70_000)])
def test_roundtrip_sizes(suite: int, payload: bytes) -> None:
    obj = PlainObject(group_id=2**64 - 1, object_id=2**32 - 1, payload=payload)
    assert keys(suite).unprotect(keys(suite).protect(obj)) == obj


Tamper = Callable[[SecureObject], SecureObject]


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


TAMPERS: dict[str, Tamper] = {
    "group_id": lambda s: dataclasses.replace(s, group_id=s.group_id + 1),
    "group_id_high_bit": lambda s: dataclasses.replace(s, group_id=s.group_id | 1 << 63),
    "object_id": lambda s: dataclasses.replace(s, object_id=s.object_id ^ 1),
    "publisher_priority": lambda s: dataclasses.replace(s, publisher_priority=127),
    "immutable_value": lambda s: dataclasses.replace(
        s, immutable_properties=(s.immutable_properties[0], Property(4, b"relay-OK"))
    ),
    "immutable_type": lambda s: dataclasses.replace(
        s, immutable_properties=(s.immutable_properties[0], Property(6, b"relay-ok"))
    ),
    "immutable_removed": lambda s: dataclasses.replace(
        s, immutable_properties=s.immutable_properties[:1]
    ),
    "immutable_added": lambda s: dataclasses.replace(
        s, immutable_properties=(*s.immutable_properties, Property(8, b""))
    ),
    "immutable_reordered": lambda s: dataclasses.replace(
        s, immutable_properties=s.immutable_properties[::-1]
    ),
    "key_id_non_minimal": lambda s: dataclasses.replace(
        s, immutable_properties=(Property(2, b"\x80\x07"), *s.immutable_properties[1:])
    ),
    "ciphertext_first_byte": lambda s: dataclasses.replace(s, payload=_flip(s.payload, 0)),
    "ciphertext_encrypted_properties": lambda s: dataclasses.replace(
        s, payload=_flip(s.payload, 20)
    ),
    "tag_last_byte": lambda s: dataclasses.replace(s, payload=_flip(s.payload, -1)),
    "ciphertext_truncated": lambda s: dataclasses.replace(s, payload=s.payload[:-1]),
    "ciphertext_extended": lambda s: dataclasses.replace(s, payload=s.payload + b"\x00"),
}


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_tampered_field_fails_authentication(suite: int, field: str) -> None:
    sealed = keys(suite).protect(OBJ)
    tampered = TAMPERS[field](sealed)
    assert tampered != sealed
    with pytest.raises(AuthenticationError):
        keys(suite).unprotect(tampered)


@pytest.mark.parametrize("suite", SUITES)
def test_every_ciphertext_byte_is_authenticated(suite: int) -> None:
    sealed = keys(suite).protect(OBJ)
    k = keys(suite)
    for i in range(len(sealed.payload)):
        with pytest.raises(AuthenticationError):
            k.unprotect(dataclasses.replace(sealed, payload=_flip(sealed.payload, i)))


CONTEXT_CHANGES: dict[str, dict[str, object]] = {
    "track_name": {"name": b"audio"},
    "namespace_field": {"ns": (b"example.com", b"meeting-124")},
    "namespace_split": {"ns": (b"example.com", b"meeting-", b"123")},
    "base_key": {"base": b"sixteen byte kez"},
    "key_id_other_key": {"key_id": 8},
}


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("change", sorted(CONTEXT_CHANGES))
def test_other_context_fails_authentication(suite: int, change: str) -> None:
    """Track Namespace, Track Name, Key ID and key are bound through the derived key/salt."""
    sealed = keys(suite).protect(OBJ)
    other = keys(suite, **CONTEXT_CHANGES[change])  # type: ignore[arg-type]
    if change == "key_id_other_key":
        sealed = dataclasses.replace(
            sealed, immutable_properties=(Property.key_id(8), *sealed.immutable_properties[1:])
        )
    with pytest.raises(AuthenticationError):
        other.unprotect(sealed)


def test_other_suite_fails_authentication() -> None:
    sealed = keys(1).protect(OBJ)
    with pytest.raises(AuthenticationError):
        keys(2).unprotect(dataclasses.replace(sealed, payload=sealed.payload[:-2]))


def test_keys_for_another_key_id_refuse() -> None:
    sealed = keys(4).protect(OBJ)
    with pytest.raises(UnknownKeyIdError):
        keys(4, key_id=8).unprotect(sealed)


@pytest.mark.parametrize("suite", SUITES)
def test_shorter_than_tag_is_truncated(suite: int) -> None:
    sealed = keys(suite).protect(OBJ)
    for n in range(cipher_suite(suite).nt):
        with pytest.raises(TruncatedError):
            keys(suite).unprotect(dataclasses.replace(sealed, payload=sealed.payload[:n]))


@pytest.mark.parametrize(
    "ids",
    [
        {"group_id": 2**64},
        {"group_id": -1},
        {"object_id": 2**32},
        {"object_id": -1},
        {"publisher_priority": 256},
        {"publisher_priority": -1},
    ],
)
def test_ids_out_of_range(ids: dict[str, int]) -> None:
    """§3.6: such objects MUST NOT be processed, neither sent nor received."""
    k = keys(4)
    with pytest.raises(IdOutOfRangeError):
        k.protect(dataclasses.replace(OBJ, **ids))  # type: ignore[arg-type]
    sealed = dataclasses.replace(k.protect(OBJ), **ids)  # type: ignore[arg-type]
    with pytest.raises(IdOutOfRangeError):
        k.unprotect(sealed)


def test_immutable_properties_travel_sorted_by_type() -> None:
    """MoQT's delta-coded Key-Value-Pairs can only carry ascending types; the AAD uses the
    order the receiver will see. The draft's vectors (Key ID 0x2, then 0x4) agree."""
    obj = dataclasses.replace(
        OBJ, immutable_properties=(Property(9, b"a"), Property(1, b"b"), Property(9, b"c"))
    )
    sealed = keys(4).protect(obj)
    assert [p.type for p in sealed.immutable_properties] == [1, 2, 9, 9]
    assert [p.value for p in sealed.immutable_properties if p.type == 9] == [b"a", b"c"]
    plain = keys(4).unprotect(sealed)
    assert plain.immutable_properties == (Property(1, b"b"), Property(9, b"a"), Property(9, b"c"))


@pytest.mark.parametrize("reserved", [2, 0x0A, 0x32])
def test_caller_cannot_set_reserved_immutable_properties(reserved: int) -> None:
    with pytest.raises(BadPropertiesError):
        keys(4).protect(dataclasses.replace(OBJ, immutable_properties=(Property(reserved, b""),)))


@pytest.mark.parametrize(
    "props",
    [
        (),
        (Property(4, b"relay-ok"),),
        (Property.key_id(7), Property.key_id(7)),
    ],
)
def test_key_id_property_missing_or_repeated(props: tuple[Property, ...]) -> None:
    sealed = dataclasses.replace(keys(4).protect(OBJ), immutable_properties=props)
    with pytest.raises(MissingKeyIdError):
        keys(4).unprotect(sealed)


def test_malformed_key_id_property() -> None:
    sealed = dataclasses.replace(keys(4).protect(OBJ), immutable_properties=(Property(2, b""),))
    with pytest.raises(BadPropertiesError):
        keys(4).unprotect(sealed)


def test_protect_is_deterministic_and_nonce_depends_on_ids() -> None:
    k = keys(4)
    a = k.protect(OBJ).payload
    assert k.protect(OBJ).payload == a
    assert k.protect(dataclasses.replace(OBJ, object_id=2)).payload[:16] != a[:16]
    assert k.protect(dataclasses.replace(OBJ, group_id=43)).payload[:16] != a[:16]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.lists(st.builds(Property, st.integers(0, 0xFFFF), st.binary(max_size=20)), max_size=3),
    st.binary(max_size=80),
)
def test_fuzz_unprotect_received_objects(
    group_id: int, object_id: int, priority: int, props: list[Property], payload: bytes
) -> None:
    """Whatever a relay sends, unprotect raises a SecureObjectError (or, never here, succeeds)."""
    received = SecureObject(group_id, object_id, priority, (Property.key_id(7), *props), payload)
    with pytest.raises(SecureObjectError):
        keys(1).unprotect(received)


user_properties = st.lists(
    st.builds(
        Property,
        st.integers(0, 0xFFFF).filter(lambda t: t not in (0x02, 0x0A, 0x32)),
        st.binary(max_size=150),
    ),
    max_size=3,
).map(tuple)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(SUITES),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.binary(max_size=300),
    user_properties,
    user_properties,
    st.integers(0, 200),
)
def test_roundtrip_any_object(
    suite: int,
    group_id: int,
    object_id: int,
    priority: int,
    payload: bytes,
    immutable: tuple[Property, ...],
    encrypted: tuple[Property, ...],
    padding: int,
) -> None:
    obj = PlainObject(group_id, object_id, payload, priority, immutable, encrypted, padding)
    sealed = keys(suite).protect(obj)
    expected = sorted((Property.key_id(7), *immutable), key=lambda p: p.type)
    assert list(sealed.immutable_properties) == expected
    in_wire_order = tuple(sorted(immutable, key=lambda p: p.type))
    assert keys(suite).unprotect(sealed) == dataclasses.replace(
        obj, immutable_properties=in_wire_order
    )
