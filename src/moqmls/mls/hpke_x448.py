"""The parts of HPKE (RFC 9180) that `cryptography.hazmat.primitives.hpke` does not offer.

`cryptography`'s HPKE does base-mode seal/open for DHKEM(X25519) and DHKEM(P-256/384/521) and
nothing else. MLS also needs DHKEM(X448, HKDF-SHA512) (cipher suites 0x0004 and 0x0006),
DeriveKeyPair (RFC 9180 §7.1.3) for every KEM, and the secret export interface (§5.3) for
external joins (RFC 9420 §8.3). This module is one generic implementation of DHKEM (§4.1) and
the base-mode key schedule (§5.1) over `cryptography`'s X25519/X448/ECDH primitives and HKDF;
`moqmls.mls.crypto` uses it where `cryptography`'s own HPKE cannot serve.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from moqmls.mls.errors import DecryptionError, InvalidKeyError

HPKE_V1: Final = b"HPKE-v1"
MODE_BASE: Final = b"\x00"

# RFC 9180 §7: identifiers of the algorithms MLS's cipher suites use.
KEM_P256: Final = 0x0010
KEM_P384: Final = 0x0011
KEM_P521: Final = 0x0012
KEM_X25519: Final = 0x0020
KEM_X448: Final = 0x0021
KDF_IDS: Final = {"sha256": 0x0001, "sha384": 0x0002, "sha512": 0x0003}

DhPrivate = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey
DhPublic = x25519.X25519PublicKey | x448.X448PublicKey | ec.EllipticCurvePublicKey

_CURVES: Final[dict[str, ec.EllipticCurve]] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


class AeadCipher(Protocol):
    """What `cryptography`'s AESGCM and ChaCha20Poly1305 objects offer."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


