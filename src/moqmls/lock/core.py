"""The lock service's decision logic, sans-I/O (DESIGN.md "Lock service").

Every operation is a pure decision over a snapshot of one group's state: the decide_*
functions take the snapshot (which carries the server's time), the request and a fresh
nonce, and return the answer plus the change to write with it. No clocks, randomness or
I/O here; each store (`moqmls.lock.store`) only makes read-decide-write atomic.

Decisions are idempotent, so a request with an unknown outcome can simply be repeated: a
repeated lock with the same request_id returns the same token, a repeated complete of a
token that already committed answers Committed again, a repeated create_or_join by the
creating holder returns its token again.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from moqmls.lock.errors import BadRequestError, ForbiddenError, NotFoundError
from moqmls.lock.model import (
    Acquired,
    Committed,
    CompleteResult,
    Create,
    Created,
    CreateOrJoinResult,
    Fenced,
    GroupHead,
    GroupStatus,
    Join,
    Lease,
    Locked,
    LockResult,
    Stale,
    StoredEpoch,
    Token,
)

R = TypeVar("R")
MayActAs = Callable[[str], bool]
#: Signs one Committed decision: (group, epoch, commit hash in hex, committer) -> receipt.
Sign = Callable[[str, int, str, str], bytes]


@dataclass(frozen=True)
class Snapshot:
    """One group's state as read inside a transaction.

    `live` says whether `lease` still holds by the store's clock (memory and SQLite compare
    `expires_at_ms` with server time; in etcd a lease key exists only while its etcd lease
    lives). `record` is the epoch record the decision asked for, if stored.
    """

    now_ms: int
    head: GroupHead | None
    lease: Lease | None
    live: bool
    record: StoredEpoch | None = None


@dataclass(frozen=True)
class Decision(Generic[R]):
    """A decision's answer and the change to write with it in the same atomic step."""

    result: R
    head: GroupHead | None = None  # new head to write
    lease: Lease | None = None  # new lease to write
    clear_lease: bool = False
    record: StoredEpoch | None = None  # epoch record to add
    prune_below: int | None = None  # delete epoch records below this epoch

    @property
    def writes(self) -> bool:
        """Whether the decision changes anything."""
        return (
            self.head is not None
            or self.lease is not None
            or self.clear_lease
            or self.record is not None
        )


def _same(stored: str, presented: str) -> bool:
    """Token equality in constant time: a token is a secret capability."""
    return hmac.compare_digest(stored.encode(), presented.encode())


def _retry_after(lease: Lease, now_ms: int) -> int:
    return max(1, min(lease.ttl_ms, lease.expires_at_ms - now_ms))


def check_may_act(holder: str, may_act_as: MayActAs | None) -> None:
    """ForbiddenError unless the caller may act as `holder` (no predicate: anyone may)."""
    if may_act_as is not None and not may_act_as(holder):
        raise ForbiddenError(f"not allowed to act as holder {holder!r:.80}")


def decide_create_or_join(
    snap: Snapshot, group: str, holder: str, ttl_ms: int, nonce: str
) -> Decision[CreateOrJoinResult]:
    """create_or_join: Join if the group exists, Locked while another holder creates it."""
    if snap.head is not None:
        return Decision(Join(snap.head.epoch))
    lease = snap.lease
    if lease is not None and snap.live:
        if lease.holder == holder:
            return Decision(Create(lease.token, _retry_after(lease, snap.now_ms)))
        return Decision(Locked(_retry_after(lease, snap.now_ms), lease.holder))
    fence = 0 if lease is None else Token.parse(lease.token).fence + 1
    token = str(Token(group, None, fence, nonce))
    new = Lease(token, holder, None, ttl_ms, snap.now_ms + ttl_ms, None)
    return Decision(Create(token, ttl_ms), lease=new)


