"""Lock-service receipts end to end: a real QUIC relay, the real HTTP lock service (SQLite),
real MLS; the lock service counts the requests it answers.

With receipts, members learn each commit's winner from the receipt the committer publishes
with it (DESIGN.md "Lock service"): no winner request per member per commit. A commit that
did not win, published with an absent, replayed or foreign receipt, is never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moqmls.e2ee import events as ev
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.runtime import GroupMember, LockPort
from moqmls.e2ee.world import World, start_relay
from moqmls.lock import LockClient, RequestStats, serve
from moqmls.lock.receipt import ReceiptSigner, new_signing_key
from moqmls.lock.sqlite import SQLiteStore

# no periodic status polls: every lock request counted below is one a join or commit needs
QUIET = MemberConfig(
    heartbeat_interval=2.0, liveness_timeout=30.0, gap_timeout=0.3, sync_interval=None
)

EPOCH_ROUTE = "/v1/groups/{group}/epochs/{epoch}"
STATUS_ROUTE = "/v1/groups/{group}"


@contextlib.asynccontextmanager
async def counted_world(tmp_path: Path, group: str) -> AsyncIterator[tuple[World, RequestStats]]:
    """A relay and a lock service whose requests are counted per route, and a World on them."""
    logging.getLogger("moqmls.e2ee").setLevel(logging.INFO)  # shown when a test fails
    stats = RequestStats()
    async with (
        SQLiteStore(tmp_path / "lock.sqlite3") as store,
        serve(store, stats=stats) as lock_url,
        start_relay() as relay,
    ):
        world = World(
            relay_url=relay.url,
            lock_url=lock_url,
            verify=relay.certificate_pem,
            group=group,
            config=QUIET,
            relays=[relay],
            on_line=print,
        )
        try:
            yield world, stats
        finally:
            world.on_line = None
            await world.close()


class NoKeys:
    """A lock port whose receipt-key request fails: the member cannot check receipts."""

    def __init__(self, inner: LockPort) -> None:
        self.inner = inner

    async def call(self, op: ev.LockOp) -> ev.LockResult:
        if isinstance(op, ev.FetchServiceKeys):
            return ev.LockFailed("keys withheld by the test")
        return await self.inner.call(op)


async def _join(world: World, name: str, receipts: bool) -> GroupMember:
    member = await world.add(name, wrap_lock=None if receipts else NoKeys)
    await member.wait_joined(20.0)
    return member


async def _settled(world: World, names: set[str]) -> None:
    assert await world.converge(15.0, names), {m.sender_id: m.members() for m in world.live()}
    assert world.authenticators_equal()
    assert world.forks() == 0


@pytest.mark.parametrize("receipts", [True, False], ids=["receipts", "no-keys"])
async def test_members_apply_commits_without_winner_requests(
    tmp_path: Path, receipts: bool
) -> None:
    async with counted_world(tmp_path, "counted") as (world, stats):
        base = [await _join(world, f"m{i}", receipts) for i in range(4)]
        await _settled(world, {m.sender_id for m in base})
        before = stats.by_route.copy()
        joins = 3
        for i in range(joins):
            await _join(world, f"j{i}", receipts)
        names = {m.sender_id for m in world.members.values()}
        await _settled(world, names)
        await asyncio.sleep(0.3)  # any check still in flight would be counted
        delta = stats.by_route - before
        winner_checks = delta[EPOCH_ROUTE] + delta[STATUS_ROUTE]
        per_commit = sum(delta.values()) / joins
        print(f"receipts={receipts}: {dict(delta)}; {per_commit:.1f} lock requests per commit")
        verified = sum(m.core.stats.receipts_verified for m in world.members.values())
        if receipts:
            # the joiner's create_or_join and keys, the committer's lock and complete
            assert winner_checks == 0
            assert per_commit <= 5
            # every member other than the committer learnt each winner from a receipt
            assert verified >= sum(4 + i for i in range(joins))
        else:
            # without keys every member but the committer asks who won each commit
            assert winner_checks >= sum(3 + i for i in range(joins))
            assert verified == 0


class Liar:
    """Makes a member publish its commit as if it had won, without the lock's Committed.

    Its complete never reaches the lock service (the lease is released instead), so the
    commit did not win; it is published with the receipt `forge` makes.
    """

    def __init__(self, inner: LockPort, forge: str, lock_url: str, group: str) -> None:
        self.inner, self.forge, self.lock_url, self.group = inner, forge, lock_url, group
        self.lied = asyncio.Event()

    async def call(self, op: ev.LockOp) -> ev.LockResult:
        if not isinstance(op, ev.Complete) or not op.commit or self.lied.is_set():
            return await self.inner.call(op)
        await self.inner.call(ev.Release(op.token))
        epoch = await self._epoch()
        self.lied.set()
        return ev.Committed(epoch + 1, await self._receipt(epoch, op.commit_hash))

    async def _epoch(self) -> int:
        async with LockClient(self.lock_url) as client:
            status = await client.status(self.group)
        assert status.epoch is not None
        return status.epoch

    async def _receipt(self, epoch: int, digest: bytes) -> bytes | None:
        if self.forge == "absent":
            return None
        if self.forge == "replayed":  # a genuine receipt, of the epoch before
            async with LockClient(self.lock_url) as client:
                record = await client.epoch(self.group, epoch - 1)
            assert record is not None and record.receipt is not None
            return record.receipt
        # signed for exactly this commit, by a key that is not the lock service's
        return ReceiptSigner(new_signing_key()).sign(self.group, epoch, digest.hex(), "m0")


@pytest.mark.parametrize("forge", ["absent", "replayed", "foreign-key"])
async def test_a_commit_that_did_not_win_is_never_applied_whatever_its_receipt(
    tmp_path: Path, forge: str
) -> None:
    async with counted_world(tmp_path, "liar") as (world, _):
        members = [await _join(world, f"m{i}", True) for i in range(3)]
        await _settled(world, {"m0", "m1", "m2"})
        made = len([e for _, e in members[0].history if e.how == "committed"])
        liar = Liar(members[0].lock, forge, world.lock_url, world.group)
        members[0].lock = liar  # m0 has rank 0: it commits the next join first
        late = await world.add("late")
        await asyncio.wait_for(liar.lied.wait(), 20.0)
        await late.wait_joined(20.0)
        forged = [e.commit_hash for _, e in members[0].history if e.how == "committed"][made:]
        await members[0].close()  # the liar stays in its fork; the others go on without it
        honest = [members[1], members[2], late]
        assert await world.converge(15.0, {"m0", "m1", "m2", "late"})
        assert len({m.authenticator() for m in honest}) == 1
        assert len(forged) == 1
        applied = {e.commit_hash for m in honest for _, e in m.history if e.commit_hash}
        assert forged[0] not in applied, "a loser's commit was applied"
        async with LockClient(world.lock_url) as client:
            history = (await client.status(world.group)).history
        assert history[-1].committer != "m0"
        assert bytes.fromhex(history[-1].commit_hash) != forged[0]
        assert world.joins["late"].committer != "m0"
        stats = [m.core.stats for m in honest]
        if forge == "absent":
            assert sum(s.receipts_missing for s in stats) >= 3
        else:
            assert sum(s.receipts_rejected for s in stats) >= 3
