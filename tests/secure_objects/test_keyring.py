"""The key ring: install, current key, retention window, forgetting (DESIGN.md "Media keys")."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.secure_objects import (
    AES_128_CTR_HMAC_SHA256_80,
    AuthenticationError,
    ExpiredKeyIdError,
    IdOutOfRangeError,
    KeyIdConflictError,
    KeyUsageLimitError,
    NoCurrentKeyError,
    PlainObject,
    Property,
    SecureObject,
    SecureObjectError,
    TrackKeys,
    UnknownKeyIdError,
    UnsupportedCipherSuiteError,
)
from moqmls.secure_objects.keyring import MAX_UNPROVEN_TRACKS_PER_KEY, KeyRing

NS = (b"group-1", b"media")
K1, K2, K3 = b"epoch-1 base key 32 bytes long!!", b"epoch-2 base key", b"epoch-3 base key"
OBJ = PlainObject(group_id=3, object_id=9, payload=b"frame")


def sender_and_receiver(retention: float = 10.0) -> tuple[KeyRing, KeyRing]:
    tx, rx = KeyRing(retention=retention), KeyRing(retention=retention)
    for ring in (tx, rx):
        ring.install(NS, 1, K1, now=0.0)
    tx.set_current(NS, 1, now=0.0)
    return tx, rx


def test_protect_unprotect_through_rings() -> None:
    tx, rx = sender_and_receiver()
    sealed = tx.protect(NS, b"cam", OBJ)
    assert sealed.key_id == 1
    assert rx.unprotect(NS, b"cam", sealed, now=1.0) == OBJ


def test_matches_track_keys_derived_directly() -> None:
    """The ring's result is the §3.7 derivation for (namespace, track, Key ID)."""
    tx, _ = sender_and_receiver()
    direct = TrackKeys(tx.cipher_suite, 1, K1, NS, b"cam").protect(OBJ)
    assert tx.protect(NS, b"cam", OBJ) == direct


def test_no_current_key() -> None:
    ring = KeyRing()
    ring.install(NS, 1, K1, now=0.0)
    with pytest.raises(NoCurrentKeyError):
        ring.protect(NS, b"cam", OBJ)


def test_unknown_key_id_and_namespace() -> None:
    tx, rx = sender_and_receiver()
    sealed = tx.protect(NS, b"cam", OBJ)
    with pytest.raises(UnknownKeyIdError):
        rx.unprotect((b"group-2", b"media"), b"cam", sealed, now=0.0)
    tx.install(NS, 2, K2, now=0.0)
    tx.set_current(NS, 2, now=0.0)
    with pytest.raises(UnknownKeyIdError):
        rx.unprotect(NS, b"cam", tx.protect(NS, b"cam", OBJ), now=0.0)
    with pytest.raises(UnknownKeyIdError):
        tx.set_current(NS, 5, now=0.0)


def test_superseded_key_decrypts_within_window_then_expires() -> None:
    tx, rx = sender_and_receiver(retention=10.0)
    old = tx.protect(NS, b"cam", OBJ)
    for ring in (tx, rx):
        ring.install(NS, 2, K2, now=100.0)
    tx.set_current(NS, 2, now=100.0)
    new = tx.protect(NS, b"cam", OBJ)
    assert new.key_id == 2 and new.payload != old.payload
    assert rx.unprotect(NS, b"cam", old, now=109.9) == OBJ
    assert rx.unprotect(NS, b"cam", new, now=109.9) == OBJ
    assert rx.key_ids(NS, now=109.9) == (1, 2)
    with pytest.raises(ExpiredKeyIdError):
        rx.unprotect(NS, b"cam", old, now=110.0)
    assert rx.key_ids(NS, now=110.0) == (2,)
    with pytest.raises(ExpiredKeyIdError):  # still expired, not "unknown", later on
        rx.unprotect(NS, b"cam", old, now=500.0)
    assert rx.unprotect(NS, b"cam", new, now=500.0) == OBJ


def test_expire_reports_and_forgets() -> None:
    _, rx = sender_and_receiver(retention=2.0)
    rx.install(NS, 2, K2, now=5.0)
    assert rx.expire(6.9) == []
    assert rx.expire(7.0) == [(NS, 1)]
    with pytest.raises(ExpiredKeyIdError):
        rx.install(NS, 1, K1, now=8.0)  # a forgotten epoch is not resurrected


