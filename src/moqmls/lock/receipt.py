"""Signed receipts of the lock service's Committed decisions (DESIGN.md "Lock service").

The draft (moq-e2ee-mls-seed, "Centralized Lock Service") leaves the service's API open; we
add one thing to `complete`'s Committed answer: a receipt, the service's Ed25519 signature
(RFC 8032) over which commit won which epoch. A member that holds the service's public key
can then check a Commit's (or a Welcome's) winner from the receipt the committer publishes
beside it, instead of asking the service over HTTP.

A receipt is one struct, defined once in `RECEIPT_FIELDS`; its encoding and decoding come
from that table, and the signed content is the label followed by every field but the
signature::

    struct {
        opaque key_id[8];          // SHA-256(raw Ed25519 public key)[0..8]
        opaque group<1..2^8-1>;    // UTF-8 group name
        uint64 epoch;              // the epoch the commit was sent in (it moves to E + 1)
        opaque commit_hash[32];    // SHA-256 of the Commit's bytes
        opaque committer<1..2^16-1>;  // UTF-8 holder id (the draft's sender-id)
        opaque signature[64];      // Ed25519 over RECEIPT_LABEL-prefixed fields above
    } Receipt;
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from moqmls.lock.errors import (
    BadReceiptSignatureError,
    MalformedReceiptError,
    ReceiptMismatchError,
    UnknownReceiptKeyError,
)

#: Context label of the signed content: a receipt's signature means nothing elsewhere.
RECEIPT_LABEL = b"moqmls lock-service receipt v1"
ALGORITHM = "Ed25519"
KEY_ID_LEN = 8
PUBLIC_KEY_LEN = 32
MAX_U64 = 2**64 - 1


class _Kind(Protocol):
    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes, pos: int) -> tuple[Any, int]: ...


def _take(data: bytes, pos: int, n: int) -> bytes:
    if pos + n > len(data):
        raise MalformedReceiptError("receipt truncated")
    return data[pos : pos + n]


@dataclass(frozen=True)
class _Fixed:
    """opaque x[n]."""

    n: int

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes) or len(value) != self.n:
            raise MalformedReceiptError(f"field needs exactly {self.n} bytes")
        return value

    def decode(self, data: bytes, pos: int) -> tuple[Any, int]:
        return _take(data, pos, self.n), pos + self.n


@dataclass(frozen=True)
class _Text:
    """opaque x<1..2^(8*width)-1>, holding non-empty UTF-8 text."""

    width: int

    def encode(self, value: Any) -> bytes:
        raw = value.encode("utf-8") if isinstance(value, str) else b""
        if not 0 < len(raw) < 1 << (8 * self.width):
            raise MalformedReceiptError("text field empty or too long")
        return len(raw).to_bytes(self.width, "big") + raw

    def decode(self, data: bytes, pos: int) -> tuple[Any, int]:
        n = int.from_bytes(_take(data, pos, self.width), "big")
        raw = _take(data, pos + self.width, n)
        if n == 0:
            raise MalformedReceiptError("empty text field")
        try:
            return raw.decode("utf-8"), pos + self.width + n
        except UnicodeDecodeError as exc:
            raise MalformedReceiptError("text field is not UTF-8") from exc


@dataclass(frozen=True)
class _U64:
    """uint64, big-endian."""

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_U64:
            raise MalformedReceiptError("epoch must be a uint64")
        return value.to_bytes(8, "big")

    def decode(self, data: bytes, pos: int) -> tuple[Any, int]:
        return int.from_bytes(_take(data, pos, 8), "big"), pos + 8


RECEIPT_FIELDS: tuple[tuple[str, _Kind], ...] = (
    ("key_id", _Fixed(KEY_ID_LEN)),
    ("group", _Text(1)),
    ("epoch", _U64()),
    ("commit_hash", _Fixed(32)),
    ("committer", _Text(2)),
    ("signature", _Fixed(64)),
)
_SIGNED = RECEIPT_FIELDS[:-1]


@dataclass(frozen=True)
class Receipt:
    """The service's signed statement: `committer`'s commit `commit_hash` won `epoch`."""

    key_id: bytes
    group: str
    epoch: int
    commit_hash: bytes
    committer: str
    signature: bytes

    def to_be_signed(self) -> bytes:
        """The signed content: the label, then every field but the signature."""
        label = len(RECEIPT_LABEL).to_bytes(1, "big") + RECEIPT_LABEL
        return label + b"".join(kind.encode(getattr(self, name)) for name, kind in _SIGNED)

    def encode(self) -> bytes:
        """The receipt's bytes, as the service answers them and members carry them."""
        return b"".join(kind.encode(getattr(self, name)) for name, kind in RECEIPT_FIELDS)

    @classmethod
    def decode(cls, data: bytes) -> Receipt:
        """Exactly one receipt; MalformedReceiptError for anything else."""
        if not isinstance(data, bytes):
            raise MalformedReceiptError("a receipt is bytes")
        values: dict[str, Any] = {}
        pos = 0
        for name, kind in RECEIPT_FIELDS:
            values[name], pos = kind.decode(data, pos)
        if pos != len(data):
            raise MalformedReceiptError("trailing bytes after the receipt")
        return cls(**values)


