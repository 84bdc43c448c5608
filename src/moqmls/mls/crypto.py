"""MLS cipher suites 0x0001-0x0007 (RFC 9420 §5.1, §17.1) on `cryptography`.

Hash, HMAC and HKDF (RFC 5869) run on the standard library's OpenSSL-backed `hashlib`/`hmac`
(the per-call cost matters in the secret tree); AEAD, ECDH/X25519/X448 and signatures are
`cryptography`'s. HPKE seal/open is `cryptography.hazmat.primitives.hpke` (the fastest
path); DHKEM(X448), DeriveKeyPair and the HPKE secret export come from `moqmls.mls.hpke_x448`,
one generic RFC 9180 implementation on `cryptography`'s primitives. Keys travel as raw bytes
(RFC 9180 §7.1.1 serialisation; signature keys as the RFC 9420 vectors encode them: EdDSA raw,
ECDSA private scalar / uncompressed point) and are turned into key objects through caches.
NIST-curve private scalars shorter than Nsk (leading zero bytes dropped) are accepted as the
same integer.
ECDSA signatures are DER-encoded (RFC 9420 §5.1.2), EdDSA raw.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, x448
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from moqmls.mls.codec import encode_varint
from moqmls.mls.errors import (
    DecryptionError,
    InvalidKeyError,
    UnsupportedCipherSuiteError,
)
from moqmls.mls.hpke_x448 import (
    KEM_P256,
    KEM_P384,
    KEM_P521,
    KEM_X448,
    KEM_X25519,
    KEMS,
    AeadCipher,
    DhKem,
    DhPrivate,
    DhPublic,
    Hpke,
    Kdf,
    private_bytes,
    public_bytes,
)

MLS_LABEL_PREFIX: Final = b"MLS 1.0 "

# ECDSA keys use the same curves (and key encodings) as the DHKEM of the suite.
_EC_KEMS: Final = {"p256": KEM_P256, "p384": KEM_P384, "p521": KEM_P521}
_SCALAR_LEN: Final = {"p256": 32, "p384": 48, "p521": 66}
_ECDSA_HASH: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "p256": hashes.SHA256,
    "p384": hashes.SHA384,
    "p521": hashes.SHA512,
}


def _opaque(data: bytes) -> bytes:
    """``opaque data<V>`` (RFC 9420 §2.1.2)."""
    n = len(data)
    return (bytes((n,)) if n < 0x40 else encode_varint(n)) + data


@lru_cache(maxsize=256)
def _kdf_label_head(length: int, label: bytes) -> bytes:
    """The fixed start of KDFLabel (§8): ``uint16 length`` and ``"MLS 1.0 " + label``."""
    return length.to_bytes(2, "big") + _opaque(MLS_LABEL_PREFIX + label)


_LIB_KEMS: Final = {
    KEM_X25519: hpke.KEM.X25519,
    KEM_P256: hpke.KEM.P256,
    KEM_P384: hpke.KEM.P384,
    KEM_P521: hpke.KEM.P521,
}
_LIB_KDFS: Final = {
    "sha256": hpke.KDF.HKDF_SHA256,
    "sha384": hpke.KDF.HKDF_SHA384,
    "sha512": hpke.KDF.HKDF_SHA512,
}


# -- key objects from raw bytes ------------------------------------------------------------
# Public keys are cached generously (every member's keys are used again at each commit).
# Private-key caches stay small, since a cached secret outlives its deletion elsewhere until
# evicted; `clear_private_key_caches` drops them at once (e.g. after an epoch change).

_PUBLIC_CACHE: Final = 4096
_PRIVATE_CACHE: Final = 64


_kem_private_cache: OrderedDict[tuple[int, bytes], DhPrivate] = OrderedDict()


def _remember_kem_private(kem_id: int, raw: bytes, key: DhPrivate) -> None:
    """Keep a private key object (least recently used ones are evicted)."""
    _kem_private_cache[(kem_id, raw)] = key
    _kem_private_cache.move_to_end((kem_id, raw))
    if len(_kem_private_cache) > _PRIVATE_CACHE:
        _kem_private_cache.popitem(last=False)


def _full_scalar(kem: DhKem, raw: bytes) -> bytes:
    """A NIST-curve private scalar at its RFC 9180 §7.1.2 length Nsk.

    Some encoders (the RFC 9420 vectors' generator among them) write the scalar as a minimal
    big-endian integer, dropping leading zero bytes (a P-521 key of 65 bytes); left-padding
    with zeros gives the same integer. X25519/X448 keys are byte strings, never padded.
    """
    if kem.group in _SCALAR_LEN and 0 < len(raw) < kem.n_sk:
        return raw.rjust(kem.n_sk, b"\0")
    return raw


def _kem_private(kem_id: int, raw: bytes) -> DhPrivate:
    # A manual LRU, so that DeriveKeyPair can leave the object it built for the decryption
    # that usually follows (loading an X448/P-521 key costs a scalar multiplication).
    key = _kem_private_cache.get((kem_id, raw))
    if key is None:
        kem = KEMS[kem_id]
        key = kem.load_private(_full_scalar(kem, raw))
    _remember_kem_private(kem_id, raw, key)
    return key


@lru_cache(maxsize=_PUBLIC_CACHE)
def _kem_public(kem_id: int, raw: bytes) -> DhPublic:
    return KEMS[kem_id].load_public(raw)


def _ec_private(scheme: str, raw: bytes) -> ec.EllipticCurvePrivateKey:
    kem = KEMS[_EC_KEMS[scheme]]
    key = kem.load_private(_full_scalar(kem, raw))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _ec_public(scheme: str, raw: bytes) -> ec.EllipticCurvePublicKey:
    key = KEMS[_EC_KEMS[scheme]].load_public(raw)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


SigPrivate = ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey | ec.EllipticCurvePrivateKey
SigPublic = ed25519.Ed25519PublicKey | ed448.Ed448PublicKey | ec.EllipticCurvePublicKey


def _sig_public_bytes(key: SigPublic) -> bytes:
    """Signature public keys as the RFC 9420 vectors carry them: raw EdDSA, uncompressed EC."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return public_bytes(key)
    return key.public_bytes_raw()


def _sig_private_bytes(key: SigPrivate, scheme: str) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return private_bytes(key, _SCALAR_LEN[scheme])
    return key.private_bytes_raw()


@lru_cache(maxsize=_PRIVATE_CACHE)
def _sig_private(scheme: str, raw: bytes) -> SigPrivate:
    try:
        if scheme == "ed25519":
            return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        if scheme == "ed448":
            return ed448.Ed448PrivateKey.from_private_bytes(raw)
        return _ec_private(scheme, raw)
    except ValueError as exc:
        raise InvalidKeyError(f"invalid {scheme} signature private key: {exc}") from exc


@lru_cache(maxsize=_PUBLIC_CACHE)
def _sig_public(scheme: str, raw: bytes) -> SigPublic:
    try:
        if scheme == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if scheme == "ed448":
            return ed448.Ed448PublicKey.from_public_bytes(raw)
        return _ec_public(scheme, raw)
    except ValueError as exc:
        raise InvalidKeyError(f"invalid {scheme} signature public key: {exc}") from exc


# -- the cipher suite ---------------------------------------------------------------------


@dataclass(frozen=True)
class CipherSuite:
    """One MLS cipher suite (RFC 9420 §5.1); obtain it with `cipher_suite`."""

    suite_id: int
    name: str
    hash_len: int
    aead_key_len: int
    aead_nonce_len: int
    hash_name: str
    aead_name: str  # "aesgcm" | "chacha20poly1305"
    kem: DhKem
    signature_scheme: str  # "ed25519" | "ed448" | "p256" | "p384" | "p521"
    # hashlib's constructor, bound once: `hashlib.new(name)` looks the name up at every call,
    # and tree hashing calls this thousands of times per join.
    _hash_new: Callable[[bytes], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash_new", getattr(hashlib, self.hash_name))

    # -- hash, MAC, KDF (RFC 9420 §5.1, §8) --

    def hash(self, data: bytes) -> bytes:
        """The suite's hash function."""
        return self._hash_new(data).digest()  # type: ignore[no-any-return]

    def mac(self, key: bytes, data: bytes) -> bytes:
        """HMAC with the suite's hash (RFC 9420 §5.1)."""
        return hmac.digest(key, data, self.hash_name)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """HKDF-Extract (RFC 5869 §2.2)."""
        return self._kdf.extract(salt, ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """HKDF-Expand (RFC 5869 §2.3)."""
        return self._kdf.expand(prk, info, length)

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """ExpandWithLabel (RFC 9420 §8): KDFLabel {length, "MLS 1.0 " + label, context}."""
        kdf_label = _kdf_label_head(length, label) + _opaque(context)
        if length <= self.hash_len:  # one HKDF-Expand block: T(1) = HMAC(PRK, info || 0x01)
            return hmac.digest(secret, kdf_label + b"\x01", self.hash_name)[:length]
        return self._kdf.expand(secret, kdf_label, length)

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        """DeriveSecret (RFC 9420 §8)."""
        return self.expand_with_label(secret, label, b"", self.hash_len)

    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        """RefHash (RFC 9420 §5.2): Hash(RefHashInput {label, value})."""
        return self.hash(_opaque(label) + _opaque(value))

    def key_package_ref(self, key_package: bytes) -> bytes:
        """MakeKeyPackageRef (RFC 9420 §5.2) of an encoded KeyPackage."""
        return self.ref_hash(b"MLS 1.0 KeyPackage Reference", key_package)

    def proposal_ref(self, authenticated_content: bytes) -> bytes:
        """MakeProposalRef (RFC 9420 §5.2) of an encoded AuthenticatedContent."""
        return self.ref_hash(b"MLS 1.0 Proposal Reference", authenticated_content)

    # -- AEAD --

    def _aead(self, key: bytes) -> AeadCipher:
        if len(key) != self.aead_key_len:
            raise InvalidKeyError(f"AEAD key of {len(key)} bytes, expected {self.aead_key_len}")
        if self.aead_name == "aesgcm":
            return AESGCM(key)
        return ChaCha20Poly1305(key)

    def aead_encrypt(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        """AEAD.Seal with the suite's AEAD (RFC 9420 §5.1)."""
        return self._aead(key).encrypt(nonce, plaintext, aad)

    def aead_decrypt(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        """AEAD.Open; a ciphertext that does not authenticate raises `DecryptionError`."""
        if len(nonce) != self.aead_nonce_len:
            raise DecryptionError(f"nonce of {len(nonce)} bytes, expected {self.aead_nonce_len}")
        try:
            return self._aead(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("AEAD ciphertext did not authenticate") from None

    # -- signatures (RFC 9420 §5.1.2) --

    def _sign_content(self, label: bytes, content: bytes) -> bytes:
        return _opaque(MLS_LABEL_PREFIX + label) + _opaque(content)

    def sign_with_label(self, sig_priv: bytes, label: bytes, content: bytes) -> bytes:
        """SignWithLabel (RFC 9420 §5.1.2)."""
        key = _sig_private(self.signature_scheme, sig_priv)
        message = self._sign_content(label, content)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(_ECDSA_HASH[self.signature_scheme]()))
        return key.sign(message)

    def verify_with_label(
        self, sig_pub: bytes, label: bytes, content: bytes, signature: bytes
    ) -> bool:
        """VerifyWithLabel (RFC 9420 §5.1.2); malformed public keys raise `InvalidKeyError`."""
        key = _sig_public(self.signature_scheme, sig_pub)
        message = self._sign_content(label, content)
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, message, ec.ECDSA(_ECDSA_HASH[self.signature_scheme]()))
            else:
                key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def generate_signature_key_pair(self) -> tuple[bytes, bytes]:
        """A fresh signature key pair (private, public) in the vectors' encoding."""
        scheme = self.signature_scheme
        key: SigPrivate
        if scheme == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        elif scheme == "ed448":
            key = ed448.Ed448PrivateKey.generate()
        else:
            key = ec.generate_private_key(KEMS[_EC_KEMS[scheme]].curve)
        return _sig_private_bytes(key, scheme), _sig_public_bytes(key.public_key())

    def signature_public_key(self, sig_priv: bytes) -> bytes:
        """The public key belonging to a signature private key."""
        return _sig_public_bytes(_sig_private(self.signature_scheme, sig_priv).public_key())

    # -- HPKE (RFC 9420 §5.1.3, RFC 9180) --

    def encrypt_with_label(
        self, enc_pub: bytes, label: bytes, context: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """EncryptWithLabel (RFC 9420 §5.1.3): (kem_output, ciphertext)."""
        info = _opaque(MLS_LABEL_PREFIX + label) + _opaque(context)
        public_key = _kem_public(self.kem.kem_id, enc_pub)
        lib = self._lib_hpke
        if lib is None or isinstance(public_key, x448.X448PublicKey):
            return self._hpke.seal(public_key, enc_pub, info, b"", plaintext)
        sealed = lib.encrypt(plaintext, public_key, info)
        return sealed[: self.kem.n_pk], sealed[self.kem.n_pk :]

    def decrypt_with_label(
        self, enc_priv: bytes, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes
    ) -> bytes:
        """DecryptWithLabel (RFC 9420 §5.1.3); any failure raises `DecryptionError`."""
        info = _opaque(MLS_LABEL_PREFIX + label) + _opaque(context)
        private_key = _kem_private(self.kem.kem_id, enc_priv)
        lib = self._lib_hpke
        if lib is None or isinstance(private_key, x448.X448PrivateKey):
            pk_r = self.hpke_public_key(enc_priv)
            return self._hpke.open(private_key, pk_r, kem_output, info, b"", ciphertext)
        if len(kem_output) != self.kem.n_pk:
            raise DecryptionError(f"kem_output of {len(kem_output)} bytes, need {self.kem.n_pk}")
        try:
            return lib.decrypt(kem_output + ciphertext, private_key, info)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(f"HPKE open failed: {exc or 'authentication'}") from None

    def hpke_send_export(
        self, enc_pub: bytes, info: bytes, exporter_context: bytes, length: int
    ) -> tuple[bytes, bytes]:
        """SendExport (RFC 9180 §6.2): (kem_output, secret); for external init (§8.3)."""
        public_key = _kem_public(self.kem.kem_id, enc_pub)
        return self._hpke.send_export(public_key, enc_pub, info, exporter_context, length)

    def hpke_receive_export(
        self, enc_priv: bytes, kem_output: bytes, info: bytes, exporter_context: bytes, length: int
    ) -> bytes:
        """ReceiveExport (RFC 9180 §6.2); a malformed kem_output raises `DecryptionError`."""
        private_key = _kem_private(self.kem.kem_id, enc_priv)
        pk_r = self.hpke_public_key(enc_priv)
        return self._hpke.receive_export(
            private_key, pk_r, kem_output, info, exporter_context, length
        )

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair (RFC 9180 §7.1.3): (private, public) HPKE keys from a secret."""
        return _derive_key_pair(self.kem.kem_id, ikm)

    def generate_key_pair(self) -> tuple[bytes, bytes]:
        """A fresh HPKE key pair (private, public), serialised per RFC 9180 §7.1."""
        key = self.kem.generate()
        return private_bytes(key, self.kem.n_sk), public_bytes(key.public_key())

    def hpke_public_key(self, enc_priv: bytes) -> bytes:
        """The HPKE public key belonging to a private key."""
        return _hpke_public_key(self.kem.kem_id, enc_priv)

    # -- derived helpers (cached per suite id) --

    @property
    def _kdf(self) -> Kdf:
        return _kdf_for(self.hash_name)

    @property
    def _lib_hpke(self) -> hpke.Suite | None:
        return _lib_suite(self.suite_id)

    @property
    def _hpke(self) -> Hpke:
        return _own_suite(self.suite_id)


def clear_private_key_caches() -> None:
    """Forget every cached private key object."""
    _kem_private_cache.clear()
    _sig_private.cache_clear()


def _hpke_public_key(kem_id: int, enc_priv: bytes) -> bytes:
    return public_bytes(_kem_private(kem_id, enc_priv).public_key())


def _derive_key_pair(kem_id: int, ikm: bytes) -> tuple[bytes, bytes]:
    kem = KEMS[kem_id]
    key = kem.derive_key_pair(ikm)
    priv = private_bytes(key, kem.n_sk)
    _remember_kem_private(kem_id, priv, key)
    return priv, public_bytes(key.public_key())


@cache
def _kdf_for(hash_name: str) -> Kdf:
    return Kdf(hash_name)


_AEAD_IDS: Final = {("aesgcm", 16): 0x0001, ("aesgcm", 32): 0x0002, ("chacha20poly1305", 32): 3}
_LIB_AEADS: Final = {
    0x0001: hpke.AEAD.AES_128_GCM,
    0x0002: hpke.AEAD.AES_256_GCM,
    0x0003: hpke.AEAD.CHACHA20_POLY1305,
}


@cache
def _lib_suite(suite_id: int) -> hpke.Suite | None:
    """`cryptography`'s HPKE for the suite, or None when it lacks the KEM (X448)."""
    s = cipher_suite(suite_id)
    lib_kem = _LIB_KEMS.get(s.kem.kem_id)
    if lib_kem is None:
        return None
    aead_id = _AEAD_IDS[(s.aead_name, s.aead_key_len)]
    return hpke.Suite(lib_kem, _LIB_KDFS[s.hash_name], _LIB_AEADS[aead_id])


@cache
def _own_suite(suite_id: int) -> Hpke:
    s = cipher_suite(suite_id)
    aead_id = _AEAD_IDS[(s.aead_name, s.aead_key_len)]
    factory = AESGCM if s.aead_name == "aesgcm" else ChaCha20Poly1305
    return Hpke(s.kem, _kdf_for(s.hash_name), aead_id, s.aead_key_len, s.aead_nonce_len, factory)


# RFC 9420 §17.1, the cipher suites registry: id, name, hash, AEAD, Nk, KEM, signature.
_REGISTRY: Final = (
    (1, "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", "sha256", "aesgcm", 16, KEM_X25519,
     "ed25519"),
    (2, "MLS_128_DHKEMP256_AES128GCM_SHA256_P256", "sha256", "aesgcm", 16, KEM_P256, "p256"),
    (3, "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", "sha256", "chacha20poly1305", 32,
     KEM_X25519, "ed25519"),
    (4, "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", "sha512", "aesgcm", 32, KEM_X448, "ed448"),
    (5, "MLS_256_DHKEMP521_AES256GCM_SHA512_P521", "sha512", "aesgcm", 32, KEM_P521, "p521"),
    (6, "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", "sha512", "chacha20poly1305", 32,
     KEM_X448, "ed448"),
    (7, "MLS_256_DHKEMP384_AES256GCM_SHA384_P384", "sha384", "aesgcm", 32, KEM_P384, "p384"),
)  # fmt: skip
_SUITES: Final = {
    sid: CipherSuite(sid, name, hashlib.new(h).digest_size, nk, 12, h, aead, KEMS[kem_id], sig)
    for sid, name, h, aead, nk, kem_id, sig in _REGISTRY
}

SUPPORTED_CIPHER_SUITES: Final = tuple(_SUITES)
DEFAULT_CIPHER_SUITE: Final = 0x0001


def cipher_suite(suite_id: int) -> CipherSuite:
    """The cipher suite with this id (RFC 9420 §17.1), or `UnsupportedCipherSuiteError`."""
    try:
        return _SUITES[suite_id]
    except KeyError:
        raise UnsupportedCipherSuiteError(f"cipher suite 0x{suite_id:04x}") from None
