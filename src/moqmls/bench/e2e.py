"""`moqmls bench e2e`: join and removal latency of the whole system on loopback.

A real QUIC relay, the lock service (SQLite), real MLS and Secure Objects. With
`--processes 1` everything runs in one process on one event loop; with `--processes P > 1`
this process runs only the relay and the lock service and the members live in P worker
processes (`moqmls.bench.e2e_procs`): worker 0 holds the members on a measured path — the
group's creator m0 (the rank-0 committer and the beacon), the timed joiners and the
concurrent joiners — and the other members (the "crowd") are spread over workers 1..P-1 at a
lower scheduling priority (`--crowd-nice`). In a deployment every member has its own machine:
the crowd's own CPU work (receiving and applying every Commit) takes nothing from the relay,
the lock service or the members on the path, while its requests to the relay and the lock
service (the N-fold work those two see) still do, here as there. Measured:
- join latency at N = 8, 32, 128: KeyPackage published -> Welcome processed -> first media
  object decrypted (a beacon member publishes media as soon as it enters each epoch), for a
  few joins
  into a group of about N members;
- 16 members joining at once into a group of 32: from their start to all of them in;
- removal latency: leave request published -> every remaining member in the new epoch.
Targets (DESIGN/issue 7): join p50 <= 100 ms and p95 <= 250 ms up to 32 members, p95 <= 500 ms
at 128; 16 concurrent joins <= 1 s; removal p95 <= 2 s. The table shows each against its target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from moqmls.bench.e2e_procs import Cluster
from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import E2EEError
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.runtime import GroupMember
from moqmls.e2ee.tracks import GroupTracks, TrackKind
from moqmls.e2ee.world import World, percentile

#: Liveness renewals cost N^2 relay objects; the benchmark measures joins, not liveness.
BENCH_CONFIG = MemberConfig(heartbeat_interval=60.0, liveness_timeout=None, sync_interval=None)
BEACON_PERIOD = 0.25
#: Worker processes by default (see benchmarks/e2e.md for why).
DEFAULT_PROCESSES = 2
#: The worker of the members on a measured path: the creator m0 and the joiners.
LEAD = 0
#: Scheduling priority (nice) of the crowd's workers by default (see benchmarks/e2e.md).
CROWD_NICE = 10
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="8,32,128",
        help="group sizes at which join latency is measured (comma separated)",
    )
    parser.add_argument(
        "--joins", type=int, default=6, help="timed joins per group size (the last ones)"
    )
    parser.add_argument(
        "--concurrent", type=int, default=16, help="members joining at once for that test"
    )
    parser.add_argument(
        "--into", type=int, default=32, help="group size the concurrent joiners join"
    )
    parser.add_argument("--removals", type=int, default=5, help="timed leaves")
    parser.add_argument(
        "--batch", type=int, default=16, help="members added at once while building a group"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULT_PROCESSES,
        help="1: relay, lock service and members in this one process; P > 1: relay and lock "
        "service here, the members in P worker processes (m0 and the joiners in worker 0)",
    )
    parser.add_argument(
        "--crowd-nice",
        type=int,
        default=CROWD_NICE,
        help="with --processes > 1: nice value of the workers that host the members on no "
        "measured path (0: same priority as the relay, the lock service and worker 0)",
    )


@dataclass
class Probe:
    """Times of one joiner: KeyPackage published, Welcome processed, first media decrypted."""

    kp: float = 0.0
    welcomed: float = 0.0
    media: float = 0.0

    @property
    def ms(self) -> float:
        return (self.media - self.kp) * 1000


def _progress(text: str) -> None:
    print(text, flush=True)


async def _build(world: World, names: Sequence[str], batch: int) -> list[GroupMember]:
    """The first member creates the group, the rest join in concurrent batches (not timed)."""
    out = [await world.join(names[0], 60.0)]
    for i in range(1, len(names), batch):
        chunk = names[i : i + batch]
        members = await asyncio.gather(*(world.add(n) for n in chunk))
        await asyncio.gather(*(m.wait_joined(120.0) for m in members))
        out += members
    if not await world.converge(120.0):
        raise RuntimeError("the group did not converge while being built")
    return out


async def beacon(member: GroupMember, stop: asyncio.Event) -> None:
    """Publish a media object as soon as the member enters each epoch (and every so often).

    An object per epoch change is what a joiner needs to decrypt something right away; a fast
    periodic sender would instead load the relay with N objects per period.
    """
    entered = asyncio.Event()
    previous = member.on_action

    def on_action(m: GroupMember, action: ev.Action) -> None:
        if previous is not None:
            previous(m, action)
        if isinstance(action, ev.EpochEntered):
            entered.set()

    member.on_action = on_action
    try:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await member.publish_media(b"beacon", b"tick")
            entered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entered.wait(), BEACON_PERIOD)
    finally:
        member.on_action = previous


async def timed_join(world: World, name: str) -> Probe:
    probe = Probe()
    kp_namespace = GroupTracks(world.group).namespace(TrackKind.KEYPACKAGE)

    def on_action(m: GroupMember, action: ev.Action) -> None:
        if isinstance(action, ev.Publish) and action.namespace == kp_namespace:
            probe.kp = probe.kp or time.monotonic()
        elif isinstance(action, ev.EpochEntered) and action.how == "welcomed":
            probe.welcomed = time.monotonic()

    member = await world.add(name, on_action=on_action)
    async for _ in member.media():
        probe.media = time.monotonic()
        break
    return probe


async def _join_latency(size: int, joins: int, batch: int) -> list[float]:
    async with World.start(f"join{size}", BENCH_CONFIG) as world:
        base = max(2, size - joins)
        _progress(f"  building a group of {base} ...")
        members = await _build(world, [f"m{i}" for i in range(base)], batch)
        stop = asyncio.Event()
        beaconing = asyncio.create_task(beacon(members[0], stop))
        samples: list[float] = []
        try:
            for i in range(size - base):
                probe = await asyncio.wait_for(timed_join(world, f"t{i}"), 60.0)
                samples.append(probe.ms)
                _progress(
                    f"  join into {base + i}: {probe.ms:.1f} ms "
                    f"(welcome after {(probe.welcomed - probe.kp) * 1000:.1f} ms)"
                )
        finally:
            stop.set()
            await beaconing
        return samples


async def _concurrent(into: int, k: int, batch: int) -> float:
    async with World.start("concurrent", BENCH_CONFIG) as world:
        _progress(f"  building a group of {into} ...")
        await _build(world, [f"m{i}" for i in range(into)], batch)
        start = time.monotonic()
        joiners = await asyncio.gather(*(world.add(f"j{i}") for i in range(k)))
        await asyncio.gather(*(j.wait_joined(120.0) for j in joiners))
        elapsed = time.monotonic() - start
        _progress(f"  {k} joined a group of {into} in {elapsed:.3f} s")
        return elapsed


async def _removals(size: int, count: int, batch: int) -> list[float]:
    async with World.start("removal", BENCH_CONFIG) as world:
        _progress(f"  building a group of {size + count} ...")
        members = await _build(world, [f"m{i}" for i in range(size + count)], batch)
        samples: list[float] = []
        for leaver in members[-count:]:
            remaining = [m for m in world.live() if m is not leaver]
            target = leaver.epoch + 1
            start = leaver.request_leave()
            await asyncio.gather(*(m.wait_epoch(target, 60.0) for m in remaining))
            samples.append((time.monotonic() - start) * 1000)
            _progress(f"  removal at {len(remaining) + 1} members: {samples[-1]:.1f} ms")
            await leaver.close()
        return samples


# ---------------------------------------------------------------- members in worker processes


def _crowd(i: int, processes: int) -> int:
    """The worker of the i-th member that is not on a join's path: every worker but the
    lead's, in turn (the lead's own when it is the only one)."""
    return 1 + i % (processes - 1) if processes > 1 else LEAD


async def _build_procs(cluster: Cluster, names: Sequence[str], batch: int) -> None:
    """As `_build`: m0 creates the group in the lead worker, the rest join the crowd."""
    processes = len(cluster.workers)
    await cluster.add([(names[0], LEAD)], 60.0)
    for i in range(1, len(names), batch):
        chunk = names[i : i + batch]
        await cluster.add([(n, _crowd(i + k, processes)) for k, n in enumerate(chunk)])
    if await cluster.converge(120.0) is None:
        raise RuntimeError("the group did not converge while being built")


def _niceness(processes: int, crowd_nice: int) -> list[int]:
    return [0] + [crowd_nice] * (processes - 1)


async def _join_latency_procs(
    size: int, joins: int, batch: int, processes: int, crowd_nice: int
) -> list[float]:
    niceness = _niceness(processes, crowd_nice)
    async with Cluster.start(f"join{size}", BENCH_CONFIG, processes, niceness) as cluster:
        base = max(2, size - joins)
        _progress(f"  building a group of {base} over {processes} worker processes ...")
        await _build_procs(cluster, [f"m{i}" for i in range(base)], batch)
        lead = cluster.workers[LEAD]
        await lead.call("beacon", 30.0, name="m0", on=True)
        samples: list[float] = []
        for i in range(size - base):
            times = await lead.call("timed_join", 70.0, name=f"t{i}", timeout=60.0)
            probe = Probe(times["kp"], times["welcomed"], times["media"])
            samples.append(probe.ms)
            _progress(
                f"  join into {base + i}: {probe.ms:.1f} ms "
                f"(welcome after {(probe.welcomed - probe.kp) * 1000:.1f} ms)"
            )
        await lead.call("beacon", 30.0, name="m0", on=False)
        return samples


async def _concurrent_procs(
    into: int, k: int, batch: int, processes: int, crowd_nice: int
) -> float:
    niceness = _niceness(processes, crowd_nice)
    async with Cluster.start("concurrent", BENCH_CONFIG, processes, niceness) as cluster:
        _progress(f"  building a group of {into} over {processes} worker processes ...")
        await _build_procs(cluster, [f"m{i}" for i in range(into)], batch)
        start = time.monotonic()
        # the measured members, with m0 (one event loop for k joiners is their worst case)
        joined = await cluster.add([(f"j{i}", LEAD) for i in range(k)])
        elapsed = joined - start
        _progress(f"  {k} joined a group of {into} in {elapsed:.3f} s")
        return elapsed


async def _removals_procs(
    size: int, count: int, batch: int, processes: int, crowd_nice: int
) -> list[float]:
    # every remaining member must reach the new epoch, the deprioritised crowd included
    niceness = _niceness(processes, crowd_nice)
    async with Cluster.start("removal", BENCH_CONFIG, processes, niceness) as cluster:
        _progress(f"  building a group of {size + count} over {processes} worker processes ...")
        names = [f"m{i}" for i in range(size + count)]
        await _build_procs(cluster, names, batch)
        samples: list[float] = []
        for leaver in names[-count:]:
            state = await cluster.state()
            worker = cluster.worker_of(leaver)
            start = await worker.call("leave", 30.0, name=leaver)
            reached = await cluster.reached(state[leaver]["epoch"] + 1, [leaver])
            samples.append((reached - start) * 1000)
            _progress(f"  removal at {len(state)} members: {samples[-1]:.1f} ms")
            await worker.call("close_member", 30.0, name=leaver)
        return samples


def _attempt(what: str, work: Coroutine[Any, Any, T]) -> T | None:
    """Run one measurement; a failure or timeout is reported, not fatal to the others."""
    try:
        return asyncio.run(work)
    except (TimeoutError, RuntimeError, E2EEError) as exc:  # a WorkerError is a RuntimeError
        _progress(f"  {what} FAILED: {type(exc).__name__}: {exc}")
        return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.CRITICAL)
    procs = args.processes
    if procs < 1:
        raise SystemExit("moqmls bench e2e: --processes must be at least 1")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    layout = (
        "one process"
        if procs == 1
        else f"relay + lock service in one process, members in {procs} worker processes "
        f"(crowd at nice {args.crowd_nice})"
    )
    _progress(f"layout: {layout}")
    results: dict[str, float | None] = {}
    rows: list[tuple[str, float | None, float | None]] = []
    for size in sizes:
        _progress(f"join latency at N = {size}")
        work = (
            _join_latency(size, args.joins, args.batch)
            if procs == 1
            else _join_latency_procs(size, args.joins, args.batch, procs, args.crowd_nice)
        )
        samples = _attempt(f"N = {size}", work)
        p50 = percentile(samples, 50) if samples else None
        p95 = percentile(samples, 95) if samples else None
        results[f"join.n{size}.p50_ms"] = None if p50 is None else round(p50, 1)
        results[f"join.n{size}.p95_ms"] = None if p95 is None else round(p95, 1)
        rows.append((f"join p50, N={size} (ms)", p50, 100.0 if size <= 32 else None))
        rows.append((f"join p95, N={size} (ms)", p95, 250.0 if size <= 32 else 500.0))
    _progress(f"{args.concurrent} concurrent joins into {args.into}")
    concurrent = (
        _concurrent(args.into, args.concurrent, args.batch)
        if procs == 1
        else _concurrent_procs(args.into, args.concurrent, args.batch, procs, args.crowd_nice)
    )
    elapsed = _attempt("concurrent joins", concurrent)
    key = f"concurrent{args.concurrent}.into{args.into}_s"
    results[key] = None if elapsed is None else round(elapsed, 3)
    rows.append((f"{args.concurrent} joins at once into {args.into} (s)", elapsed, 1.0))
    _progress("removal latency")
    leaving = (
        _removals(args.into, args.removals, args.batch)
        if procs == 1
        else _removals_procs(args.into, args.removals, args.batch, procs, args.crowd_nice)
    )
    removals = _attempt("removals", leaving)
    removal_p95 = percentile(removals, 95) if removals else None
    results["removal.p95_ms"] = None if removal_p95 is None else round(removal_p95, 1)
    rows.append(("removal p95 (ms)", removal_p95, 2000.0))
    print()
    print(f"layout: {layout}")
    print(f"{'measure':<36} {'value':>10} {'target':>10} {'value/target':>13}")
    for name, value, target in rows:
        shown_value = "failed" if value is None else f"{value:.1f}"
        shown_target = "-" if target is None else f"{target:.0f}"
        ratio = "-" if value is None or target is None else f"{value / target:.2f}"
        print(f"{name:<36} {shown_value:>10} {shown_target:>10} {ratio:>13}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**results, "processes": procs, "layout": layout}, f, indent=2)
    return 0 if all(v is not None for v in results.values()) else 1
