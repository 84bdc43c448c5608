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

from moqmls.secure_objects.errors import UnsupportedCipherSuiteError


class Aead(Protocol):
    """An AEAD bound to one key, called like `cryptography`'s AESGCM (RFC 5116 conventions:
    the tag ends the ciphertext; a failed decryption raises `InvalidTag`)."""

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class AesCtrHmac:
    """AES-CTR + HMAC, encrypt-then-MAC, truncated tag (RFC 9605 §4.5.1)."""

    __slots__ = ("_aes", "_mac", "_tag_len", "tag_size")

    def __init__(self, key: bytes, nka: int, hash_alg: hashes.HashAlgorithm, nt: int) -> None:
        # derive_subkeys: the first Nka bytes encrypt, the remaining Nh bytes authenticate.
        self._aes = algorithms.AES(key[:nka])
        # Keyed once; each tag starts from a copy, which skips HMAC's key setup per object.
        self._mac = hmac.HMAC(key[nka:], hash_alg)
        self.tag_size = nt
        self._tag_len = nt.to_bytes(8, "big")

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        # initial_counter = nonce + 0x00000000
        ctx = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).encryptor()
        return ctx.update(data) + ctx.finalize()

    def compute_tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        """RFC 9605 §4.5.1 compute_tag: HMAC over the three 64-bit lengths, nonce, AAD, CT."""
        mac = self._mac.copy()
        mac.update(
            b"".join(
                (
                    len(aad).to_bytes(8, "big"),
                    len(ct).to_bytes(8, "big"),
                    self._tag_len,
                    nonce,
                    aad,
                    ct,
                )
            )
        )
        return mac.finalize()[: self.tag_size]

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """AEAD.Encrypt(key, nonce, aad, pt)."""
        ct = self._ctr(nonce, data)
        return ct + self.compute_tag(nonce, associated_data or b"", ct)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """AEAD.Decrypt(key, nonce, aad, ct); a short or forged input raises `InvalidTag`."""
        if len(data) < self.tag_size:
            raise InvalidTag
        inner, tag = data[: -self.tag_size], data[-self.tag_size :]
        candidate = self.compute_tag(nonce, associated_data or b"", inner)
        if not constant_time.bytes_eq(tag, candidate):
            raise InvalidTag
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

    def aead(self, key: bytes) -> Aead:
        """The AEAD of this suite bound to ``key`` (AEAD.Nk bytes)."""
        if len(key) != self.nk:
            raise ValueError(f"{self.name} needs a {self.nk}-byte key, got {len(key)}")
        if self.nka is None:
            return AESGCM(key)
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