@dataclass(frozen=True)
class Kdf:
    """HKDF over one hash function (RFC 5869), as RFC 9180 §4 labels it."""

    hash_name: str

    @cached_property
    def hash_len(self) -> int:
        return hashlib.new(self.hash_name).digest_size

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """HKDF-Extract (RFC 5869 §2.2); an empty salt means Nh zero bytes."""
        return hmac.digest(salt or bytes(self.hash_len), ikm, self.hash_name)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """HKDF-Expand (RFC 5869 §2.3)."""
        if length > 255 * self.hash_len:
            raise ValueError(f"HKDF-Expand length {length} too large")
        out = b""
        block = b""
        counter = 1
        while len(out) < length:
            block = hmac.digest(prk, block + info + bytes((counter,)), self.hash_name)
            out += block
            counter += 1
        return out[:length]

    def labeled_extract(self, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        """LabeledExtract (RFC 9180 §4)."""
        return self.extract(salt, HPKE_V1 + suite_id + label + ikm)

    def labeled_expand(
        self, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
    ) -> bytes:
        """LabeledExpand (RFC 9180 §4)."""
        labeled_info = length.to_bytes(2, "big") + HPKE_V1 + suite_id + label + info
        return self.expand(prk, labeled_info, length)


@dataclass(frozen=True)
class DhKem:
    """DHKEM(Group, HKDF) of RFC 9180 §4.1 and §7.1."""

    kem_id: int
    group: str  # "x25519", "x448", "p256", "p384", "p521"
    n_secret: int
    n_pk: int
    n_sk: int
    hash_name: str

    @property
    def suite_id(self) -> bytes:
        """The KEM's suite_id (RFC 9180 §4.1)."""
        return b"KEM" + self.kem_id.to_bytes(2, "big")

    @property
    def curve(self) -> ec.EllipticCurve:
        """The NIST curve of a DHKEM(P-*) (also the suite's ECDSA curve)."""
        return _CURVES[self.group]

    def generate(self) -> DhPrivate:
        """GenerateKeyPair (RFC 9180 §4)."""
        if self.group == "x25519":
            return x25519.X25519PrivateKey.generate()
        if self.group == "x448":
            return x448.X448PrivateKey.generate()
        return ec.generate_private_key(_CURVES[self.group])

    def load_public(self, raw: bytes) -> DhPublic:
        """DeserializePublicKey (RFC 9180 §7.1.1); `InvalidKeyError` when malformed."""
        try:
            if self.group == "x25519":
                return x25519.X25519PublicKey.from_public_bytes(raw)
            if self.group == "x448":
                return x448.X448PublicKey.from_public_bytes(raw)
            if not raw or raw[0] != 0x04:
                raise ValueError("not an uncompressed point")
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[self.group], raw)
        except ValueError as exc:
            raise InvalidKeyError(f"invalid {self.group} public key: {exc}") from exc

    def load_private(self, raw: bytes) -> DhPrivate:
        """DeserializePrivateKey (RFC 9180 §7.1.2); `InvalidKeyError` when malformed."""
        try:
            if self.group == "x25519":
                return x25519.X25519PrivateKey.from_private_bytes(raw)
            if self.group == "x448":
                return x448.X448PrivateKey.from_private_bytes(raw)
            if len(raw) != self.n_sk:
                raise ValueError(f"{len(raw)} bytes, expected {self.n_sk}")
            return ec.derive_private_key(int.from_bytes(raw, "big"), _CURVES[self.group])
        except ValueError as exc:
            raise InvalidKeyError(f"invalid {self.group} private key: {exc}") from exc

    def dh(self, private_key: DhPrivate, public_key: DhPublic) -> bytes:
        """DH(skX, pkY); a failed or all-zero (low-order) result raises `DecryptionError`."""
        try:
            if isinstance(private_key, ec.EllipticCurvePrivateKey):
                assert isinstance(public_key, ec.EllipticCurvePublicKey)
                out = private_key.exchange(ec.ECDH(), public_key)
            elif isinstance(private_key, x25519.X25519PrivateKey):
                assert isinstance(public_key, x25519.X25519PublicKey)
                out = private_key.exchange(public_key)
            else:
                assert isinstance(public_key, x448.X448PublicKey)
                out = private_key.exchange(public_key)
        except ValueError as exc:
            raise DecryptionError(f"{self.group} key exchange failed: {exc}") from exc
        if not any(out):
            raise DecryptionError(f"{self.group} key exchange produced the all-zero value")
        return out

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        kdf = Kdf(self.hash_name)
        eae_prk = kdf.labeled_extract(self.suite_id, b"", b"eae_prk", dh)
        return kdf.labeled_expand(
            self.suite_id, eae_prk, b"shared_secret", kem_context, self.n_secret
        )

    def encap(self, pk_r: DhPublic, pk_r_raw: bytes) -> tuple[bytes, bytes]:
        """Encap (RFC 9180 §4.1): (shared_secret, enc)."""
        ephemeral = self.generate()
        enc = public_bytes(ephemeral.public_key())
        dh = self.dh(ephemeral, pk_r)
        return self._extract_and_expand(dh, enc + pk_r_raw), enc

    def decap(self, enc: bytes, sk_r: DhPrivate, pk_r_raw: bytes) -> bytes:
        """Decap (RFC 9180 §4.1); a malformed ``enc`` raises `DecryptionError`."""
        if len(enc) != self.n_pk:
            raise DecryptionError(f"enc of {len(enc)} bytes, expected {self.n_pk}")
        try:
            pk_e = self.load_public(enc)
        except InvalidKeyError as exc:
            raise DecryptionError(str(exc)) from exc
        return self._extract_and_expand(self.dh(sk_r, pk_e), enc + pk_r_raw)

    def derive_key_pair(self, ikm: bytes) -> DhPrivate:
        """DeriveKeyPair (RFC 9180 §7.1.3)."""
        kdf = Kdf(self.hash_name)
        sid = self.suite_id
        dkp_prk = kdf.labeled_extract(sid, b"", b"dkp_prk", ikm)
        if self.group in ("x25519", "x448"):
            return self.load_private(kdf.labeled_expand(sid, dkp_prk, b"sk", b"", self.n_sk))
        order = _CURVE_ORDERS[self.group]
        mask = 0x01 if self.group == "p521" else 0xFF
        for counter in range(256):
            candidate = kdf.labeled_expand(sid, dkp_prk, b"candidate", bytes((counter,)), self.n_sk)
            scalar = int.from_bytes(bytes((candidate[0] & mask,)) + candidate[1:], "big")
            if 0 < scalar < order:
                return ec.derive_private_key(scalar, _CURVES[self.group])
        raise InvalidKeyError("DeriveKeyPair: no valid scalar within 256 candidates")


_CURVE_ORDERS: Final = {
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "p384": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
    "p521": int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    ),
}

KEMS: Final = {
    KEM_X25519: DhKem(KEM_X25519, "x25519", 32, 32, 32, "sha256"),
    KEM_X448: DhKem(KEM_X448, "x448", 64, 56, 56, "sha512"),
    KEM_P256: DhKem(KEM_P256, "p256", 32, 65, 32, "sha256"),
    KEM_P384: DhKem(KEM_P384, "p384", 48, 97, 48, "sha384"),
    KEM_P521: DhKem(KEM_P521, "p521", 64, 133, 66, "sha512"),
}


