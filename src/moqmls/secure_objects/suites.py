"""Cipher suites 0x0001-0x0005 (draft-ietf-moq-secure-objects §3.4, §7.2) and their AEADs.

AES-GCM comes straight from `cryptography`. AES-CTR-HMAC is the compound AEAD of RFC 9605
§4.5.1, exactly as written there: the tag is HMAC over three 64-bit lengths (AAD, ciphertext,
tag), the nonce, the AAD and the ciphertext, truncated to Nt bytes. (The draft's own CTR-HMAC
test vectors omit the three lengths; see tests/secure_objects/test_vectors.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from moqmls.secure_objects.errors import (
    AuthenticationError,
    TruncatedError,
    UnsupportedCipherSuiteError,
)


class Aead(Protocol):
    """An AEAD bound to one key (RFC 5116 conventions: the tag is part of the ciphertext)."""

    def encrypt(self, nonce: bytes, aad: bytes, pt: bytes) -> bytes: ...

    def decrypt(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes: ...


class AesGcm:
    """AES-GCM with a 16-byte tag (suites 0x0004, 0x0005)."""

    __slots__ = ("_aead",)
    tag_size = 16

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
        return self._aead.encrypt(nonce, pt, aad)

    def decrypt(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        if len(ct) < 16:
            raise TruncatedError(f"ciphertext of {len(ct)} bytes is shorter than the tag")
        try:
            return self._aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise AuthenticationError("AEAD authentication failed") from None


class AesCtrHmac:
    """AES-CTR + HMAC, encrypt-then-MAC, truncated tag (RFC 9605 §4.5.1)."""

    __slots__ = ("_aes", "_auth_key", "_hash", "_tag_len", "tag_size")

    def __init__(self, key: bytes, nka: int, hash_alg: hashes.HashAlgorithm, nt: int) -> None:
        # derive_subkeys: the first Nka bytes encrypt, the remaining Nh bytes authenticate.
        self._aes = algorithms.AES(key[:nka])
        self._auth_key = key[nka:]
        self._hash = hash_alg
        self.tag_size = nt
        self._tag_len = nt.to_bytes(8, "big")

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        # initial_counter = nonce + 0x00000000
        ctx = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).encryptor()
        return ctx.update(data) + ctx.finalize()

    def compute_tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        """RFC 9605 §4.5.1 compute_tag."""
        auth_data = b"".join(
            (
                len(aad).to_bytes(8, "big"),
                len(ct).to_bytes(8, "big"),
                self._tag_len,
                nonce,
                aad,
                ct,
            )
        )
        mac = hmac.HMAC(self._auth_key, self._hash)
        mac.update(auth_data)
        return mac.finalize()[: self.tag_size]

    def encrypt(self, nonce: bytes, aad: bytes, pt: bytes) -> bytes:
        ct = self._ctr(nonce, pt)
        return ct + self.compute_tag(nonce, aad, ct)

    def decrypt(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        if len(ct) < self.tag_size:
            raise TruncatedError(f"ciphertext of {len(ct)} bytes is shorter than the tag")
        inner, tag = ct[: -self.tag_size], ct[-self.tag_size :]
        if not constant_time.bytes_eq(tag, self.compute_tag(nonce, aad, inner)):
            raise AuthenticationError("AEAD authentication failed")
        return self._ctr(nonce, inner)


@dataclass(frozen=True)
class CipherSuite:
    """One row of the cipher-suite table (§7.2): sizes in bytes."""

    value: int
    name: str
    hash_name: str
    nh: int
    nka: int | None
    nk: int
    nn: int
    nt: int

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return hashes.SHA256() if self.hash_name == "sha256" else hashes.SHA512()

    def aead(self, key: bytes) -> AesGcm | AesCtrHmac:
        """The AEAD of this suite bound to ``key`` (AEAD.Nk bytes)."""
        if len(key) != self.nk:
            raise ValueError(f"{self.name} needs a {self.nk}-byte key, got {len(key)}")
        if self.nka is None:
            return AesGcm(key)
        return AesCtrHmac(key, self.nka, self.hash, self.nt)


AES_128_CTR_HMAC_SHA256_80 = CipherSuite(
    0x0001, "AES_128_CTR_HMAC_SHA256_80", "sha256", 32, 16, 48, 12, 10
)
AES_128_CTR_HMAC_SHA256_64 = CipherSuite(
    0x0002, "AES_128_CTR_HMAC_SHA256_64", "sha256", 32, 16, 48, 12, 8
)
AES_128_CTR_HMAC_SHA256_32 = CipherSuite(
    0x0003, "AES_128_CTR_HMAC_SHA256_32", "sha256", 32, 16, 48, 12, 4
)
AES_128_GCM_SHA256_128 = CipherSuite(
    0x0004, "AES_128_GCM_SHA256_128", "sha256", 32, None, 16, 12, 16
)
AES_256_GCM_SHA512_128 = CipherSuite(
    0x0005, "AES_256_GCM_SHA512_128", "sha512", 64, None, 32, 12, 16
)

CIPHER_SUITES: dict[int, CipherSuite] = {
    s.value: s
    for s in (
        AES_128_CTR_HMAC_SHA256_80,
        AES_128_CTR_HMAC_SHA256_64,
        AES_128_CTR_HMAC_SHA256_32,
        AES_128_GCM_SHA256_128,
        AES_256_GCM_SHA512_128,
    )
}


def cipher_suite(value: int | CipherSuite) -> CipherSuite:
    """The suite with this code point (§7.2)."""
    if isinstance(value, CipherSuite):
        return value
    try:
        return CIPHER_SUITES[value]
    except (KeyError, TypeError):
        raise UnsupportedCipherSuiteError(f"cipher suite {value!r} is not supported") from None
