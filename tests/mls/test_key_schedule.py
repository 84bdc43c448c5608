"""The key schedule (RFC 9420 §8): properties the key-schedule and psk_secret vectors leave out."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from moqmls.mls.crypto import SUPPORTED_CIPHER_SUITES, CipherSuite, cipher_suite
from moqmls.mls.errors import DecryptionError
from moqmls.mls.key_schedule import (
    epoch_secrets,
    epoch_secrets_from_joiner,
    external_init_receive,
    external_init_send,
    external_key_pair,
    joiner_secret,
    mls_exporter,
    psk_secret,
    welcome_key_nonce,
    welcome_secret,
)

SUITES = [cipher_suite(s) for s in SUPPORTED_CIPHER_SUITES]
IDS = [f"0x{s.suite_id:04x}" for s in SUITES]
S1 = cipher_suite(0x0001)
CONTEXT = b"group context bytes"


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """ExpandWithLabel for SHA-256 suites, built by hand from RFC 5869 and §8."""
    full = b"MLS 1.0 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(secret, block + info + bytes([i]), hashlib.sha256)
        out, i = out + block, i + 1
    return out[:length]


def test_one_epoch_by_hand() -> None:
    init, commit, psk = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    prk = hmac.digest(init, commit, hashlib.sha256)
    joiner = hkdf_expand_label(prk, b"joiner", CONTEXT, 32)
    member = hmac.digest(joiner, psk, hashlib.sha256)
    epoch = hkdf_expand_label(member, b"epoch", CONTEXT, 32)
    secrets = epoch_secrets(S1, init, commit, psk, CONTEXT)
    assert secrets.joiner_secret == joiner
    assert secrets.welcome_secret == hkdf_expand_label(member, b"welcome", b"", 32)
    assert secrets.epoch_authenticator == hkdf_expand_label(epoch, b"authentication", b"", 32)
    assert secrets.sender_data_secret == hkdf_expand_label(epoch, b"sender data", b"", 32)
    assert secrets.init_secret == hkdf_expand_label(epoch, b"init", b"", 32)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_missing_secrets_are_zero_vectors(suite: CipherSuite) -> None:
    zero = bytes(suite.hash_len)
    init = b"\x07" * suite.hash_len
    assert epoch_secrets(suite, init, None, None, CONTEXT) == epoch_secrets(
        suite, init, zero, zero, CONTEXT
    )
    assert psk_secret(suite, []) == zero


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_joiner_path_matches_member_path(suite: CipherSuite) -> None:
    init, commit, psk = (bytes([i]) * suite.hash_len for i in (1, 2, 3))
    full = epoch_secrets(suite, init, commit, psk, CONTEXT)
    joiner = joiner_secret(suite, init, commit, CONTEXT)
    assert epoch_secrets_from_joiner(suite, joiner, psk, CONTEXT) == full
    assert welcome_secret(suite, joiner, psk) == full.welcome_secret
    key, nonce = welcome_key_nonce(suite, full.welcome_secret)
    assert (len(key), len(nonce)) == (suite.aead_key_len, suite.aead_nonce_len)
    values = [getattr(full, f) for f in full.__dataclass_fields__]
    assert len(set(values)) == len(values)
    assert epoch_secrets(suite, init, commit, psk, CONTEXT + b"!") != full


def test_exporter_hashes_its_context() -> None:
    exporter = b"\x09" * 32
    derived = hkdf_expand_label(exporter, b"app", b"", 32)
    hashed = hashlib.sha256(b"ctx").digest()
    assert mls_exporter(S1, exporter, b"app", b"ctx", 16) == hkdf_expand_label(
        derived, b"exported", hashed, 16
    )
    assert mls_exporter(S1, exporter, b"app", b"ctx", 16) != hkdf_expand_label(
        derived, b"exported", b"ctx", 16
    )


def test_psk_secret_by_hand_and_order() -> None:
    ids, psks = [b"\x01id-a", b"\x01id-b"], [b"psk-a", b"psk-b"]
    zero = bytes(32)
    secret = zero
    for i, (pid, psk) in enumerate(zip(ids, psks, strict=True)):
        extracted = hmac.digest(zero, psk, hashlib.sha256)
        label = pid + i.to_bytes(2, "big") + (2).to_bytes(2, "big")
        psk_input = hkdf_expand_label(extracted, b"derived psk", label, 32)
        secret = hmac.digest(psk_input, secret, hashlib.sha256)
    pairs = list(zip(ids, psks, strict=True))
    assert psk_secret(S1, pairs) == secret
    assert psk_secret(S1, pairs[::-1]) != secret


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_external_init_round_trip(suite: CipherSuite) -> None:
    external_secret = b"\x05" * suite.hash_len
    priv, pub = external_key_pair(suite, external_secret)
    kem_output, init_secret = external_init_send(suite, pub)
    assert len(init_secret) == suite.hash_len
    assert external_init_receive(suite, priv, kem_output) == init_secret
    other_priv, _ = external_key_pair(suite, b"\x06" * suite.hash_len)
    assert external_init_receive(suite, other_priv, kem_output) != init_secret
    with pytest.raises(DecryptionError):
        external_init_receive(suite, priv, kem_output[:-1])