def test_current_key_is_kept_while_current() -> None:
    tx, _ = sender_and_receiver(retention=1.0)
    tx.install(NS, 2, K2, now=0.0)  # supersedes 1, but 1 is still the sender's current key
    assert tx.key_ids(NS, now=50.0) == (1, 2)
    assert tx.protect(NS, b"cam", OBJ).key_id == 1
    tx.set_current(NS, 2, now=50.0)
    assert tx.key_ids(NS, now=50.0) == (2,)
    assert tx.current_key_id(NS) == 2


def test_lower_key_id_installed_late_is_already_superseded() -> None:
    ring = KeyRing(retention=3.0)
    ring.install(NS, 5, K2, now=0.0)
    ring.install(NS, 4, K1, now=10.0)
    assert ring.key_ids(NS, now=12.9) == (4, 5)
    assert ring.key_ids(NS, now=13.0) == (5,)


def test_reinstall_same_key_is_idempotent_other_key_conflicts() -> None:
    ring = KeyRing()
    ring.install(NS, 1, K1, now=0.0)
    ring.install(NS, 1, K1, now=1.0)
    with pytest.raises(KeyIdConflictError):
        ring.install(NS, 1, K2, now=1.0)
    with pytest.raises(KeyIdConflictError):
        ring.install(NS, 1, K1, now=1.0, cipher_suite=AES_128_CTR_HMAC_SHA256_80)


def test_key_scope_is_the_namespace() -> None:
    """§3.2: one Key ID covers every track of a namespace; tracks still get their own keys."""
    tx, rx = sender_and_receiver()
    a, b = tx.protect(NS, b"cam", OBJ), tx.protect(NS, b"mic", OBJ)
    assert a.payload != b.payload
    assert rx.unprotect(NS, b"mic", b, now=0.0) == OBJ
    with pytest.raises(AuthenticationError):
        rx.unprotect(NS, b"mic", a, now=0.0)


def test_per_namespace_cipher_suite() -> None:
    tx, rx = KeyRing(), KeyRing()
    for ring in (tx, rx):
        ring.install(NS, 1, K1, now=0.0, cipher_suite=1)
    tx.set_current(NS, 1, now=0.0)
    sealed = tx.protect(NS, b"cam", OBJ)
    assert len(sealed.payload) == 1 + len(OBJ.payload) + 10  # 80-bit tag
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ


def test_bad_parameters() -> None:
    with pytest.raises(UnsupportedCipherSuiteError):
        KeyRing(cipher_suite=6)
    ring = KeyRing()
    with pytest.raises(IdOutOfRangeError):
        ring.install(NS, 2**64, K1, now=0.0)
    with pytest.raises(IdOutOfRangeError):
        ring.install(NS, -1, K1, now=0.0)
    with pytest.raises(UnsupportedCipherSuiteError):
        ring.install(NS, 1, K1, now=0.0, cipher_suite=0)
    with pytest.raises(ValueError):
        KeyRing(retention=-1)


def test_largest_key_id() -> None:
    tx, rx = KeyRing(), KeyRing()
    for ring in (tx, rx):
        ring.install(NS, 2**64 - 1, K1, now=0.0)
    tx.set_current(NS, 2**64 - 1, now=0.0)
    sealed = tx.protect(NS, b"cam", OBJ)
    assert sealed.immutable_properties[0] == Property(2, bytes.fromhex("ff" * 9))
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ


def test_failed_unprotect_leaves_ring_usable() -> None:
    tx, rx = sender_and_receiver()
    sealed = tx.protect(NS, b"cam", OBJ)
    with pytest.raises(AuthenticationError):
        rx.unprotect(NS, b"cam", dataclasses.replace(sealed, payload=b"\x00" * 40), now=0.0)
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ


