"""Cipher suites (RFC 9420 §5.1) and HPKE (RFC 9180): properties, negative cases, cross-checks.

The official crypto-basics vectors run in test_vectors.py; these tests add what the vectors
cannot show: tampering is refused with precise errors, the generic HPKE implementation agrees
with `cryptography`'s own, and RFC 9180's published vector for DHKEM(X25519) holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls.crypto import (
    SUPPORTED_CIPHER_SUITES,
    CipherSuite,
    cipher_suite,
    clear_private_key_caches,
)
from moqmls.mls.errors import (
    CryptoError,
    DecryptionError,
    InvalidKeyError,
    MLSError,
    UnsupportedCipherSuiteError,
)
from moqmls.mls.hpke_x448 import (
    KEM_P256,
    KEM_P384,
    KEM_P521,
    KEM_X25519,
    KEMS,
    Hpke,
    Kdf,
    private_bytes,
    public_bytes,
)

SUITES = [cipher_suite(s) for s in SUPPORTED_CIPHER_SUITES]
IDS = [f"0x{s.suite_id:04x}" for s in SUITES]


def _id(suite: CipherSuite) -> str:
    return f"0x{suite.suite_id:04x}"


def flip(data: bytes, index: int = 0) -> bytes:
    """``data`` with one bit of byte ``index`` flipped."""
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def test_all_seven_suites_and_their_sizes() -> None:
    # RFC 9420 §17.1 names the sizes: 128-bit suites use SHA-256 and 16- or 32-byte AEAD keys.
    expected = {
        1: (32, 16),
        2: (32, 16),
        3: (32, 32),
        4: (64, 32),
        5: (64, 32),
        6: (64, 32),
        7: (48, 32),
    }
    assert {s.suite_id: (s.hash_len, s.aead_key_len) for s in SUITES} == expected
    assert all(s.aead_nonce_len == 12 for s in SUITES)


@pytest.mark.parametrize("bad", [0x0000, 0x0008, 0xF000, 0xFFFF])
def test_unsupported_suite(bad: int) -> None:
    with pytest.raises(UnsupportedCipherSuiteError):
        cipher_suite(bad)


# -- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_sign_verify_and_tampering(suite: CipherSuite) -> None:
    priv, pub = suite.generate_signature_key_pair()
    assert suite.signature_public_key(priv) == pub
    sig = suite.sign_with_label(priv, b"LeafNodeTBS", b"content")
    assert suite.verify_with_label(pub, b"LeafNodeTBS", b"content", sig)
    assert not suite.verify_with_label(pub, b"LeafNodeTBS", b"content", flip(sig, len(sig) - 1))
    assert not suite.verify_with_label(pub, b"LeafNodeTBS", b"contenT", sig)
    assert not suite.verify_with_label(pub, b"KeyPackageTBS", b"content", sig)
    assert not suite.verify_with_label(pub, b"LeafNodeTBS", b"content", b"")
    _, other_pub = suite.generate_signature_key_pair()
    assert not suite.verify_with_label(other_pub, b"LeafNodeTBS", b"content", sig)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_signature_encoding(suite: CipherSuite) -> None:
    # RFC 9420 §5.1.2: ECDSA signatures are DER-encoded, EdDSA signatures are raw (RFC 8032).
    priv, _ = suite.generate_signature_key_pair()
    sig = suite.sign_with_label(priv, b"x", b"y")
    if suite.signature_scheme.startswith("ed"):
        assert len(sig) == {"ed25519": 64, "ed448": 114}[suite.signature_scheme]
    else:
        r, s = decode_dss_signature(sig)
        assert r > 0 and s > 0


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_malformed_signature_keys(suite: CipherSuite) -> None:
    priv, pub = suite.generate_signature_key_pair()
    sig = suite.sign_with_label(priv, b"x", b"y")
    # An EC point must be uncompressed (0x04 prefix); EdDSA keys have a fixed length.
    odd = b"\x05" + pub[1:] if suite.signature_scheme.startswith("p") else b"\x01"
    for bad in (b"", pub[:-1], pub + b"\x00", odd):
        with pytest.raises(InvalidKeyError):
            suite.verify_with_label(bad, b"x", b"y", sig)
    # An EdDSA private key has a fixed length; an ECDSA scalar may be short (leading zero
    # bytes dropped) but never longer than Nsk, zero, or not below the group order.
    bad_privs = [b"", priv + b"\x00"]
    if suite.signature_scheme.startswith("ed"):
        bad_privs.append(priv[:-1])
    else:
        bad_privs += [bytes(len(priv)), b"\xff" * len(priv)]
    for bad in bad_privs:
        with pytest.raises(InvalidKeyError):
            suite.sign_with_label(bad, b"x", b"y")


@pytest.mark.parametrize("suite", [s for s in SUITES if s.kem.group.startswith("p")], ids=_id)
@pytest.mark.parametrize("scalar", [0x1234, 0xABCDEF << 200])
def test_short_nist_scalars_are_the_same_integer(suite: CipherSuite, scalar: int) -> None:
    """A private scalar written without its leading zero bytes (as the RFC 9420 vectors do
    for some P-521 keys) is accepted as the same key, for signatures and HPKE alike."""
    curve = KEMS[suite.kem.kem_id].curve
    key = ec.derive_private_key(scalar, curve)
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    minimal = scalar.to_bytes((scalar.bit_length() + 7) // 8, "big")
    assert len(minimal) < suite.kem.n_sk
    assert suite.signature_public_key(minimal) == point
    assert suite.hpke_public_key(minimal) == point
    assert suite.verify_with_label(point, b"l", b"c", suite.sign_with_label(minimal, b"l", b"c"))
    kem_output, ct = suite.encrypt_with_label(point, b"l", b"c", b"m")
    assert suite.decrypt_with_label(minimal, b"l", b"c", kem_output, ct) == b"m"


# -- AEAD ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_aead_round_trip_and_tampering(suite: CipherSuite) -> None:
    key, nonce = bytes(range(suite.aead_key_len)), bytes(suite.aead_nonce_len)
    ct = suite.aead_encrypt(key, nonce, b"aad", b"hello")
    assert suite.aead_decrypt(key, nonce, b"aad", ct) == b"hello"
    for args in (
        (key, nonce, b"aaD", ct),
        (key, nonce, b"aad", flip(ct)),
        (key, nonce, b"aad", ct[:-1]),
        (key, nonce, b"aad", b""),
        (flip(key), nonce, b"aad", ct),
        (key, flip(nonce), b"aad", ct),
        (key, nonce[:-1], b"aad", ct),
    ):
        with pytest.raises(DecryptionError):
            suite.aead_decrypt(*args)
    with pytest.raises(InvalidKeyError):
        suite.aead_decrypt(key[:-1], nonce, b"aad", ct)
    with pytest.raises(InvalidKeyError):
        suite.aead_encrypt(key + b"\x00", nonce, b"aad", b"hello")


# -- HPKE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_encrypt_with_label_and_tampering(suite: CipherSuite) -> None:
    priv, pub = suite.generate_key_pair()
    assert suite.hpke_public_key(priv) == pub
    kem_output, ct = suite.encrypt_with_label(pub, b"UpdatePathNode", b"ctx", b"secret")
    assert len(kem_output) == suite.kem.n_pk
    assert suite.decrypt_with_label(priv, b"UpdatePathNode", b"ctx", kem_output, ct) == b"secret"
    other_priv, _ = suite.generate_key_pair()
    for args in (
        (priv, b"UpdatePathNode", b"ctX", kem_output, ct),
        (priv, b"Welcome", b"ctx", kem_output, ct),
        (priv, b"UpdatePathNode", b"ctx", kem_output, flip(ct)),
        (priv, b"UpdatePathNode", b"ctx", kem_output, ct[:-1]),
        (priv, b"UpdatePathNode", b"ctx", flip(kem_output, len(kem_output) - 1), ct),
        (priv, b"UpdatePathNode", b"ctx", kem_output[:-1], ct),
        (priv, b"UpdatePathNode", b"ctx", b"", ct),
        (other_priv, b"UpdatePathNode", b"ctx", kem_output, ct),
    ):
        with pytest.raises(DecryptionError):
            suite.decrypt_with_label(*args)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_malformed_hpke_keys(suite: CipherSuite) -> None:
    priv, pub = suite.generate_key_pair()
    with pytest.raises(InvalidKeyError):
        suite.encrypt_with_label(pub[:-1], b"x", b"", b"m")
    # A NIST-curve scalar may be short (leading zeros dropped), never longer than Nsk.
    bad_privs = [priv + b"\x00"] + ([] if suite.kem.group.startswith("p") else [priv[:-1]])
    for bad in bad_privs:
        with pytest.raises(InvalidKeyError):
            suite.decrypt_with_label(bad, b"x", b"", pub, b"\x00" * 16)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_derive_key_pair_is_deterministic_and_consistent(suite: CipherSuite) -> None:
    a = suite.derive_key_pair(b"\x01" * suite.hash_len)
    assert a == suite.derive_key_pair(b"\x01" * suite.hash_len)
    assert a != suite.derive_key_pair(b"\x02" * suite.hash_len)
    priv, pub = a
    assert len(priv) == suite.kem.n_sk and suite.hpke_public_key(priv) == pub
    kem_output, ct = suite.encrypt_with_label(pub, b"l", b"c", b"m")
    assert suite.decrypt_with_label(priv, b"l", b"c", kem_output, ct) == b"m"


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_hpke_export_agrees(suite: CipherSuite) -> None:
    priv, pub = suite.generate_key_pair()
    kem_output, secret = suite.hpke_send_export(pub, b"info", b"label", suite.hash_len)
    assert len(secret) == suite.hash_len
    assert suite.hpke_receive_export(priv, kem_output, b"info", b"label", suite.hash_len) == secret
    assert suite.hpke_receive_export(priv, kem_output, b"", b"label", suite.hash_len) != secret
    with pytest.raises(DecryptionError):
        suite.hpke_receive_export(priv, kem_output[:-1], b"info", b"label", suite.hash_len)


_LIB = {
    KEM_X25519: hpke.KEM.X25519,
    KEM_P256: hpke.KEM.P256,
    KEM_P384: hpke.KEM.P384,
    KEM_P521: hpke.KEM.P521,
}


@pytest.mark.parametrize("kem_id", sorted(_LIB))
def test_generic_hpke_matches_cryptography(kem_id: int) -> None:
    """The generic DHKEM/base mode (used for X448) interoperates with `cryptography`'s HPKE."""
    kem = KEMS[kem_id]
    ours = Hpke(kem, Kdf("sha256"), 0x0001, 16, 12, AESGCM)
    lib = hpke.Suite(_LIB[kem_id], hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
    sk = kem.generate()
    pk = sk.public_key()
    pk_raw = public_bytes(pk)
    enc, ct = ours.seal(pk, pk_raw, b"info", b"", b"plaintext")
    assert lib.decrypt(enc + ct, sk, b"info") == b"plaintext"  # type: ignore[arg-type]
    sealed = lib.encrypt(b"plaintext", pk, b"info")  # type: ignore[arg-type]
    enc2, ct2 = sealed[: kem.n_pk], sealed[kem.n_pk :]
    assert ours.open(sk, pk_raw, enc2, b"info", b"", ct2) == b"plaintext"


# RFC 9180 Appendix A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, mode_base).
RFC9180_A11 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "ikmR": "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
    "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
    "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "ct0": "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9"
    "6d8770ac83d07bea87e13c512a",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad0": "436f756e742d30",
    "export_ctx": "",
    "export": "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee",
}


