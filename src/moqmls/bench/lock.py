"""`moqmls bench lock`: lock+complete commit cycles per second and their latency, per store.

Each configuration runs the real service (`moqmls lock-service`, a separate process, as in
production) on loopback and N concurrent clients, each committing epoch after epoch of its
own group: lock(E) -> Acquired -> complete(token, Commit bytes) -> Committed. A cycle's
latency runs from sending the lock to receiving Committed. The in-memory store is the peer
every other store is compared with (the cost of the HTTP service alone). The etcd
configuration starts its own 3-member cluster on loopback (data on /dev/shm). SQLite runs
with its default durability (an fsync per epoch advance); `--stores sqlite-normal` measures
it without that fsync.

Target (issue 6): >= 500 cycles/s and p99 <= 20 ms on SQLite with 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from moqmls.lock import Acquired, Committed, Create, LockClient
from moqmls.lock.etcd_cluster import EtcdCluster

STORES = ("memory", "sqlite", "etcd")
TARGET_CYCLES = 500.0
TARGET_P99_MS = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="measured time per configuration (default 3)"
    )
    parser.add_argument(
        "--stores",
        default=",".join(STORES),
        help="comma-separated stores to measure: memory, sqlite (Committed after a WAL fsync), "
        "sqlite-normal (no fsync), etcd (default memory,sqlite,etcd)",
    )
    parser.add_argument(
        "--clients",
        default="1,8",
        help="comma-separated numbers of concurrent clients (default 1,8)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per configuration; the table shows each metric's median (default 3)",
    )
    parser.add_argument(
        "--commit-bytes", type=int, default=512, help="size of each stored Commit (default 512)"
    )


@dataclass(frozen=True)
class Result:
    """One configuration's measurement (or the median of several)."""

    store: str
    clients: int
    cycles_per_s: float
    p50_ms: float
    p99_ms: float
    cycles: int


def _median(runs: list[Result]) -> Result:
    """Each metric's median over repeated runs (one noisy run moves none of them)."""
    first = runs[0]
    return Result(
        first.store,
        first.clients,
        statistics.median(r.cycles_per_s for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.cycles for r in runs),
    )


@contextlib.asynccontextmanager
async def lock_service_process(
    store: str, *options: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`python -m moqmls lock-service` on an ephemeral loopback port, as in production;
    yields its URL and process, and always reaps it (SIGTERM, then SIGKILL after 10 s)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "moqmls",
        "lock-service",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        *options,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if "listening on " not in line:
            raise RuntimeError(f"lock-service did not start: {line!r}")
        yield line.split("listening on ", 1)[1].split()[0], proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _cycles(
    client: LockClient, group: str, until: float, warm_until: float, commit: bytes
) -> list[float]:
    """Commit epochs of `group` until `until`; latencies (s) of cycles after `warm_until`."""
    created = await client.create_or_join(group, "bench")
    assert isinstance(created, Create), created
    await client.complete(created.token)
    epoch, latencies = 0, []
    loop = asyncio.get_running_loop()
    while (start := loop.time()) < until:
        got = await client.lock(group, epoch, "bench")
        assert isinstance(got, Acquired), got
        done = await client.complete(got.token, commit=commit + epoch.to_bytes(8, "big"))
        assert isinstance(done, Committed), done
        epoch = done.epoch
        if start >= warm_until:
            latencies.append(loop.time() - start)
    return latencies


async def _measure(
    store: str, spec: tuple[str, ...], clients: int, seconds: float, size: int
) -> Result:
    async with lock_service_process(*spec, "--max-inflight", "4096") as (url, _):
        pool = [LockClient(url) for _ in range(clients)]
        try:
            loop = asyncio.get_running_loop()
            warm_until = loop.time() + min(1.0, seconds / 3)
            until = warm_until + seconds
            run = os.urandom(4).hex()
            commit = os.urandom(size)
            per_client = await asyncio.gather(
                *(
                    _cycles(c, f"bench-{run}-{i}", until, warm_until, commit)
                    for i, c in enumerate(pool)
                )
            )
        finally:
            for c in pool:
                await c.close()
    latencies = sorted(x for xs in per_client for x in xs)
    if len(latencies) < 2:
        raise RuntimeError(f"{store}: too few cycles measured")
    cuts = statistics.quantiles(latencies, n=100)
    rate = len(latencies) / seconds
    return Result(store, clients, rate, cuts[49] * 1000, cuts[98] * 1000, len(latencies))


@contextlib.contextmanager
def _store_spec(store: str) -> Iterator[tuple[str, ...]]:
    """The service's --store argument (and options) for a benchmarked store."""
    if store == "memory":
        yield ("memory",)
    elif store in ("sqlite", "sqlite-normal"):
        sync = "normal" if store == "sqlite-normal" else "full"
        with tempfile.TemporaryDirectory(prefix="moqmls-bench-lock-") as tmp:
            yield (f"sqlite:{Path(tmp) / 'lock.db'}", "--sqlite-sync", sync)
    elif store == "etcd":
        print("  starting a 3-member etcd cluster on loopback ...", flush=True)
        with EtcdCluster(3) as cluster:
            yield (cluster.spec,)
    else:
        raise ValueError(f"unknown store {store!r}")


def _table(results: list[Result]) -> str:
    peer = {r.clients: r.cycles_per_s for r in results if r.store == "memory"}
    head = ("store", "clients", "cycles/s", "p50 ms", "p99 ms", "vs memory")
    lines = ["{:<14} {:>7} {:>10} {:>8} {:>8} {:>10}".format(*head)]
    for r in results:
        ratio = f"{r.cycles_per_s / peer[r.clients]:.2f}x" if r.clients in peer else "-"
        lines.append(
            f"{r.store:<14} {r.clients:>7} {r.cycles_per_s:>10.0f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {ratio:>10}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    results: list[Result] = []
    load_before = os.getloadavg()[0]
    for store in stores:
        with _store_spec(store) as spec:
            for clients in counts:
                runs = []
                for n in range(args.repeat):
                    print(
                        f"- {store}, {clients} client(s), run {n + 1}/{args.repeat}, "
                        f"{args.seconds:g} s ...",
                        flush=True,
                    )
                    result = asyncio.run(
                        _measure(store, spec, clients, args.seconds, args.commit_bytes)
                    )
                    runs.append(result)
                    print(
                        f"  {result.cycles_per_s:.0f} cycles/s, p50 {result.p50_ms:.2f} ms, "
                        f"p99 {result.p99_ms:.2f} ms ({result.cycles} cycles)",
                        flush=True,
                    )
                results.append(_median(runs))
    print()
    print(
        f"medians of {args.repeat} run(s) per row; 1-min load average before "
        f"{load_before:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    print(_table(results))
    for r in results:
        if r.store == "sqlite" and r.clients == 8:
            ok = r.cycles_per_s >= TARGET_CYCLES and r.p99_ms <= TARGET_P99_MS
            print(
                f"\ntarget sqlite, 8 clients: >= {TARGET_CYCLES:.0f} cycles/s and p99 <= "
                f"{TARGET_P99_MS:.0f} ms: {'met' if ok else 'NOT met'}"
            )
    if args.json:
        flat: dict[str, float] = {}
        for r in results:
            key = f"{r.store}.c{r.clients}"
            flat[f"{key}.cycles_per_s"] = round(r.cycles_per_s, 1)
            flat[f"{key}.p50_ms"] = round(r.p50_ms, 3)
            flat[f"{key}.p99_ms"] = round(r.p99_ms, 3)
        Path(args.json).write_text(json.dumps(flat, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json}")
    return 0
