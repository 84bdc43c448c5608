"""The one Store interface and its decision logic (DESIGN.md "Lock service").

Every operation is a pure decision over a snapshot of one group's state: the decide_*
functions below take the snapshot, the request and the server's time and return the answer
plus the change to write. They are sans-I/O and written once; each store only provides an
atomic read-decide-write primitive (`_transact`) and reads (`_read`):

- memory: the event loop makes read-decide-write atomic;
- SQLite: one ``BEGIN IMMEDIATE`` transaction, so several processes on one file stay correct;
- etcd: one transaction whose compares require the revisions that were read (a failed
  compare re-reads and decides again).

Decisions are idempotent so a request with an unknown outcome can simply be repeated: a
repeated lock with the same request_id returns the same token, a repeated complete of a
token that already committed answers Committed again, a repeated create_or_join by the
creating holder returns its token again.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, Self, TypeVar

from moqmls.lock.errors import (
    BadRequestError,
    ForbiddenError,
    HashMismatchError,
    NotFoundError,
)
from moqmls.lock.model import (
    DEFAULT_TTL_MS,
    Acquired,
    Committed,
    CompleteResult,
    Create,
    Created,
    CreateOrJoinResult,
    EpochRecord,
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
    check_commit_hash,
    check_epoch,
    check_group,
    check_holder,
    check_request_id,
    check_ttl_ms,
)

R = TypeVar("R")
MayActAs = Callable[[str], bool]
DEFAULT_RETAIN_EPOCHS = 1024


def wall_clock_ms() -> int:
    """Server time in milliseconds since the epoch; wall time so it survives restarts."""
    return time.time_ns() // 1_000_000


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


def _retry_after(lease: Lease, now_ms: int) -> int:
    return max(1, min(lease.ttl_ms, lease.expires_at_ms - now_ms))


def _check_may_act(holder: str, may_act_as: MayActAs | None) -> None:
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
    snap: Snapshot, req: CompleteRequest, retain_epochs: int, may_act_as: MayActAs | None
) -> Decision[CompleteResult]:
    """complete: the one linearisation point; advances the epoch only under a live lease."""
    if req.token.epoch is None:
        return _decide_complete_create(snap, req, may_act_as)
    epoch = req.token.epoch
    done = snap.record
    if done is not None and done.token == req.text:
        _check_may_act(done.committer, may_act_as)
        return Decision(Committed(epoch + 1))
    lease, head = snap.lease, snap.head
    if lease is None or not snap.live or lease.token != req.text or head is None:
        return Decision(Fenced())
    if head.epoch != epoch:
        return Decision(Fenced())
    _check_may_act(lease.holder, may_act_as)
    if req.commit_hash is None:
        raise BadRequestError("complete of an epoch lease needs commit_hash")
    record = StoredEpoch(epoch, req.commit_hash, lease.holder, req.text, req.commit, req.welcome)
    prune = epoch + 1 - retain_epochs
    return Decision(
        Committed(epoch + 1),
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
        return Decision(Created() if head.created_token == req.text else Fenced())
    if lease is None or not snap.live or lease.token != req.text:
        return Decision(Fenced())
    _check_may_act(lease.holder, may_act_as)
    if req.commit_hash is not None or req.commit is not None or req.welcome is not None:
        raise BadRequestError("complete of a create lease takes no commit")
    head = GroupHead(req.token.group, 0, req.token.fence, req.text)
    return Decision(Created(), head=head, clear_lease=True)


def decide_release(snap: Snapshot, token: str, may_act_as: MayActAs | None) -> Decision[None]:
    """release: drop the lease if `token` is still the current one; otherwise nothing."""
    lease = snap.lease
    if lease is None or lease.token != token:
        return Decision(None)
    _check_may_act(lease.holder, may_act_as)
    return Decision(None, clear_lease=True)


def status_of(snap: Snapshot, history: list[StoredEpoch]) -> GroupStatus:
    """status: what a client may learn about a group."""
    if snap.head is None and (snap.lease is None or not snap.live):
        raise NotFoundError("no such group")
    holder = snap.lease.holder if snap.lease is not None and snap.live else None
    epoch = snap.head.epoch if snap.head is not None else None
    entries = tuple(r.entry() for r in sorted(history, key=lambda r: r.epoch))
    return GroupStatus(snap.head is not None, epoch, holder, entries)


@dataclass(frozen=True)
class StoreOptions:
    """Settings every store shares."""

    clock: Callable[[], int] = wall_clock_ms
    retain_epochs: int = DEFAULT_RETAIN_EPOCHS  # epoch records kept per group
    default_ttl_ms: int = DEFAULT_TTL_MS

    def __post_init__(self) -> None:
        if self.retain_epochs < 1:
            raise ValueError("retain_epochs must be at least 1")
        check_ttl_ms(self.default_ttl_ms)


class Store(abc.ABC):
    """The lock service's state, behind one interface; stores differ only in primitives."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self.clock = self.options.clock

    # ------------------------------------------------------------ primitives

    @abc.abstractmethod
    async def _transact(
        self, group: str, record_epoch: int | None, decide: Callable[[Snapshot], Decision[R]]
    ) -> R:
        """Read the group (and its record of `record_epoch`), decide, write: atomically."""

    @abc.abstractmethod
    async def _read(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        """A consistent read of the group, its record of `record_epoch`, maybe its history."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections and create schemas."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def grant_ttl(self, ttl_ms: int | None) -> int:
        """The lease duration actually granted for a requested one."""
        return self.options.default_ttl_ms if ttl_ms is None else check_ttl_ms(ttl_ms)

    # ------------------------------------------------------------ operations

    async def create_or_join(
        self,
        group: str,
        holder: str,
        *,
        ttl_ms: int | None = None,
        may_act_as: MayActAs | None = None,
    ) -> CreateOrJoinResult:
        """create_or_join(group, holder) -> Create | Join | Locked."""
        check_group(group)
        _check_may_act(check_holder(holder), may_act_as)
        ttl = self.grant_ttl(ttl_ms)
        nonce = secrets.token_hex(16)
        return await self._transact(
            group, None, lambda s: decide_create_or_join(s, group, holder, ttl, nonce)
        )

    async def lock(
        self,
        group: str,
        epoch: int,
        holder: str,
        *,
        ttl_ms: int | None = None,
        request_id: str | None = None,
        may_act_as: MayActAs | None = None,
    ) -> LockResult:
        """lock(group, E, holder) -> Acquired | Locked | Stale."""
        check_group(group)
        check_epoch(epoch)
        _check_may_act(check_holder(holder), may_act_as)
        if request_id is not None:
            check_request_id(request_id)
        ttl = self.grant_ttl(ttl_ms)
        nonce = secrets.token_hex(16)
        return await self._transact(
            group, None, lambda s: decide_lock(s, group, epoch, holder, ttl, request_id, nonce)
        )

    async def complete(
        self,
        token: str,
        *,
        commit_hash: str | None = None,
        commit: bytes | None = None,
        welcome: bytes | None = None,
        may_act_as: MayActAs | None = None,
    ) -> CompleteResult:
        """complete(token, commit_hash, commit, welcome) -> Committed | Created | Fenced."""
        req = _complete_request(token, commit_hash, commit, welcome)
        retain = self.options.retain_epochs
        return await self._transact(
            req.token.group,
            req.token.epoch,
            lambda s: decide_complete(s, req, retain, may_act_as),
        )

    async def release(self, token: str, *, may_act_as: MayActAs | None = None) -> None:
        """release(token): abort; idempotent."""
        group = Token.parse(token).group
        await self._transact(group, None, lambda s: decide_release(s, token, may_act_as))

    async def status(self, group: str) -> GroupStatus:
        """status(group): exists, epoch, current holder, winners per epoch."""
        snap, history = await self._read(check_group(group), None, True)
        return status_of(snap, history)

    async def epoch(self, group: str, epoch: int) -> EpochRecord:
        """The stored record of the commit sent in `epoch` (NotFoundError if none)."""
        snap, _ = await self._read(check_group(group), check_epoch(epoch), False)
        if snap.record is None:
            raise NotFoundError(f"no stored record of epoch {epoch}")
        return snap.record.public()


def _complete_request(
    token: str, commit_hash: str | None, commit: bytes | None, welcome: bytes | None
) -> CompleteRequest:
    parsed = Token.parse(token)
    if commit_hash is not None:
        check_commit_hash(commit_hash)
    if welcome is not None and commit is None:
        raise BadRequestError("welcome needs its commit")
    if commit is not None:
        if commit_hash is None:
            raise BadRequestError("commit needs commit_hash")
        if hashlib.sha256(commit).hexdigest() != commit_hash:
            raise HashMismatchError("commit_hash is not the SHA-256 of commit")
    return CompleteRequest(parsed, token, commit_hash, commit, welcome)
