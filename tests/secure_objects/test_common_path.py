"""The per-object path for the common object (Key ID property only, a bare payload), which
`TrackKeys` and `KeyRing` take without the general encoders: its output must be exactly what
§3.3-§3.8 define, computed here independently from the draft's vector keys with `cryptography`,
and every check of the general path must still hold on it."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.secure_objects import (
    AuthenticationError,
    ExpiredKeyIdError,
    IdOutOfRangeError,
    PlainObject,
    Property,
    SecureObject,
    SecureObjectError,
    TrackKeys,
    TruncatedError,
    cipher_suite,
)
from moqmls.secure_objects.codec import decode_plaintext
from moqmls.secure_objects.keyring import KeyRing

VECTORS = Path(__file__).parent.parent / "vectors"
SO = json.loads((VECTORS / "secure_objects" / "vectors.json").read_text())
GCM = [v for v in SO["encryption"] if v["cipher_suite"] in (4, 5)]
h = bytes.fromhex


def _vi64(n: int) -> bytes:
    """moq-transport-18 §1.4.1, written out for the lengths used here."""
    if n < 1 << 7:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x80 | n >> 8, n & 0xFF])
    assert n < 1 << 21
    return bytes([0xC0 | n >> 16, n >> 8 & 0xFF, n & 0xFF])


def _keys(v: dict[str, Any]) -> TrackKeys:
    ns = tuple(t.encode() for t in v["namespace_tuples"])
    suite = cipher_suite(v["cipher_suite"])
    return TrackKeys(suite, v["key_id"], h(v["track_base_key"]), ns, v["track_name"].encode())


def _seal(v: dict[str, Any], group: int, obj_id: int, prio: int, plaintext: bytes) -> bytes:
    """§3.8 by hand: nonce = moq_salt XOR (group || object), AAD = ids + Key ID property."""
    assert v["key_id"] < 0x80
    salt = int.from_bytes(h(v["moq_salt"]), "big")
    nonce = (salt ^ (group << 32 | obj_id)).to_bytes(12, "big")
    aad = struct.pack(">QIB", group, obj_id, prio) + bytes([0x00, 0x02, 0x01, v["key_id"]])
    return AESGCM(h(v["moq_key"])).encrypt(nonce, plaintext, aad)


@pytest.mark.parametrize("v", GCM, ids=lambda v: f"suite{v['cipher_suite']}")
@pytest.mark.parametrize("size", [0, 1, 64, 127, 128, 1200, 16383, 16384, 70_000])
def test_common_object_is_the_draft_construction(v: dict[str, Any], size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    obj = PlainObject(group_id=2**40 + 3, object_id=2**31 + 9, payload=payload)
    sealed = _keys(v).protect(obj)
    expected = _seal(v, obj.group_id, obj.object_id, 128, _vi64(size) + payload)
    assert sealed.payload == expected
    assert sealed.immutable_properties == (Property(2, bytes([v["key_id"]])),)
    assert _keys(v).unprotect(sealed) == obj


def _outcome_matches_decoder(v: dict[str, Any], plaintext: bytes) -> None:
    """unprotect reads an authenticated plaintext as the general decoder (§3.3.3) does:
    same payload and properties, or the same error."""
    sealed = SecureObject(5, 6, 7, (Property(2, bytes([v["key_id"]])),), b"")
    sealed = dataclasses.replace(sealed, payload=_seal(v, 5, 6, 7, plaintext))
    try:
        expected: object = decode_plaintext(plaintext)
    except SecureObjectError as exc:
        expected = type(exc)
    try:
        plain = _keys(v).unprotect(sealed)
        got: object = (plain.payload, plain.encrypted_properties, plain.padding)
    except SecureObjectError as exc:
        got = type(exc)
    assert got == expected


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x00",
        b"\x05hello",
        b"\x05hell",
        b"\x80",
        b"\x80\x05hello",
        b"\xc0\x00\x05hello",
        b"\x00\x03abc",  # a 2-byte reading of the length would fit
        b"\x81" + bytes(129),  # first byte == len - 1, but it starts a 2-byte length
        b"\x05hello\x00\x0a\x00",  # an empty Encrypted Properties List
        b"\x05hello\x00\x0a\x06\x01\x00\x03abc",
        b"\x05hello\x00\x0b\x00",
    ],
    ids=lambda p: p[:12].hex() or "empty",
)
def test_plaintext_edge_cases_parse_as_decode_plaintext_does(plaintext: bytes) -> None:
    _outcome_matches_decoder(GCM[0], plaintext)


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.one_of(st.binary(max_size=40), st.binary(min_size=1).map(lambda b: b"\x80" + b))
)
def test_any_plaintext_parses_as_decode_plaintext_does(plaintext: bytes) -> None:
    _outcome_matches_decoder(GCM[0], plaintext)


@pytest.mark.parametrize("length", [b"\x80\x05", b"\xc0\x00\x05", b"\xff" + bytes(7) + b"\x05"])
def test_non_minimal_payload_length_is_accepted(length: bytes) -> None:
    v = GCM[0]
    sealed = SecureObject(1, 2, 3, (Property(2, bytes([v["key_id"]])),), b"")
    sealed = dataclasses.replace(sealed, payload=_seal(v, 1, 2, 3, length + b"hello"))
    assert _keys(v).unprotect(sealed).payload == b"hello"


def test_results_are_the_frozen_value_classes() -> None:
    keys = _keys(GCM[0])
    obj = PlainObject(group_id=1, object_id=2, payload=b"x" * 300)
    sealed = keys.protect(obj)
    plain = keys.unprotect(sealed)
    assert type(sealed) is SecureObject and type(plain) is PlainObject
    same = SecureObject(1, 2, 128, sealed.immutable_properties, sealed.payload)
    assert sealed == same and hash(sealed) == hash(same) and repr(sealed) == repr(same)
    assert plain == obj and hash(plain) == hash(obj) and repr(plain) == repr(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.payload = b""  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.group_id = 9  # type: ignore[misc]
    assert dataclasses.replace(plain, object_id=3).object_id == 3


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
def test_ids_out_of_range_on_the_common_path(ids: dict[str, int]) -> None:
    keys = _keys(GCM[0])
    obj = PlainObject(group_id=1, object_id=2, payload=b"frame")
    with pytest.raises(IdOutOfRangeError):
        keys.protect(dataclasses.replace(obj, **ids))  # type: ignore[arg-type]
    sealed = dataclasses.replace(keys.protect(obj), **ids)  # type: ignore[arg-type]
    with pytest.raises(IdOutOfRangeError):
        keys.unprotect(sealed)
    assert keys.uses == 1


@pytest.mark.parametrize("suite", [1, 2, 3, 4, 5])
def test_tampering_on_the_common_path(suite: int) -> None:
    keys = TrackKeys(cipher_suite(suite), 7, b"sixteen byte key", (b"ns",), b"t")
    sealed = keys.protect(PlainObject(group_id=42, object_id=1, payload=b"payload" * 30))
    for field, value in [
        ("group_id", 43),
        ("object_id", 0),
        ("publisher_priority", 127),
        ("immutable_properties", (Property(2, b"\x80\x07"),)),
        ("payload", sealed.payload[:-1] + bytes([sealed.payload[-1] ^ 1])),
    ]:
        with pytest.raises(AuthenticationError):
            keys.unprotect(dataclasses.replace(sealed, **{field: value}))  # type: ignore[arg-type]
    with pytest.raises(TruncatedError):
        keys.unprotect(dataclasses.replace(sealed, payload=sealed.payload[:3]))


def test_other_payload_types_are_encoded_as_bytes() -> None:
    keys = _keys(GCM[0])
    obj = PlainObject(group_id=1, object_id=2, payload=b"\x01\x02" * 100)
    expected = keys.protect(obj).payload
    for payload in (bytearray(obj.payload), memoryview(obj.payload)):
        sealed = keys.protect(dataclasses.replace(obj, payload=payload))  # type: ignore[arg-type]
        assert sealed.payload == expected


NS = (b"group-1", b"media")


def _rings() -> tuple[KeyRing, KeyRing]:
    tx, rx = KeyRing(retention=10.0), KeyRing(retention=10.0)
    for ring in (tx, rx):
        ring.install(NS, 1, b"epoch-1 base key", now=0.0)
    tx.set_current(NS, 1, now=0.0)
    return tx, rx


def test_ring_shortcut_follows_supersession_and_expiry() -> None:
    """A track proven under Key ID 1 stops decrypting when 1's window ends, though the ring
    took its shortcut for it before."""
    tx, rx = _rings()
    obj = PlainObject(group_id=1, object_id=0, payload=b"frame")
    old = tx.protect(NS, b"cam", obj)
    assert rx.unprotect(NS, b"cam", old, now=0.0) == obj
    assert rx.unprotect(NS, b"cam", old, now=1.0) == obj
    for ring in (tx, rx):
        ring.install(NS, 2, b"epoch-2 base key", now=5.0)
    tx.set_current(NS, 2, now=5.0)
    new = tx.protect(NS, b"cam", obj)
    assert new.key_id == 2
    assert rx.unprotect(NS, b"cam", old, now=14.9) == obj
    assert rx.unprotect(NS, b"cam", new, now=14.9) == obj
    with pytest.raises(ExpiredKeyIdError):
        rx.unprotect(NS, b"cam", old, now=15.0)
    rx.remove_namespace(NS)
    with pytest.raises(ExpiredKeyIdError):
        rx.unprotect(NS, b"cam", new, now=15.0)


def test_ring_key_id_property_variants() -> None:
    tx, rx = _rings()
    obj = PlainObject(group_id=1, object_id=0, payload=b"frame")
    sealed = tx.protect(NS, b"cam", obj)
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == obj
    non_minimal = dataclasses.replace(sealed, immutable_properties=(Property(2, b"\x80\x01"),))
    with pytest.raises(AuthenticationError):
        rx.unprotect(NS, b"cam", non_minimal, now=0.0)
    as_bytearray = dataclasses.replace(
        sealed,
        immutable_properties=(Property(2, bytearray(b"\x01")),),  # type: ignore[arg-type]
    )
    assert rx.unprotect(NS, b"cam", as_bytearray, now=0.0) == obj
    with pytest.raises(AuthenticationError):
        rx.unprotect(list(NS), b"mic", sealed, now=0.0)


def test_gcm_vectors_decrypt_with_cryptography_alone() -> None:
    """The hand-made construction above is the draft's: it opens the vector ciphertexts."""
    for v in GCM:
        prefix = struct.pack(">QIB", v["group_id"], v["object_id"], v["publisher_priority"])
        aad = h(v["aad"])
        assert aad.startswith(prefix + bytes([0x00, 0x02, 0x01, v["key_id"]]))
        try:
            plaintext = AESGCM(h(v["moq_key"])).decrypt(h(v["nonce"]), h(v["ciphertext"]), aad)
        except InvalidTag:  # pragma: no cover - would mean the vector file is damaged
            pytest.fail("vector ciphertext does not open")
        assert plaintext == h(v["plaintext"])
