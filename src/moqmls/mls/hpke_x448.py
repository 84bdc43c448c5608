"""The parts of HPKE (RFC 9180) that `cryptography.hazmat.primitives.hpke` does not offer.

`cryptography`'s HPKE covers base-mode seal/open for DHKEM(X25519), DHKEM(P-256/384/521). MLS
also needs DeriveKeyPair (RFC 9180 §7.1.3) for every KEM, and the whole of base mode for
DHKEM(X448, HKDF-SHA512) (cipher suites 0x0004 and 0x0006). Both are written here on
`cryptography`'s X448 / EC primitives and the suite's HKDF; labels follow RFC 9180 §4.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x448

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
X448_N_SECRET: Final = 64
X448_N_PK: Final = 56


class AeadCipher(Protocol):
    """What `cryptography`'s AESGCM and ChaCha20Poly1305 objects offer."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


@dataclass(frozen=True)
class Kdf:
    """HKDF over one hash function (RFC 5869), as RFC 9180 §4 labels it."""

    hash_name: str

    @property
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


def kem_suite_id(kem_id: int) -> bytes:
    """The KEM's suite_id (RFC 9180 §4.1)."""
    return b"KEM" + kem_id.to_bytes(2, "big")


def derive_candidate_scalars(kem_id: int, kdf: Kdf, ikm: bytes, n_sk: int) -> Callable[[], bytes]:
    """RFC 9180 §7.1.3 DeriveKeyPair's candidate stream: each call returns the next candidate.

    For X25519/X448 the first candidate is the private key; for the NIST curves the caller
    masks and range-checks candidates (counter 0, 1, ...).
    """
    suite_id = kem_suite_id(kem_id)
    dkp_prk = kdf.labeled_extract(suite_id, b"", b"dkp_prk", ikm)
    if kem_id in (KEM_X25519, KEM_X448):
        return lambda: kdf.labeled_expand(suite_id, dkp_prk, b"sk", b"", n_sk)
    counter = [0]

    def next_candidate() -> bytes:
        if counter[0] > 255:
            raise InvalidKeyError("DeriveKeyPair: no valid scalar within 256 candidates")
        out = kdf.labeled_expand(suite_id, dkp_prk, b"candidate", bytes((counter[0],)), n_sk)
        counter[0] += 1
        return out

    return next_candidate


@dataclass(frozen=True)
class X448Hpke:
    """HPKE base mode with DHKEM(X448, HKDF-SHA512) and a given KDF and AEAD (RFC 9180 §5)."""

    kdf: Kdf
    aead_id: int
    aead_key_len: int
    aead_nonce_len: int
    aead: Callable[[bytes], AeadCipher]

    @property
    def suite_id(self) -> bytes:
        return (
            b"HPKE"
            + KEM_X448.to_bytes(2, "big")
            + KDF_IDS[self.kdf.hash_name].to_bytes(2, "big")
            + self.aead_id.to_bytes(2, "big")
        )

    def _shared_secret(self, dh: bytes, kem_context: bytes) -> bytes:
        """ExtractAndExpand of DHKEM (RFC 9180 §4.1); DHKEM(X448) always uses HKDF-SHA512."""
        kem_kdf = Kdf("sha512")
        suite_id = kem_suite_id(KEM_X448)
        eae_prk = kem_kdf.labeled_extract(suite_id, b"", b"eae_prk", dh)
        return kem_kdf.labeled_expand(
            suite_id, eae_prk, b"shared_secret", kem_context, X448_N_SECRET
        )

    def _key_and_nonce(self, shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
        """KeySchedule for mode_base (RFC 9180 §5.1); the single-shot API uses sequence 0."""
        sid = self.suite_id
        kdf = self.kdf
        psk_id_hash = kdf.labeled_extract(sid, b"", b"psk_id_hash", b"")
        info_hash = kdf.labeled_extract(sid, b"", b"info_hash", info)
        context = MODE_BASE + psk_id_hash + info_hash
        secret = kdf.labeled_extract(sid, shared_secret, b"secret", b"")
        key = kdf.labeled_expand(sid, secret, b"key", context, self.aead_key_len)
        nonce = kdf.labeled_expand(sid, secret, b"base_nonce", context, self.aead_nonce_len)
        return key, nonce

    def seal(
        self, public_key: x448.X448PublicKey, info: bytes, aad: bytes, plaintext: bytes
    ) -> tuple[bytes, bytes]:
        """SealBase (RFC 9180 §6.1): (enc, ciphertext)."""
        ephemeral = x448.X448PrivateKey.generate()
        enc = ephemeral.public_key().public_bytes_raw()
        dh = _x448_exchange(ephemeral, public_key)
        pk_r = public_key.public_bytes_raw()
        key, nonce = self._key_and_nonce(self._shared_secret(dh, enc + pk_r), info)
        return enc, self.aead(key).encrypt(nonce, plaintext, aad)

    def open(
        self, private_key: x448.X448PrivateKey, enc: bytes, info: bytes, aad: bytes, ct: bytes
    ) -> bytes:
        """OpenBase (RFC 9180 §6.1); any failure is a `DecryptionError`."""
        if len(enc) != X448_N_PK:
            raise DecryptionError(f"X448 enc of {len(enc)} bytes, expected {X448_N_PK}")
        try:
            ephemeral = x448.X448PublicKey.from_public_bytes(enc)
        except ValueError as exc:
            raise DecryptionError(f"invalid X448 enc: {exc}") from exc
        dh = _x448_exchange(private_key, ephemeral)
        pk_r = private_key.public_key().public_bytes_raw()
        key, nonce = self._key_and_nonce(self._shared_secret(dh, enc + pk_r), info)
        try:
            return self.aead(key).decrypt(nonce, ct, aad)
        except InvalidTag:
            raise DecryptionError("HPKE(X448) ciphertext did not authenticate") from None


def _x448_exchange(private_key: x448.X448PrivateKey, public_key: x448.X448PublicKey) -> bytes:
    """DH(sk, pk) for X448; an all-zero (low-order) result is refused (RFC 9180 §7.1.4)."""
    try:
        dh = private_key.exchange(public_key)
    except ValueError as exc:
        raise DecryptionError(f"X448 exchange failed: {exc}") from exc
    if not any(dh):
        raise DecryptionError("X448 exchange produced the all-zero value")
    return dh