def test_rfc9180_x25519_vector() -> None:
    """DeriveKeyPair, Decap + KeySchedule + Open, and Export against RFC 9180 A.1.1."""
    v = {k: bytes.fromhex(x) for k, x in RFC9180_A11.items()}
    kem = KEMS[KEM_X25519]
    sk = kem.derive_key_pair(v["ikmR"])
    assert private_bytes(sk, 32) == v["skRm"]
    assert public_bytes(sk.public_key()) == v["pkRm"]
    ours = Hpke(kem, Kdf("sha256"), 0x0001, 16, 12, AESGCM)
    assert ours.open(sk, v["pkRm"], v["enc"], v["info"], v["aad0"], v["ct0"]) == v["pt"]
    exported = ours.receive_export(sk, v["pkRm"], v["enc"], v["info"], v["export_ctx"], 32)
    assert exported == v["export"]


def test_derive_key_pair_p521_masks_first_byte() -> None:
    # RFC 9180 §7.1.3: P-521 candidates keep only the low bit of the first byte.
    suite = cipher_suite(0x0005)
    for i in range(8):
        priv, _ = suite.derive_key_pair(bytes([i]) * 64)
        assert len(priv) == 66 and priv[0] <= 1


# -- labels and KDF -----------------------------------------------------------------------


