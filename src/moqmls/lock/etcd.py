"""The etcd store, the distributed engine (DESIGN.md "Lock service"), through `aetcd`.

Every decision is one etcd transaction: the shared decision logic runs on the group's
state as this process last saw it (or as just read), and its writes go out as one
transaction whose compares require the head and lease keys to still be at the revisions
that state had. If another service process decided first, the compare fails and the same
transaction's failure branch returns the current state, on which the decision is made
again. Revisions are the fencing: a write based on an outdated state can never apply, and
an answer that writes nothing is also given only after a transaction confirmed its state.

Leases expire by etcd's clock: the lease key is attached to an etcd lease of the granted
TTL (whole seconds, as etcd counts them), so it exists exactly while the lease lives, on
every service process alike. Keys, under a prefix (default ``/moqmls/lock/``)::

    g/<group>/head          {"epoch", "fence", "created_token"}
    g/<group>/lease         the Lease, attached to an etcd lease
    g/<group>/e/<epoch:020> {"commit_hash", "committer", "token"}   (the history)
    g/<group>/b/<epoch:020> {"commit", "welcome"} as base64           (the stored messages)
    service-key             the receipt signing key (raw Ed25519), put once if absent

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
from dataclasses import asdict, dataclass, replace
from typing import Any

import aetcd
import aetcd.exceptions

from moqmls.lock.core import Decision, R, Snapshot
from moqmls.lock.errors import LockError, UnavailableError
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
        """The key of epoch `epoch`'s winner."""
        return self.records + f"{epoch:020d}".encode()

    def blob(self, epoch: int) -> bytes:
        """The key of epoch `epoch`'s stored messages."""
        return self.blobs + f"{epoch:020d}".encode()


def _range_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


CACHED_GROUPS = 4096


@dataclass(frozen=True)
class _State:
    """A group's keys as last read or written, with the revisions a compare must find."""

    head: GroupHead | None
    lease: Lease | None
    head_rev: int
    lease_rev: int
    record: StoredEpoch | None = None


def _revision(responses: list[Any]) -> int:
    """The revision a successful writing transaction created (0 if it wrote nothing)."""
    for response in responses:
        for kind in ("response_put", "response_delete_range"):
            if not isinstance(response, list) and response.HasField(kind):
                return int(getattr(response, kind).header.revision)
    return 0