def test_invented_track_names_are_bounded_and_evict_no_real_track() -> None:
    tx, rx = sender_and_receiver()
    sealed = tx.protect(NS, b"cam", OBJ)
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ
    entry = rx._keys[NS][1]
    cam = entry.tracks[b"cam"]
    for i in range(MAX_UNPROVEN_TRACKS_PER_KEY + 5):
        with pytest.raises(AuthenticationError):
            rx.unprotect(NS, b"t%d" % i, sealed, now=0.0)
    assert len(entry.unproven) == MAX_UNPROVEN_TRACKS_PER_KEY
    assert list(entry.tracks) == [b"cam"] and entry.tracks[b"cam"] is cam
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ


def test_track_proven_by_an_authentic_object_moves_out_of_probation() -> None:
    tx, rx = sender_and_receiver()
    with pytest.raises(AuthenticationError):
        rx.unprotect(NS, b"mic", tx.protect(NS, b"cam", OBJ), now=0.0)
    entry = rx._keys[NS][1]
    assert list(entry.unproven) == [b"mic"] and not entry.tracks
    assert rx.unprotect(NS, b"mic", tx.protect(NS, b"mic", OBJ), now=0.0) == OBJ
    assert list(entry.tracks) == [b"mic"] and not entry.unproven


def test_remove_namespace() -> None:
    tx, rx = sender_and_receiver()
    sealed = tx.protect(NS, b"cam", OBJ)
    rx.remove_namespace(NS)
    with pytest.raises(ExpiredKeyIdError):
        rx.unprotect(NS, b"cam", sealed, now=0.0)
    tx.remove_namespace(list(NS))
    with pytest.raises(NoCurrentKeyError):
        tx.protect(NS, b"cam", OBJ)


def test_usage_limit_gcm_counts_encryptions_only() -> None:
    """§6.3: a moq_key is used at most usage_limit times; GCM counts encryptions."""
    tx, rx = KeyRing(usage_limit=3), KeyRing(usage_limit=3)
    for ring in (tx, rx):
        ring.install(NS, 1, K1, now=0.0)
    tx.set_current(NS, 1, now=0.0)
    sealed = [tx.protect(NS, b"cam", dataclasses.replace(OBJ, object_id=i)) for i in range(3)]
    with pytest.raises(KeyUsageLimitError):
        tx.protect(NS, b"cam", OBJ)
    for _ in range(5):
        assert rx.unprotect(NS, b"cam", sealed[0], now=0.0).object_id == 0
    tx.protect(NS, b"mic", OBJ)  # another track has its own moq_key
    tx.install(NS, 2, K2, now=1.0)
    tx.set_current(NS, 2, now=1.0)
    assert tx.protect(NS, b"cam", OBJ).key_id == 2


def test_usage_limit_ctr_hmac_counts_decryptions() -> None:
    """§6.3: for AES-CTR-HMAC both directions count, failed decryptions included."""
    tx, rx = KeyRing(1, usage_limit=10), KeyRing(1, usage_limit=2)
    for ring in (tx, rx):
        ring.install(NS, 1, K1, now=0.0)
    tx.set_current(NS, 1, now=0.0)
    sealed = tx.protect(NS, b"cam", OBJ)
    with pytest.raises(AuthenticationError):
        rx.unprotect(NS, b"cam", dataclasses.replace(sealed, object_id=99), now=0.0)
    assert rx.unprotect(NS, b"cam", sealed, now=0.0) == OBJ
    with pytest.raises(KeyUsageLimitError):
        rx.unprotect(NS, b"cam", sealed, now=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=4), min_size=1, max_size=3).map(tuple),
    st.binary(max_size=6),
    st.lists(st.builds(Property, st.integers(0, 0xFFFF), st.binary(max_size=10)), max_size=3),
    st.binary(max_size=40),
)
def test_fuzz_ring_unprotect(
    ns: tuple[bytes, ...], track: bytes, props: list[Property], payload: bytes
) -> None:
    """Anything a relay can send — namespace, track, properties, payload — gives a
    SecureObjectError, and the ring keeps working afterwards."""
    tx, rx = sender_and_receiver()
    received = SecureObject(1, 2, 3, tuple(props), payload)
    with pytest.raises(SecureObjectError):
        rx.unprotect(ns, track, received, now=0.0)
    with pytest.raises(SecureObjectError):
        rx.unprotect(NS, track, received, now=0.0)
    assert rx.unprotect(NS, b"cam", tx.protect(NS, b"cam", OBJ), now=0.0) == OBJ