def decide_lock(
    snap: Snapshot,
    group: str,
    epoch: int,
    holder: str,
    ttl_ms: int,
    request_id: str | None,
    nonce: str,
) -> Decision[LockResult]:
    """lock(E): Acquired on the current epoch when free, Locked when held, Stale when past."""
    head = snap.head
    if head is None:
        raise NotFoundError(f"group {group!r} does not exist")
    if epoch > head.epoch:
        raise BadRequestError(f"epoch {epoch} is ahead of the group's epoch {head.epoch}")
    if epoch < head.epoch:
        return Decision(Stale(head.epoch))
    lease = snap.lease
    if lease is not None and snap.live:
        same_request = (
            request_id is not None
            and lease.request_id == request_id
            and lease.holder == holder
            and lease.epoch == epoch
        )
        if same_request:
            return Decision(Acquired(lease.token, _retry_after(lease, snap.now_ms)))
        return Decision(Locked(_retry_after(lease, snap.now_ms), lease.holder))
    fence = head.fence + 1
    token = str(Token(group, epoch, fence, nonce))
    new = Lease(token, holder, epoch, ttl_ms, snap.now_ms + ttl_ms, request_id)
    return Decision(Acquired(token, ttl_ms), head=replace(head, fence=fence), lease=new)


@dataclass(frozen=True)
class CompleteRequest:
    """A validated complete request."""

    token: Token
    text: str
    commit_hash: str | None
    commit: bytes | None
    welcome: bytes | None


def decide_complete(
    snap: Snapshot,
    req: CompleteRequest,
    retain_epochs: int,
    may_act_as: MayActAs | None,
    sign: Sign,
) -> Decision[CompleteResult]:
    """complete: the one linearisation point; advances the epoch only under a live lease.

    The receipt is signed here and stored with the record, so that a repeated complete,
    the epoch record and the status history all give the same one.
    """
    if req.token.epoch is None:
        return _decide_complete_create(snap, req, may_act_as)
    epoch = req.token.epoch
    done = snap.record
    if done is not None and _same(done.token, req.text):
        check_may_act(done.committer, may_act_as)
        return Decision(Committed(epoch + 1, done.receipt))
    lease, head = snap.lease, snap.head
    if lease is None or not snap.live or not _same(lease.token, req.text) or head is None:
        return Decision(Fenced())
    if head.epoch != epoch:
        return Decision(Fenced())
    check_may_act(lease.holder, may_act_as)
    if req.commit_hash is None:
        raise BadRequestError("complete of an epoch lease needs commit_hash")
    receipt = sign(req.token.group, epoch, req.commit_hash, lease.holder)
    record = StoredEpoch(
        epoch, req.commit_hash, lease.holder, req.text, req.commit, req.welcome, receipt
    )
    prune = epoch + 1 - retain_epochs
    return Decision(
        Committed(epoch + 1, receipt),
        head=replace(head, epoch=epoch + 1),
        clear_lease=True,
        record=record,
        prune_below=prune if prune > 0 else None,
    )


def _decide_complete_create(
    snap: Snapshot, req: CompleteRequest, may_act_as: MayActAs | None
) -> Decision[CompleteResult]:
    head, lease = snap.head, snap.lease
    if head is not None:
        return Decision(Created() if _same(head.created_token, req.text) else Fenced())
    if lease is None or not snap.live or not _same(lease.token, req.text):
        return Decision(Fenced())
    check_may_act(lease.holder, may_act_as)
    if req.commit_hash is not None or req.commit is not None or req.welcome is not None:
        raise BadRequestError("complete of a create lease takes no commit")
    head = GroupHead(req.token.group, 0, req.token.fence, req.text)
    return Decision(Created(), head=head, clear_lease=True)


def decide_release(snap: Snapshot, token: str, may_act_as: MayActAs | None) -> Decision[None]:
    """release: drop the lease if `token` is still the current one; otherwise nothing."""
    lease = snap.lease
    if lease is None or not _same(lease.token, token):
        return Decision(None)
    check_may_act(lease.holder, may_act_as)
    return Decision(None, clear_lease=True)


def status_of(snap: Snapshot, history: list[StoredEpoch]) -> GroupStatus:
    """status: what a client may learn about a group."""
    if snap.head is None and (snap.lease is None or not snap.live):
        raise NotFoundError("no such group")
    holder = snap.lease.holder if snap.lease is not None and snap.live else None
    epoch = snap.head.epoch if snap.head is not None else None
    entries = tuple(r.entry() for r in sorted(history, key=lambda r: r.epoch))
    return GroupStatus(snap.head is not None, epoch, holder, entries)