def _after(state: _State, decision: Decision[Any], revision: int) -> _State:
    """The group's state once `decision`'s writes applied at `revision`."""
    head, head_rev = state.head, state.head_rev
    if decision.head is not None:
        head, head_rev = decision.head, revision
    lease, lease_rev = state.lease, state.lease_rev
    if decision.clear_lease:
        lease, lease_rev = None, 0
    if decision.lease is not None:
        lease, lease_rev = decision.lease, revision
    return _State(head, lease, head_rev, lease_rev)


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
        self._cache: dict[str, _State] = {}  # insertion order: least recently decided first

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

    # ------------------------------------------------------------ signing key

    async def _load_signing_key(self, candidate: bytes) -> bytes:
        key = (self.prefix + "service-key").encode()

        async def attempt(client: aetcd.Client) -> bytes:
            t = client.transactions
            # a key never written has create revision 0: only the first instance's put applies
            _, responses = await client.transaction(
                compare=[t.create(key) == 0], success=[t.put(key, candidate)], failure=[t.get(key)]
            )
            if responses and isinstance(responses[0], list) and responses[0]:
                return bytes(responses[0][0][0])
            return candidate

        result: bytes = await self._retrying(attempt)
        return result

    # ------------------------------------------------------------ reading

    def _read_ops(self, client: aetcd.Client, keys: _Keys, record_epoch: int | None) -> list[Any]:
        t = client.transactions
        ops = [t.get(keys.head), t.get(keys.lease)]
        if record_epoch is not None:
            ops += [t.get(keys.record(record_epoch)), t.get(keys.blob(record_epoch))]
        return ops

    @staticmethod
    def _parse_read(keys: _Keys, record_epoch: int | None, responses: list[Any]) -> _State:
        head_kv, lease_kv = responses[0], responses[1]
        head = GroupHead(keys.group, **json.loads(head_kv[0][0])) if head_kv else None
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
                _unb64(meta.get("receipt")),
            )
        head_rev = head_kv[0][1].mod_revision if head_kv else 0
        lease_rev = lease_kv[0][1].mod_revision if lease_kv else 0
        return _State(head, lease, head_rev, lease_rev, record)

    def _snapshot(self, state: _State) -> Snapshot:
        # The lease key exists only while its etcd lease lives: presence is liveness.
        lease = state.lease
        return Snapshot(self.clock(), state.head, lease, lease is not None, state.record)

    async def _read(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        keys = _Keys(self.prefix, group)

        async def attempt(client: aetcd.Client) -> tuple[Snapshot, list[StoredEpoch]]:
            ops = self._read_ops(client, keys, record_epoch)
            if history:
                ops.append(client.transactions.get(keys.records, _range_end(keys.records)))
            _, responses = await client.transaction(compare=[], success=ops, failure=[])
            records = []
            if history:
                for value, meta_kv in responses[-1]:
                    meta = json.loads(value)
                    epoch = int(meta_kv.key.rsplit(b"/", 1)[1])
                    records.append(
                        StoredEpoch(
                            epoch,
                            meta["commit_hash"],
                            meta["committer"],
                            "",
                            None,
                            None,
                            _unb64(meta.get("receipt")),
                        )
                    )
            state = self._parse_read(keys, record_epoch, responses)
            return self._snapshot(state), records

        result: tuple[Snapshot, list[StoredEpoch]] = await self._retrying(attempt)
        return result

    # ------------------------------------------------------------ deciding

    def _cached(self, group: str, record_epoch: int | None) -> _State | None:
        """The group's last known state, if it can stand in for a read of this decision.

        A complete of the current epoch needs no record read: the record of epoch E is
        written together with the head's move past E, which the head's compare covers.
        """
        state = self._cache.get(group)
        if state is None or record_epoch is None:
            return state
        if state.head is not None and state.head.epoch == record_epoch:
            return state
        return None

    def _remember(self, group: str, state: _State) -> None:
        self._cache.pop(group, None)
        self._cache[group] = replace(state, record=None)
        if len(self._cache) > CACHED_GROUPS:
            del self._cache[next(iter(self._cache))]  # the least recently decided group

    async def _transact(
        self, group: str, record_epoch: int | None, decide: Callable[[Snapshot], Decision[R]]
    ) -> R:
        """Decide on the last known state and let etcd's compares confirm it.

        One transaction per decision: it applies the writes (possibly none) only if the head
        and lease keys are still at the revisions the decision saw; if they are not, its
        failure branch returns the current state and the decision is made again. Even an
        answer that writes nothing is only given once a transaction has confirmed its state.
        """
        keys = _Keys(self.prefix, group)
        state = self._cached(group, record_epoch)
        fresh = False  # whether `state` was read from etcd (rather than remembered)

        async def attempt(client: aetcd.Client) -> tuple[bool, Any]:
            nonlocal state, fresh
            t = client.transactions
            reads = self._read_ops(client, keys, record_epoch)
            if state is None:
                _, responses = await client.transaction(compare=[], success=reads, failure=[])
                state, fresh = self._parse_read(keys, record_epoch, responses), True
            try:
                decision = decide(self._snapshot(state))
            except LockError:
                if fresh:  # a refusal read from etcd linearizably is the answer
                    raise
                state = None  # a refusal from a remembered state: read and decide again
                return False, None
            ops = await self._write_ops(client, keys, decision) if decision.writes else []
            compares = [t.mod(keys.head) == state.head_rev, t.mod(keys.lease) == state.lease_rev]
            applied, responses = await client.transaction(
                compare=compares, success=ops, failure=reads
            )
            if not applied:
                state, fresh = self._parse_read(keys, record_epoch, responses), True
                return False, None
            self._remember(group, _after(state, decision, _revision(responses)))
            return True, decision.result

        while True:
            try:
                applied, result = await self._retrying(attempt)
            except BaseException:
                self._cache.pop(group, None)
                raise
            if applied:
                return result  # type: ignore[no-any-return]

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
            meta = {
                "commit_hash": r.commit_hash,
                "committer": r.committer,
                "token": r.token,
                "receipt": _b64(r.receipt),
            }
            blobs = {"commit": _b64(r.commit), "welcome": _b64(r.welcome)}
            ops.append(t.put(keys.record(r.epoch), _dump(meta)))
            ops.append(t.put(keys.blob(r.epoch), _dump(blobs)))
        if decision.prune_below is not None:
            ops.append(t.delete(keys.records, keys.record(decision.prune_below)))
            ops.append(t.delete(keys.blobs, keys.blob(decision.prune_below)))
        return ops