def public_bytes(key: DhPublic) -> bytes:
    """SerializePublicKey (RFC 9180 §7.1.1): raw for X25519/X448, uncompressed for NIST."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        n = (key.curve.key_size + 7) // 8
        numbers = key.public_numbers()
        return b"\x04" + numbers.x.to_bytes(n, "big") + numbers.y.to_bytes(n, "big")
    return key.public_bytes_raw()


def private_bytes(key: DhPrivate, n_sk: int) -> bytes:
    """SerializePrivateKey (RFC 9180 §7.1.2): raw, or the big-endian scalar of Nsk bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes(n_sk, "big")
    return key.private_bytes_raw()


@dataclass(frozen=True)
class _Context:
    """The base-mode context of one single-shot operation: key, nonce, exporter secret."""

    key: bytes
    base_nonce: bytes
    exporter_secret: bytes


@dataclass(frozen=True)
class Hpke:
    """HPKE base mode (RFC 9180 §5-§6) for one KEM, KDF and AEAD, single-shot (sequence 0)."""

    kem: DhKem
    kdf: Kdf
    aead_id: int
    aead_key_len: int
    aead_nonce_len: int
    aead: Callable[[bytes], AeadCipher]

    @property
    def suite_id(self) -> bytes:
        return (
            b"HPKE"
            + self.kem.kem_id.to_bytes(2, "big")
            + KDF_IDS[self.kdf.hash_name].to_bytes(2, "big")
            + self.aead_id.to_bytes(2, "big")
        )

    def _key_schedule(self, shared_secret: bytes, info: bytes) -> _Context:
        """KeySchedule for mode_base (RFC 9180 §5.1)."""
        sid = self.suite_id
        kdf = self.kdf
        psk_id_hash = kdf.labeled_extract(sid, b"", b"psk_id_hash", b"")
        info_hash = kdf.labeled_extract(sid, b"", b"info_hash", info)
        context = MODE_BASE + psk_id_hash + info_hash
        secret = kdf.labeled_extract(sid, shared_secret, b"secret", b"")
        return _Context(
            kdf.labeled_expand(sid, secret, b"key", context, self.aead_key_len),
            kdf.labeled_expand(sid, secret, b"base_nonce", context, self.aead_nonce_len),
            kdf.labeled_expand(sid, secret, b"exp", context, kdf.hash_len),
        )

    def seal(
        self, pk_r: DhPublic, pk_r_raw: bytes, info: bytes, aad: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """SealBase (RFC 9180 §6.1): (enc, ciphertext)."""
        shared_secret, enc = self.kem.encap(pk_r, pk_r_raw)
        ctx = self._key_schedule(shared_secret, info)
        return enc, self.aead(ctx.key).encrypt(ctx.base_nonce, plaintext, aad)

    def open(
        self, sk_r: DhPrivate, pk_r_raw: bytes, enc: bytes, info: bytes, aad: bytes, ct: bytes
    ) -> bytes:
        """OpenBase (RFC 9180 §6.1); any failure raises `DecryptionError`."""
        ctx = self._key_schedule(self.kem.decap(enc, sk_r, pk_r_raw), info)
        try:
            return self.aead(ctx.key).decrypt(ctx.base_nonce, ct, aad)
        except InvalidTag:
            raise DecryptionError("HPKE ciphertext did not authenticate") from None

    def send_export(
        self, pk_r: DhPublic, pk_r_raw: bytes, info: bytes, exporter_context: bytes, length: int
    ) -> tuple[bytes, bytes]:
        """SendExport (RFC 9180 §6.2): (enc, exported secret)."""
        shared_secret, enc = self.kem.encap(pk_r, pk_r_raw)
        ctx = self._key_schedule(shared_secret, info)
        return enc, self._export(ctx, exporter_context, length)

    def receive_export(
        self,
        sk_r: DhPrivate,
        pk_r_raw: bytes,
        enc: bytes,
        info: bytes,
        exporter_context: bytes,
        length: int,
    ) -> bytes:
        """ReceiveExport (RFC 9180 §6.2)."""
        ctx = self._key_schedule(self.kem.decap(enc, sk_r, pk_r_raw), info)
        return self._export(ctx, exporter_context, length)

    def _export(self, ctx: _Context, exporter_context: bytes, length: int) -> bytes:
        """Context.Export (RFC 9180 §5.3)."""
        return self.kdf.labeled_expand(
            self.suite_id, ctx.exporter_secret, b"sec", exporter_context, length
        )
