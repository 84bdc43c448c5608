"""What the sans-I/O member needs from MLS (RFC 9420) and the lock service, as protocols.

`moqmls.e2ee.mls_adapter` implements the MLS ones over `moqmls.mls`; `ReceiptPort` checks
the lock service's signed receipts (`moqmls.e2ee.lock_adapter.LockReceipts`, over
`moqmls.lock.receipt`); the member's unit tests use fakes. Every method that reads bytes
from the network raises a `RejectedObjectError` subclass on bad input and leaves state
unchanged (RFC 9420 processing is all-or-nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class KeyPackageInfo:
    """A validated KeyPackage (RFC 9420 §10.1): who it is for and its signature key."""

    identity: str
    signature_key: bytes
    data: bytes


@dataclass(frozen=True)
class MemberInfo:
    """A leaf of the ratchet tree: its sender-id and signature key (RFC 9420 §7.2)."""

    identity: str
    leaf: int
    signature_key: bytes


@dataclass(frozen=True)
class CommitOutcome:
    """The result of applying a Commit (RFC 9420 §12.4.2)."""

    committer: str
    removed_me: bool


class PendingPort(Protocol):
    """A Commit built without changing state (RFC 9420 §12.4)."""

    @property
    def commit(self) -> bytes: ...

    @property
    def welcome(self) -> bytes | None: ...


class GroupPort(Protocol):
    """One member's MLS group state."""

    @property
    def epoch(self) -> int: ...

    @property
    def group_id(self) -> bytes: ...

    @property
    def hash_length(self) -> int:
        """Nh of the cipher suite (RFC 9420 §5.1)."""
        ...

    def members(self) -> Sequence[MemberInfo]:
        """The members, in leaf order."""
        ...

    def commit_epoch(self, data: bytes) -> int:
        """The epoch a handshake message claims to be sent in (no crypto, no state change)."""
        ...

    def build_commit(self, adds: Sequence[bytes], removes: Sequence[str]) -> PendingPort:
        """Add these KeyPackages and remove these sender-ids, without changing state."""
        ...

    def merge(self, pending: PendingPort) -> None:
        """Apply our own pending commit (RFC 9420 §12.4)."""
        ...

    def apply_commit(self, data: bytes) -> CommitOutcome:
        """Process another member's Commit message (RFC 9420 §12.4.2)."""
        ...

    def leave_proposal(self) -> bytes:
        """A SelfRemove proposal (mls-extensions) as a handshake message."""
        ...

    def read_leave(self, data: bytes) -> str:
        """Validate a leave request; return the sender-id it removes (its sender)."""
        ...

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter(label, context, length) (RFC 9420 §8.5)."""
        ...

    def epoch_authenticator(self) -> bytes:
        """The epoch authenticator (RFC 9420 §8.7)."""
        ...


class IdentityPort(Protocol):
    """A client identity: makes KeyPackages, creates and joins groups."""

    @property
    def sender_id(self) -> str: ...

    def key_package(self) -> bytes:
        """Our current KeyPackage (RFC 9420 §10)."""
        ...

    def renew(self) -> bytes:
        """Forget all state; a fresh signature key and KeyPackage (for re-joining)."""
        ...

    def check_key_package(self, data: bytes) -> KeyPackageInfo:
        """Validate a KeyPackage (RFC 9420 §10.1): signature, suite, lifetime."""
        ...

    def create_group(self, group_id: bytes) -> GroupPort:
        """A one-member group at epoch 0 (RFC 9420 §11)."""
        ...

    def join(self, welcome: bytes) -> GroupPort:
        """Join from a Welcome (RFC 9420 §12.4.3.1); WelcomeNotForUsError if not ours."""
        ...


class ReceiptPort(Protocol):
    """Checks the lock service's receipts of Committed decisions (DESIGN.md "Lock service")."""

    def check(
        self,
        receipt: bytes,
        keys: Mapping[bytes, bytes],
        *,
        group: str,
        epoch: int,
        committer: str,
        commit_hash: bytes | None,
    ) -> bytes:
        """The winning commit's hash the receipt proves for (group, epoch, committer).

        `keys` maps key ids to raw public keys; `commit_hash` None accepts any commit (a
        Welcome's holder has no Commit to hash). ReceiptRejectedError if it proves nothing.
        """
        ...
