"""The member's view of MLS (`moqmls.e2ee.ports`) over `moqmls.mls.group` (RFC 9420).

Handshake messages are PrivateMessages (the group's default), and so is our SelfRemove leave
request (draft-ietf-moq-e2ee-mls-03 §"Join and Leave Requests": it MUST be a PrivateMessage).
Every MLS failure on network input becomes a precise `RejectedObjectError` subclass; MLS
processing is all-or-nothing, so a rejected message leaves the group state as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from moqmls.e2ee.errors import (
    CommitRejectedError,
    KeyPackageRejectedError,
    ProposalRejectedError,
    WelcomeNotForUsError,
    WelcomeRejectedError,
)
from moqmls.e2ee.ports import CommitOutcome, KeyPackageInfo, MemberInfo, PendingPort
from moqmls.mls.codec import guard_decode
from moqmls.mls.crypto import cipher_suite
from moqmls.mls.errors import MLSError
from moqmls.mls.group import CommitProcessed, Group, PendingCommit, ProposalReceived, message_epoch
from moqmls.mls.key_package import key_package_ref, make_key_package, parse_key_package
from moqmls.mls.structs import MLSMessage, ProposalType, WireFormat

DEFAULT_SUITE = 0x0001


def _identity(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class MLSGroup:
    """One member's `moqmls.mls.group.Group`, as the member state machine uses it."""

    def __init__(self, group: Group, clock: Callable[[], float] = time.time) -> None:
        self._group = group
        self._clock = clock
        self._members: tuple[tuple[int, bytes], tuple[MemberInfo, ...]] | None = None

    @property
    def group(self) -> Group:
        return self._group

    @property
    def group_id(self) -> bytes:
        return self._group.group_id

    @property
    def epoch(self) -> int:
        return self._group.epoch

    @property
    def hash_length(self) -> int:
        return self._group.cipher_suite.hash_len

    def _now(self) -> int:
        return int(self._clock())

    def members(self) -> Sequence[MemberInfo]:
        """The members in leaf order (cached: they only change with the epoch)."""
        key = (self._group.epoch, self._group.epoch_authenticator)
        if self._members is None or self._members[0] != key:
            infos = tuple(
                MemberInfo(_identity(m.identity), m.leaf_index, m.signature_key)
                for m in self._group.members
            )
            self._members = (key, infos)
        return self._members[1]

    def _leaves(self) -> dict[str, int]:
        return {_identity(m.identity): m.leaf_index for m in self._group.members}

    def commit_epoch(self, data: bytes) -> int:
        try:
            return message_epoch(data)
        except MLSError as exc:
            raise CommitRejectedError(f"not an MLS group message: {exc}") from exc

    def build_commit(self, adds: Sequence[bytes], removes: Sequence[str]) -> PendingPort:
        """Add and remove in one Commit (RFC 9420 §12.4).

        Leave requests are committed as Removes by value, not as the cached SelfRemove by
        reference: a member that missed the proposal (it arrived before that member reached
        its epoch, or the member caught up by FETCH) can still process the Commit.
        """
        leaves = self._leaves()
        explicit = sorted(leaves[r] for r in removes if r in leaves)
        try:
            return self._group.commit(
                adds=list(adds), removes=explicit, include_pending=False, now=self._now()
            )
        except MLSError as exc:
            raise KeyPackageRejectedError(f"cannot build the commit: {exc}") from exc

    def merge(self, pending: PendingPort) -> None:
        assert isinstance(pending, PendingCommit)
        self._group.merge_pending(pending)

    def apply_commit(self, data: bytes) -> CommitOutcome:
        """RFC 9420 §12.4.2: process another member's Commit."""
        names = {m.leaf_index: _identity(m.identity) for m in self._group.members}
        try:
            event = self._group.process(data, now=self._now())
        except MLSError as exc:
            raise CommitRejectedError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(event, CommitProcessed):
            raise CommitRejectedError(f"a {type(event).__name__} on the Commit track")
        return CommitOutcome(names.get(event.committer, "?"), event.removed_self)

    def leave_proposal(self) -> bytes:
        """A SelfRemove proposal (mls-extensions), as a PrivateMessage."""
        return self._group.propose_self_remove(wire_format=WireFormat.MLS_PRIVATE_MESSAGE)

    def read_leave(self, data: bytes) -> str:
        """Validate and cache a SelfRemove; the sender-id of the member that leaves."""
        try:
            event = self._group.process(data, now=self._now())
        except MLSError as exc:
            raise ProposalRejectedError(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(event, ProposalReceived) or event.proposal_type != (
            ProposalType.SELF_REMOVE
        ):
            raise ProposalRejectedError(f"not a SelfRemove: {event!r}")
        for m in self._group.members:
            if m.leaf_index == event.sender:
                return _identity(m.identity)
        raise ProposalRejectedError(f"sender leaf {event.sender} is not a member")

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        return self._group.export_secret(label, context, length)

    def epoch_authenticator(self) -> bytes:
        return self._group.epoch_authenticator


class MLSIdentity:
    """A client: its current KeyPackage (fresh signature key per identity) and groups."""

    def __init__(
        self, sender_id: str, suite: int = DEFAULT_SUITE, clock: Callable[[], float] = time.time
    ) -> None:
        self.sender_id = sender_id
        self.suite = suite
        self._clock = clock
        self.renew()

    def key_package(self) -> bytes:
        return self._kp

    def renew(self) -> bytes:
        """A new signature key and KeyPackage; the old state is forgotten."""
        self._kp, self._private = make_key_package(self.sender_id.encode(), self.suite)
        self._ref = key_package_ref(cipher_suite(self.suite), self._private.key_package)
        return self._kp

    def check_key_package(self, data: bytes) -> KeyPackageInfo:
        """RFC 9420 §10.1: signature, version, suite (ours), lifetime; UTF-8 identity."""
        try:
            kp = parse_key_package(data)
        except MLSError as exc:
            raise KeyPackageRejectedError(f"{type(exc).__name__}: {exc}") from exc
        if kp.cipher_suite != self.suite:
            raise KeyPackageRejectedError(f"cipher suite {kp.cipher_suite} is not the group's")
        leaf = kp.leaf_node
        now = int(self._clock())
        lifetime = leaf.lifetime
        if lifetime is not None and not lifetime.not_before <= now <= lifetime.not_after:
            raise KeyPackageRejectedError("KeyPackage lifetime does not cover now")
        try:
            identity = (leaf.credential.identity or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise KeyPackageRejectedError("credential identity is not UTF-8") from exc
        return KeyPackageInfo(identity, leaf.signature_key, data)

    def create_group(self, group_id: bytes) -> MLSGroup:
        return MLSGroup(Group.create(self._private, group_id=group_id), self._clock)

    def join(self, welcome: bytes) -> MLSGroup:
        """RFC 9420 §12.4.3.1, after a cheap check that the Welcome names our KeyPackage."""
        try:
            message = guard_decode(lambda: MLSMessage.decode(welcome))
        except MLSError as exc:
            raise WelcomeNotForUsError(f"not an MLSMessage: {exc}") from exc
        body = message.welcome
        if body is None or all(s.new_member != self._ref for s in body.secrets):
            raise WelcomeNotForUsError("no entry for our KeyPackage")
        try:
            group = Group.join_from_welcome(welcome, self._private, now=int(self._clock()))
        except MLSError as exc:
            raise WelcomeRejectedError(f"{type(exc).__name__}: {exc}") from exc
        return MLSGroup(group, self._clock)