def test_expand_with_label_matches_hand_built_kdf_label() -> None:
    suite = cipher_suite(0x0001)
    secret = bytes(32)
    label = b"MLS 1.0 tree"
    info = (32).to_bytes(2, "big") + bytes([len(label)]) + label + bytes([4]) + b"left"
    expected = hmac.digest(secret, info + b"\x01", hashlib.sha256)
    assert suite.expand_with_label(secret, b"tree", b"left", 32) == expected


def test_ref_hash_is_hash_of_ref_hash_input() -> None:
    suite = cipher_suite(0x0002)
    label = b"MLS 1.0 KeyPackage Reference"
    expected = hashlib.sha256(bytes([len(label)]) + label + bytes([3]) + b"abc").digest()
    assert suite.key_package_ref(b"abc") == expected


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=40))
def test_hpke_decryption_of_garbage_raises_only_mls_errors(kem_output: bytes, ct: bytes) -> None:
    for suite_id in (0x0001, 0x0004):
        suite = cipher_suite(suite_id)
        priv, _ = suite.derive_key_pair(b"k" * suite.hash_len)
        with pytest.raises(MLSError) as info:
            suite.decrypt_with_label(priv, b"l", b"", kem_output, ct)
        assert isinstance(info.value, CryptoError)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(SUITES), st.binary(max_size=140))
def test_arbitrary_key_bytes_load_or_raise_invalid_key(suite: CipherSuite, raw: bytes) -> None:
    """Key bytes from the network either load or raise `InvalidKeyError`, nothing else."""
    with contextlib.suppress(InvalidKeyError):
        suite.encrypt_with_label(raw, b"l", b"", b"m")
    with contextlib.suppress(InvalidKeyError):
        suite.verify_with_label(raw, b"l", b"c", b"\x00" * 64)


@pytest.mark.parametrize("suite", SUITES, ids=IDS)
def test_decryption_after_clearing_private_key_caches(suite: CipherSuite) -> None:
    priv, pub = suite.derive_key_pair(b"\x08" * suite.hash_len)
    kem_output, ct = suite.encrypt_with_label(pub, b"l", b"c", b"m")
    clear_private_key_caches()
    assert suite.decrypt_with_label(priv, b"l", b"c", kem_output, ct) == b"m"
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    clear_private_key_caches()
    assert suite.verify_with_label(sig_pub, b"l", b"c", suite.sign_with_label(sig_priv, b"l", b"c"))
