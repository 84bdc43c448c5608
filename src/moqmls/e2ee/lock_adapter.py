"""The member's lock operations over `moqmls.lock.LockClient` (DESIGN.md "Lock service").

Translates the sans-I/O member's `LockOp`s into lock-service calls and their answers back into
`moqmls.e2ee.events` values. A transport or service failure becomes `LockFailed`, never an
exception: the member decides what to do next. `LockReceipts` is the member's `ReceiptPort`
over `moqmls.lock.receipt`.
"""

from __future__ import annotations

from collections.abc import Mapping

from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import ReceiptRejectedError
from moqmls.lock import (
    Acquired,
    Committed,
    Create,
    Created,
    Fenced,
    Join,
    LockClient,
    LockError,
    ReceiptError,
    Stale,
    verify_receipt,
)

#: Lease asked for on each epoch lock: long enough to build a commit at a few hundred members.
LEASE_MS = 3000


class LockAdapter:
    """One member's view of the lock service for one group."""

    def __init__(self, client: LockClient, group: str, holder: str, lease_ms: int = LEASE_MS):
        self.client = client
        self.group = group
        self.holder = holder
        self.lease_ms = lease_ms

    async def call(self, op: ev.LockOp) -> ev.LockResult:
        """Carry out one operation; every failure is `LockFailed`."""
        try:
            return await self._call(op)
        except LockError as exc:
            return ev.LockFailed(f"{type(exc).__name__}: {exc}")
        except (OSError, TimeoutError) as exc:
            return ev.LockFailed(f"transport: {exc!r}")

    async def _call(self, op: ev.LockOp) -> ev.LockResult:
        if isinstance(op, ev.CreateOrJoin):
            joined = await self.client.create_or_join(self.group, self.holder)
            if isinstance(joined, Create):
                return ev.Create(joined.token)
            if isinstance(joined, Join):
                return ev.Join(joined.epoch)
            return ev.Locked(joined.retry_after_ms / 1000, joined.holder or "")
        if isinstance(op, ev.AcquireLock):
            got = await self.client.lock(self.group, op.epoch, self.holder, ttl_ms=self.lease_ms)
            if isinstance(got, Acquired):
                return ev.Acquired(got.token)
            if isinstance(got, Stale):
                return ev.Stale(got.epoch)
            return ev.Locked(got.retry_after_ms / 1000, got.holder or "")
        if isinstance(op, ev.Complete):
            return await self._complete(op)
        if isinstance(op, ev.Release):
            await self.client.release(op.token)
            return ev.Released()
        if isinstance(op, ev.FetchServiceKeys):
            keys = await self.client.service_keys()
            return ev.ServiceKeys(tuple((k.key_id, k.public_key) for k in keys))
        return await self._status(op)

    async def _complete(self, op: ev.Complete) -> ev.LockResult:
        if not op.commit:  # the creation lease: no commit, the group starts at epoch 0
            done = await self.client.complete(op.token)
        else:
            done = await self.client.complete(op.token, op.commit_hash.hex(), op.commit, op.welcome)
        if isinstance(done, Committed):
            return ev.Committed(done.epoch, done.receipt)
        if isinstance(done, Created):
            return ev.Committed(done.epoch)
        assert isinstance(done, Fenced)
        return ev.Fenced()

    async def _status(self, op: ev.QueryStatus) -> ev.Status:
        """One epoch's winner (with its stored messages if asked), else the history of winners.

        The epoch's record is the cheaper answer even without its messages: the history
        grows with every epoch of the group (about 2 ms of CPU per request at 130 epochs,
        against 0.6 ms for one record), and a member checking a commit's winner needs one.
        """
        epoch = op.epoch
        if epoch is not None:
            record = await self.client.epoch(self.group, epoch)
            if record is not None:
                winner = ev.Winner(
                    bytes.fromhex(record.commit_hash), record.committer, record.receipt
                )
                if not op.messages:  # named, but without messages: a joiner asks no further
                    return ev.Status(
                        True, epoch + 1, {epoch: winner}, epoch, epoch_is_current=False
                    )
                return ev.Status(
                    True,
                    epoch + 1,
                    {epoch: winner},
                    epoch,
                    record.commit,
                    record.welcome,
                    epoch_is_current=False,
                )
        status = await self.client.status(self.group)
        winners = {
            h.epoch: ev.Winner(bytes.fromhex(h.commit_hash), h.committer, h.receipt)
            for h in status.history
        }
        return ev.Status(status.exists, status.epoch or 0, winners, epoch)


class LockReceipts:
    """The member's `ReceiptPort`: Ed25519 receipts of `moqmls.lock.receipt`."""

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
        """The proven winner's commit hash; ReceiptRejectedError naming the lock's reason."""
        try:
            proven = verify_receipt(
                receipt,
                keys,
                group=group,
                epoch=epoch,
                committer=committer,
                commit_hash=commit_hash,
            )
        except ReceiptError as exc:
            raise ReceiptRejectedError(f"{type(exc).__name__}: {exc}") from exc
        return proven.commit_hash
