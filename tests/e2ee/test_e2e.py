"""End to end over a real QUIC relay, the real HTTP lock service (SQLite) and real MLS.

draft-jennings-moq-e2ee-mls: join, batched commits, lock races, crash recovery, catch-up,
leave, vanish, forged objects, relay restart. Every test checks the epoch authenticators and
that media decrypts exactly where it should.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable

import pytest

from moqmls.e2ee import events as ev
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.runtime import GroupMember, LockPort
from moqmls.e2ee.tracks import TrackKind
from moqmls.e2ee.world import World
from moqmls.lock import LockClient
from moqmls.lock.etcd_cluster import ETCD, EtcdCluster
from moqmls.moqt.client import connect

FAST = MemberConfig(heartbeat_interval=2.0, liveness_timeout=30.0, gap_timeout=0.3)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    logging.getLogger("moqmls.e2ee").setLevel(logging.INFO)  # shown when a test fails
    async with World.start("e2e", FAST, on_line=print) as w:
        yield w


async def _grow(world: World, n: int, prefix: str = "m") -> list[GroupMember]:
    return [await world.join(f"{prefix}{i}") for i in range(n)]


async def _history(world: World) -> list[tuple[int, str, str]]:
    async with LockClient(world.lock_url) as locks:
        status = await locks.status(world.group)
    return [(h.epoch, h.commit_hash, h.committer) for h in status.history]


async def _check_converged(world: World, names: set[str]) -> None:
    assert await world.converge(15.0, names), {m.sender_id: m.members() for m in world.live()}
    live = world.live()
    assert {m.sender_id for m in live} == names
    assert world.authenticators_equal()
    assert world.forks() == 0
    history = await _history(world)
    epoch = live[0].epoch
    # the lock's history is linear: one winner per epoch, 0 .. current-1
    assert [e for e, _, _ in history] == list(range(epoch))


async def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `predicate()` holds: objects reach members in their own time under load."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _same_epoch(members: list[GroupMember], epoch: int) -> None:
    await asyncio.gather(*(m.wait_for(lambda m=m: m.epoch >= epoch, 20.0) for m in members))
    assert {m.epoch for m in members} == {epoch}
    assert len({m.authenticator() for m in members}) == 1


async def _check_media(world: World, members: list[GroupMember]) -> None:
    # a sender still in the previous epoch would encrypt for it, which a member that joined
    # in the new one must not be able to read: wait until everyone is in the same epoch
    await _same_epoch(members, max(m.epoch for m in members))
    sent, decrypted, expected = await world.media_round(members, members, "check")
    assert sent == len(members)
    assert decrypted == expected == len(members) * (len(members) - 1)


async def test_eight_members_join_one_by_one(world: World) -> None:
    members = await _grow(world, 8)
    await _check_converged(world, {f"m{i}" for i in range(8)})
    assert members[0].epoch == 7  # one commit per join
    joined = [world.joins[f"m{i}"] for i in range(8)]
    assert [r.epoch for r in joined] == list(range(8))
    await _check_media(world, members)


async def test_concurrent_joins_batch_without_fork(world: World) -> None:
    base = await _grow(world, 16)
    start_epoch = base[0].epoch
    joiners = await asyncio.gather(*(world.add(f"j{i}") for i in range(16)))
    await asyncio.gather(*(j.wait_joined(30.0) for j in joiners))
    names = {m.sender_id for m in [*base, *joiners]}
    await _check_converged(world, names)
    assert base[0].epoch - start_epoch < 16  # batching: fewer commits than joiners
    # every member that applied a commit applied the one the lock service chose
    history = {e: bytes.fromhex(h) for e, h, _ in await _history(world)}
    for m in world.live():
        for _, entered in m.history:
            if entered.commit_hash:
                assert entered.commit_hash == history[entered.epoch - 1]
    await _check_media(world, [*base, *joiners])


async def test_four_members_race_to_add_one_joiner(world: World) -> None:
    racing = MemberConfig(heartbeat_interval=2.0, liveness_timeout=30.0, rank_stagger=0.0)
    world.config = racing
    members = await _grow(world, 4)
    before = len(await _history(world))
    await world.join("late")
    await _check_converged(world, {"m0", "m1", "m2", "m3", "late"})
    history = await _history(world)
    assert len(history) == before + 1  # exactly one commit added the joiner
    await _check_media(world, [*members, world.members["late"]])


class CrashFirst:
    """Kills the first member to get a chosen lock answer for a commit, before it acts on it."""

    def __init__(self, world: World, answer: type) -> None:
        self.world, self.answer = world, answer
        self.victim: str | None = None
        self.crashed = asyncio.Event()

    def wrap(self, member: GroupMember) -> None:
        inner, name = member.lock, member.sender_id

        class Port:
            async def call(_, op: ev.LockOp) -> ev.LockResult:
                return await self._call(inner, name, op)

        member.lock = Port()

    async def _call(self, inner: LockPort, name: str, op: ev.LockOp) -> ev.LockResult:
        result = await inner.call(op)
        is_commit = not isinstance(op, ev.Complete) or bool(op.commit)
        if isinstance(result, self.answer) and is_commit and self.victim is None:
            self.victim = name
            self.crashed.set()
            member = self.world.members[name]
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(member.close()))
            await asyncio.Event().wait()  # never answer: the member dies here
        return result


async def _crash_scenario(world: World, answer: type) -> list[GroupMember]:
    """Three members; the one that gets `answer` while adding a fourth dies on the spot."""
    members = await _grow(world, 3)
    crash = CrashFirst(world, answer)
    for m in members:
        crash.wrap(m)
    late = await world.add("late")
    await asyncio.wait_for(crash.crashed.wait(), 20.0)
    await late.wait_joined(20.0)
    # a lease that ran out commits nothing; a completed commit stays canonical
    assert (world.joins["late"].committer == crash.victim) == (answer is ev.Committed)
    survivors = [m for m in members if m.sender_id != crash.victim] + [late]
    await _same_epoch(survivors, late.epoch)
    return survivors


async def test_lock_holder_crashing_before_complete(world: World) -> None:
    # the lock is held by a dead member until its lease runs out; then another commits
    survivors = await _crash_scenario(world, ev.Acquired)
    await _check_media_subset(world, survivors)


async def _check_media_subset(world: World, members: list[GroupMember]) -> None:
    await _same_epoch(members, max(m.epoch for m in members))
    _, decrypted, expected = await world.media_round(members, members, "subset")
    assert decrypted == expected == len(members) * (len(members) - 1)


async def test_committer_crashing_after_complete_strands_nobody(world: World) -> None:
    # Committed, but nothing published: the others take the Commit, the joiner its
    # Welcome, from the lock service
    survivors = await _crash_scenario(world, ev.Committed)
    assert survivors[-1].epoch == 3
    assert sum(m.core.stats.recoveries_lock for m in survivors[:2]) == 2
    await _check_media_subset(world, survivors)


async def test_disconnected_member_catches_up(world: World) -> None:
    await _grow(world, 2)
    gate = asyncio.Event()
    gate.set()
    away = await world.add("away", gate=gate)
    await away.wait_joined(20.0)
    gate.clear()
    assert away._transport is not None
    await away._transport.close()  # the session drops; reconnecting waits for the gate
    for i in range(3):
        await world.join(f"x{i}")
    assert away.epoch == 2
    gate.set()
    await away.wait_for(lambda: away.epoch == 5, 20.0)
    await _check_converged(world, {"m0", "m1", "away", "x0", "x1", "x2"})
    assert away.core.stats.recoveries_fetch == 3  # FETCHed from the relay's cache
    await _check_media(world, world.live())


async def test_leave_and_the_departed_decrypt_nothing_after(world: World) -> None:
    members = await _grow(world, 4)
    leaver = members[3]
    assert await leaver.leave(10.0, close=False) == "left"
    remaining = members[:3]
    await _check_converged(world, {"m0", "m1", "m2"})
    decrypted_before = leaver.media_stats.decrypted
    failed_before = leaver.media_stats.failed
    await _check_media(world, remaining)
    # it is still subscribed: wait for the three objects to reach it, however slowly
    await _eventually(lambda: leaver.media_stats.failed - failed_before >= 3)
    await asyncio.sleep(0.3)
    assert leaver.media_stats.decrypted == decrypted_before
    assert leaver.media_stats.failed - failed_before == 3  # it got the ciphertext, not the key
    proposals = [h for h in leaver.history if h[1].epoch > remaining[0].epoch]
    assert proposals == []


async def test_vanished_member_is_removed(world: World) -> None:
    world.config = MemberConfig(heartbeat_interval=0.2, liveness_timeout=1.0, gap_timeout=0.2)
    members = await _grow(world, 4)
    await members[3].close()  # no leave request: it just disappears
    await _check_converged(world, {"m0", "m1", "m2"})
    await _check_media(world, members[:3])


async def test_forged_garbage_and_replayed_objects_change_nothing(world: World) -> None:
    members = await _grow(world, 3)
    epoch = members[0].epoch
    auth = members[0].authenticator()
    evil = await connect(world.relay_url, verify=world.verify)
    try:
        group = world.group.encode()
        junk = [b"", b"\x00", b"\x01" * 200, hashlib.sha256(b"x").digest()]
        for kind in TrackKind:
            pub = await evil.publish((group, kind.value.encode()), b"m1")
            for i, payload in enumerate(junk):
                await pub.write(epoch, i, payload)
        media = await evil.publish((group, b"media"), b"m1")
        for i, payload in enumerate(junk):
            await media.write(epoch, i, payload, [(0x02, epoch)])
        # replays of genuine commits (taken from the lock service): old, and re-labelled
        async with LockClient(world.lock_url) as locks:
            old = [await locks.epoch(world.group, e) for e in range(epoch)]
        replay = await evil.publish((group, b"commit"), b"m0")
        for e, record in enumerate(old):
            assert record is not None and record.commit is not None
            await replay.write(epoch + 1 + e, 0, record.commit)  # MoQT group != its epoch
        stale = await evil.publish((group, b"commit"), b"evil")
        for e, record in enumerate(old):
            assert record is not None and record.commit is not None
            await stale.write(e, 0, record.commit)  # an epoch long gone
        await _eventually(
            lambda: all(m.core.stats.dropped > 0 and m.media_stats.failed >= 1 for m in members)
        )
        await asyncio.sleep(1.0)
    finally:
        await evil.close()
    assert all(m.epoch == epoch and m.authenticator() == auth for m in members)
    assert all(m.core.stats.dropped > 0 for m in members)
    assert all(m.core.stats.rejoins == 0 for m in members)
    assert all(m.media_stats.decrypted == 0 and m.media_stats.failed >= 1 for m in members)
    # the group still works
    await world.join("after")
    await _check_converged(world, {"m0", "m1", "m2", "after"})
    await _check_media(world, world.live())


async def test_relay_restart_mid_session(world: World) -> None:
    members = await _grow(world, 3)
    await _check_media(world, members)
    await world.restart_relay()
    await asyncio.sleep(1.0)  # members reconnect and re-subscribe
    await world.join("after")
    await _check_converged(world, {"m0", "m1", "m2", "after"})
    await _check_media(world, world.live())


async def _scenario(world: World) -> None:
    """Join one by one, join at once, media, a leave, media again (the demo's story)."""
    members = await _grow(world, 4)
    joiners = await asyncio.gather(*(world.add(f"j{i}") for i in range(4)))
    await asyncio.gather(*(j.wait_joined(20.0) for j in joiners))
    everyone = [*members, *joiners]
    await _check_converged(world, {m.sender_id for m in everyone})
    await _check_media(world, everyone)
    leaver = members[1]
    assert await leaver.leave(10.0, close=False) == "left"
    remaining = [m for m in everyone if m is not leaver]
    await _check_converged(world, {m.sender_id for m in remaining})
    before = leaver.media_stats.decrypted
    failed_before = leaver.media_stats.failed
    await _check_media(world, remaining)
    # still subscribed: every remaining member's object reaches it, as ciphertext it cannot open
    await _eventually(lambda: leaver.media_stats.failed - failed_before >= len(remaining), 20.0)
    assert leaver.media_stats.decrypted == before


async def test_the_same_scenario_through_two_chained_relays() -> None:
    async with World.start("chain", FAST, chained_relays=True, on_line=print) as world:
        assert len(world.relays) == 2
        await _scenario(world)
        # members alternated between the edge relay and its upstream
        assert set(world.member_relays.values()) == {r.url for r in world.relays}


@pytest.mark.skipif(not os.access(ETCD, os.X_OK), reason="etcd-server is not installed")
async def test_the_same_scenario_through_a_three_node_etcd_lock_service() -> None:
    with EtcdCluster(3) as cluster:
        async with World.start("etcd", FAST, store=cluster.spec, on_line=print) as world:
            await _scenario(world)


async def test_application_removes_a_member_by_sender_id(world: World) -> None:
    members = await _grow(world, 3)
    removed = members[2]
    members[0].remove("m2")
    await removed.wait_for(lambda: removed.ended is not None, 20.0)
    assert removed.ended == "removed"
    await _check_converged(world, {"m0", "m1"})
    await _check_media(world, members[:2])
