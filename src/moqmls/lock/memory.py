"""The in-memory store (tests, demos): the event loop makes read-decide-write atomic.

DESIGN.md "Lock service": stores behind one interface; state is lost with the process.
"""

from __future__ import annotations

from collections.abc import Callable

from moqmls.lock.core import Decision, R, Snapshot
from moqmls.lock.model import GroupHead, Lease, StoredEpoch
from moqmls.lock.store import Store, StoreOptions


class MemoryStore(Store):
    """Dicts in one process; every transaction runs without awaiting, so it is atomic."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        super().__init__(options)
        self._heads: dict[str, GroupHead] = {}
        self._leases: dict[str, Lease] = {}
        self._records: dict[str, dict[int, StoredEpoch]] = {}
        self._signing_key: bytes | None = None

    async def _load_signing_key(self, candidate: bytes) -> bytes:
        if self._signing_key is None:
            self._signing_key = candidate
        return self._signing_key

    def _snapshot(self, group: str, record_epoch: int | None) -> Snapshot:
        now = self.clock()
        lease = self._leases.get(group)
        record = None
        if record_epoch is not None:
            record = self._records.get(group, {}).get(record_epoch)
        live = lease is not None and now < lease.expires_at_ms
        return Snapshot(now, self._heads.get(group), lease, live, record)

    async def _transact(
        self, group: str, record_epoch: int | None, decide: Callable[[Snapshot], Decision[R]]
    ) -> R:
        decision = decide(self._snapshot(group, record_epoch))
        if decision.head is not None:
            self._heads[group] = decision.head
        if decision.clear_lease:
            self._leases.pop(group, None)
        if decision.lease is not None:
            self._leases[group] = decision.lease
        records = self._records.setdefault(group, {})
        if decision.record is not None:
            records[decision.record.epoch] = decision.record
        if decision.prune_below is not None:
            for epoch in [e for e in records if e < decision.prune_below]:
                del records[epoch]
        return decision.result

    async def _read(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        records = list(self._records.get(group, {}).values()) if history else []
        return self._snapshot(group, record_epoch), records
