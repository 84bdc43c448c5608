"""The etcd store, the distributed engine (DESIGN.md "Lock service"), through `aetcd`.

Every decision is one etcd transaction: the group's keys are read (linearizably), the shared
decision logic runs, and the writes are sent as one transaction whose compares require the
head and lease keys to still be at the revisions that were read. A failed compare means
another service process decided first: read again and decide again. Revisions are the
fencing: a write based on an outdated read can never apply.

Leases expire by etcd's clock: the lease key is attached to an etcd lease of the granted
TTL (whole seconds, as etcd counts them), so it exists exactly while the lease lives, on
every service process alike. Keys, under a prefix (default ``/moqmls/lock/``)::

    g/<group>/head          {"epoch", "fence", "created_token"}
    g/<group>/lease         the Lease, attached to an etcd lease
    g/<group>/e/<epoch:020> {"commit_hash", "committer", "token"}   (the history)
    g/<group>/b/<epoch:020> {"commit", "welcome"} as base64           (the stored messages)

When an endpoint fails (a killed leader, an election in progress) the store moves to the
next one and repeats the whole read-decide-write; decisions are idempotent, so repeating
one whose outcome was lost answers the same.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import aetcd
import aetcd.exceptions

from moqmls.lock.core import Decision, R, Snapshot
from moqmls.lock.errors import UnavailableError
from moqmls.lock.model import MAX_TTL_MS, GroupHead, Lease, StoredEpoch, check_ttl_ms
from moqmls.lock.store import Store, StoreOptions

Endpoint = tuple[str, int]


def parse_endpoints(text: str) -> list[Endpoint]:
    """``host:port[,host:port...]`` as a list of endpoints."""
    endpoints = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad etcd endpoint {item!r}; expected HOST:PORT")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class _Keys:
    """The key names of one group."""

    def __init__(self, prefix: str, group: str) -> None:
        self.group = group
        base = f"{prefix}g/{group}/"
        self.head = (base + "head").encode()
        self.lease = (base + "lease").encode()
        self.records = (base + "e/").encode()
        self.blobs = (base + "b/").encode()

    def record(self, epoch: int) -> bytes:
        return self.records + f"{epoch:020d}".encode()

    def blob(self, epoch: int) -> bytes:
        return self.blobs + f"{epoch:020d}".encode()


def _range_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


class EtcdStore(Store):
    """Groups in an etcd cluster; any number of service processes may share it."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        options: StoreOptions | None = None,
        *,
        prefix: str = "/moqmls/lock/",
        rpc_timeout_s: float = 2.0,
        deadline_s: float = 15.0,
    ) -> None:
        super().__init__(options)
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.rpc_timeout_s = rpc_timeout_s
        self.deadline_s = deadline_s
        self._clients: list[aetcd.Client | None] = [None] * len(self.endpoints)
        self._current = 0
        self.failovers = 0  # endpoint failures survived, for tests and benchmarks

    # ------------------------------------------------------------ connections

    def _client(self) -> aetcd.Client:
        client = self._clients[self._current]
        if client is None:
            host, port = self.endpoints[self._current]
            client = aetcd.Client(host=host, port=port, timeout=self.rpc_timeout_s)
            self._clients[self._current] = client
        return client

    async def close(self) -> None:
        """Close every connection."""
        for i, client in enumerate(self._clients):
            if client is not None:
                await client.close()
                self._clients[i] = None

    async def _retrying(self, attempt: Callable[[aetcd.Client], Any]) -> Any:
        """Run `attempt` against the current endpoint, moving on while etcd fails."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        delay = 0.02
        while True:
            client = self._client()
            try:
                return await attempt(client)
            except (aetcd.exceptions.ClientError, TimeoutError) as exc:
                if loop.time() + delay > deadline:
                    raise UnavailableError(f"etcd: {exc}") from exc
                self.failovers += 1
                self._current = (self._current + 1) % len(self.endpoints)
                await asyncio.sleep(delay)
                delay = min(0.5, delay * 2)

    def grant_ttl(self, ttl_ms: int | None) -> int:
        """etcd leases count whole seconds: round the duration up to them."""
        ttl = self.options.default_ttl_ms if ttl_ms is None else check_ttl_ms(ttl_ms)
        return min(MAX_TTL_MS, 1000 * max(1, math.ceil(ttl / 1000)))

    # ------------------------------------------------------------ reading

    async def _read_keys(
        self, client: aetcd.Client, keys: _Keys, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, int, int, list[StoredEpoch]]:
        t = client.transactions
        ops = [t.get(keys.head), t.get(keys.lease)]
        if record_epoch is not None:
            ops += [t.get(keys.record(record_epoch)), t.get(keys.blob(record_epoch))]
        if history:
            ops.append(t.get(keys.records, _range_end(keys.records)))
        _, responses = await client.transaction(compare=[], success=ops, failure=[])
        now = self.clock()
        head_kv, lease_kv = responses[0], responses[1]
        head = None
        if head_kv:
            value = json.loads(head_kv[0][0])
            head = GroupHead(keys.group, **value)
        lease = Lease(**json.loads(lease_kv[0][0])) if lease_kv else None
        record = None
        if record_epoch is not None and responses[2]:
            meta = json.loads(responses[2][0][0])
            blobs = json.loads(responses[3][0][0]) if responses[3] else {}
            record = StoredEpoch(
                record_epoch,
                meta["commit_hash"],
                meta["committer"],
                meta["token"],
                _unb64(blobs.get("commit")),
                _unb64(blobs.get("welcome")),
            )
        records = []
        if history:
            for value, meta_kv in responses[-1]:
                meta = json.loads(value)
                epoch = int(meta_kv.key.rsplit(b"/", 1)[1])
                records.append(
                    StoredEpoch(epoch, meta["commit_hash"], meta["committer"], "", None, None)
                )
        head_rev = head_kv[0][1].mod_revision if head_kv else 0
        lease_rev = lease_kv[0][1].mod_revision if lease_kv else 0
        # The lease key exists only while its etcd lease lives: presence is liveness.
        snap = Snapshot(now, head, lease, lease is not None, record)
        return snap, head_rev, lease_rev, records

    async def _read(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        keys = _Keys(self.prefix, group)

        async def attempt(client: aetcd.Client) -> tuple[Snapshot, list[StoredEpoch]]:
            snap, _, _, records = await self._read_keys(client, keys, record_epoch, history)
            return snap, records

        result: tuple[Snapshot, list[StoredEpoch]] = await self._retrying(attempt)
        return result

    # ------------------------------------------------------------ deciding

    async def _transact(
        self, group: str, record_epoch: int | None, decide: Callable[[Snapshot], Decision[R]]
    ) -> R:
        keys = _Keys(self.prefix, group)

        async def attempt(client: aetcd.Client) -> tuple[bool, R]:
            snap, head_rev, lease_rev, _ = await self._read_keys(client, keys, record_epoch, False)
            decision = decide(snap)
            if not decision.writes:
                return True, decision.result
            t = client.transactions
            ops = await self._write_ops(client, keys, decision)
            compares = [t.mod(keys.head) == head_rev, t.mod(keys.lease) == lease_rev]
            applied, _ = await client.transaction(compare=compares, success=ops, failure=[])
            return applied, decision.result

        while True:
            applied, result = await self._retrying(attempt)
            if applied:
                return result  # type: ignore[no-any-return]
            # Another decision came first; the next read sees it.

    async def _write_ops(
        self, client: aetcd.Client, keys: _Keys, decision: Decision[Any]
    ) -> list[Any]:
        t = client.transactions
        ops: list[Any] = []
        if decision.head is not None:
            head = asdict(decision.head)
            del head["group"]
            ops.append(t.put(keys.head, _dump(head)))
        if decision.clear_lease:
            ops.append(t.delete(keys.lease))
        if decision.lease is not None:
            grant = await client.lease(max(1, math.ceil(decision.lease.ttl_ms / 1000)))
            ops.append(t.put(keys.lease, _dump(asdict(decision.lease)), lease=grant.id))
        if decision.record is not None:
            r = decision.record
            meta = {"commit_hash": r.commit_hash, "committer": r.committer, "token": r.token}
            blobs = {"commit": _b64(r.commit), "welcome": _b64(r.welcome)}
            ops.append(t.put(keys.record(r.epoch), _dump(meta)))
            ops.append(t.put(keys.blob(r.epoch), _dump(blobs)))
        if decision.prune_below is not None:
            ops.append(t.delete(keys.records, keys.record(decision.prune_below)))
            ops.append(t.delete(keys.blobs, keys.blob(decision.prune_below)))
        return ops