@dataclass(frozen=True)
class ServiceKey:
    """One public key of the service, as published at ``GET /v1/keys``."""

    key_id: bytes
    public_key: bytes  # raw Ed25519 (RFC 8032 §5.1.5), 32 bytes

    @classmethod
    def of(cls, public_key: bytes) -> ServiceKey:
        """A key with its id derived from it, so every instance sharing it names it alike."""
        if len(public_key) != PUBLIC_KEY_LEN:
            raise MalformedReceiptError("an Ed25519 public key has 32 bytes")
        return cls(hashlib.sha256(public_key).digest()[:KEY_ID_LEN], public_key)


def new_signing_key() -> bytes:
    """A fresh raw Ed25519 private key (32 bytes)."""
    return Ed25519PrivateKey.generate().private_bytes_raw()


class ReceiptSigner:
    """Signs receipts with one private key (the service side)."""

    def __init__(self, private_key: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(private_key)
        self.key = ServiceKey.of(self._private.public_key().public_bytes_raw())

    def sign(self, group: str, epoch: int, commit_hash: str, committer: str) -> bytes:
        """The encoded receipt of one Committed decision (`commit_hash` in lowercase hex)."""
        unsigned = Receipt(
            self.key.key_id, group, epoch, bytes.fromhex(commit_hash), committer, bytes(64)
        )
        signature = self._private.sign(unsigned.to_be_signed())
        return dataclasses.replace(unsigned, signature=signature).encode()


def key_table(keys: Iterable[ServiceKey]) -> dict[bytes, bytes]:
    """Key id -> raw public key, the form `verify_receipt` takes."""
    return {k.key_id: k.public_key for k in keys}


def verify_receipt(
    data: bytes,
    keys: Mapping[bytes, bytes],
    *,
    group: str,
    epoch: int,
    committer: str,
    commit_hash: bytes | None,
) -> Receipt:
    """Check that `data` is the service's receipt for exactly this decision.

    `commit_hash` None accepts any commit (a Welcome's holder has no Commit bytes to hash);
    the receipt's hash is then the winner's. Raises, in the order checked:
    MalformedReceiptError, UnknownReceiptKeyError, BadReceiptSignatureError,
    ReceiptMismatchError.
    """
    receipt = Receipt.decode(data)
    public = keys.get(receipt.key_id)
    if public is None:
        raise UnknownReceiptKeyError(f"unknown key id {receipt.key_id.hex()}")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(receipt.signature, receipt.to_be_signed())
    except (InvalidSignature, ValueError) as exc:
        raise BadReceiptSignatureError("receipt signature does not verify") from exc
    expected = (group, epoch, committer)
    got = (receipt.group, receipt.epoch, receipt.committer)
    if got != expected or (commit_hash is not None and commit_hash != receipt.commit_hash):
        raise ReceiptMismatchError(
            f"receipt is for {receipt.group!r} epoch {receipt.epoch} by {receipt.committer!r}"
            f" ({receipt.commit_hash.hex()[:16]}), not {group!r} epoch {epoch} by {committer!r}"
        )
    return receipt
