"""The one Store interface (DESIGN.md "Lock service").

The decisions live once, sans-I/O, in `moqmls.lock.core`; a store only provides an atomic
read-decide-write primitive (`_transact`) and consistent reads (`_read`):

- memory: the event loop makes read-decide-write atomic;
- SQLite: one ``BEGIN IMMEDIATE`` transaction, so several processes on one file stay correct;
- etcd: one transaction whose compares require the revisions that were read (a failed
  compare re-reads and decides again).

This class adds what the decisions must not do themselves: validating arguments, reading
the clock (through the store's snapshot) and drawing token nonces.

Receipt signing key (`moqmls.lock.receipt`): it lives in the store itself, created once by
whichever service instance needs it first (`_load_signing_key` inserts a fresh key only if
none is stored, atomically, and returns the stored one). Every process sharing one SQLite
file or one etcd cluster therefore signs with the same key and publishes the same key id,
and the embedded service needs no option. Whoever can write the store could already rewrite
its winners, so keeping the key there adds no new party to trust.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

from moqmls.lock.core import (
    CompleteRequest,
    Decision,
    MayActAs,
    R,
    Snapshot,
    check_may_act,
    decide_complete,
    decide_create_or_join,
    decide_lock,
    decide_release,
    status_of,
)
from moqmls.lock.errors import BadRequestError, HashMismatchError, NotFoundError
from moqmls.lock.model import (
    DEFAULT_TTL_MS,
    CompleteResult,
    CreateOrJoinResult,
    EpochRecord,
    GroupStatus,
    LockResult,
    StoredEpoch,
    Token,
    check_commit_hash,
    check_epoch,
    check_group,
    check_holder,
    check_request_id,
    check_ttl_ms,
)
from moqmls.lock.receipt import ReceiptSigner, ServiceKey, new_signing_key

DEFAULT_RETAIN_EPOCHS = 1024


def wall_clock_ms() -> int:
    """Server time in milliseconds since the epoch; wall time so it survives restarts."""
    return time.time_ns() // 1_000_000


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
        self._signer: ReceiptSigner | None = None

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

    @abc.abstractmethod
    async def _load_signing_key(self, candidate: bytes) -> bytes:
        """Store `candidate` as the receipt signing key unless one is stored; return the stored."""

    async def signer(self) -> ReceiptSigner:
        """The receipt signer, its key loaded from (or first created in) the store."""
        if self._signer is None:
            raw = await self._load_signing_key(new_signing_key())
            if self._signer is None:
                self._signer = ReceiptSigner(raw)
        return self._signer

    async def service_keys(self) -> tuple[ServiceKey, ...]:
        """The public keys receipts are signed with (one: the store's)."""
        return ((await self.signer()).key,)

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
        check_may_act(check_holder(holder), may_act_as)
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
        check_may_act(check_holder(holder), may_act_as)
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
        sign = (await self.signer()).sign
        return await self._transact(
            req.token.group,
            req.token.epoch,
            lambda s: decide_complete(s, req, retain, may_act_as, sign),
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
