"""`moqmls bench relay`: 1 publisher -> N subscribers through our relay and moq-rs's.

Both relays run in their own process (so their CPU time can be read from /proc) and are
driven by the same `moqmls.moqt` client code in this process: the publisher announces its
namespace (PUBLISH_NAMESPACE, which moq-rs supports) and every subscriber SUBSCRIBEs to the
one track. Objects of `--size` bytes go out at `--rate` per second for `--duration`
seconds (groups of `--group` objects, each group's stream closed with FIN); every payload
carries its send time, so each receiver measures publish->receive latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from moqmls.moqt.client import MoQTClient, ObjectStream, connect

NAMESPACE = ("bench", "relay")
TRACK = "stream"
HEADER = struct.Struct(">QQ")  # sequence number, send time (ns, CLOCK_MONOTONIC)

_MOQRS_SERVER = """
import asyncio, sys, moq
async def main():
    async with moq.Server("127.0.0.1:0", tls_generate=["localhost"]) as server:
        print("moq-rs listening on moqt://" + str(server.local_addr), flush=True)
        await server.serve()
asyncio.run(main())
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subscribers", type=int, default=100, help="subscribers (default 100)")
    parser.add_argument("--rate", type=int, default=500, help="objects per second (default 500)")
    parser.add_argument("--size", type=int, default=1200, help="object size in bytes (1200)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument(
        "--group", type=int, default=250, help="objects per group, i.e. per stream (default 250)"
    )
    parser.add_argument(
        "--only", choices=("ours", "moqrs"), help="measure only one relay (no ratios)"
    )


@dataclass
class Measure:
    """What one run through one relay gave."""

    name: str
    expected: int = 0
    delivered: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def ratio(self) -> float:
        return self.delivered / self.expected if self.expected else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _start_process(argv: list[str], marker: str) -> tuple[asyncio.subprocess.Process, str]:
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError(f"{argv[0]} exited before listening")
        if marker in line:
            return proc, line.split()[-1]


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _receive(
    stream: ObjectStream, m: Measure, seen: set[tuple[int, int]], index: int
) -> None:
    async for obj in stream:
        now = time.monotonic_ns()
        seq, sent = HEADER.unpack_from(obj.payload)
        if (index, seq) not in seen:
            seen.add((index, seq))
            m.delivered += 1
            m.latencies_ms.append((now - sent) / 1e6)


async def measure(name: str, url: str, pid: int, args: argparse.Namespace) -> Measure:
    """Publish through the relay at `url` and collect what the subscribers get."""
    m = Measure(name)
    clients: list[MoQTClient] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        publisher = await connect(url, verify=False)
        clients.append(publisher)
        track = await publisher.publish(NAMESPACE, TRACK, announce="namespace")
        seen: set[tuple[int, int]] = set()
        for i in range(args.subscribers):
            sub = await connect(url, verify=False)
            clients.append(sub)
            stream = await sub.subscribe(NAMESPACE, TRACK)
            tasks.append(asyncio.ensure_future(_receive(stream, m, seen, i)))
        await asyncio.sleep(0.5)
        print(f"  {name}: {args.subscribers} subscribers ready, publishing", flush=True)
        total = int(args.rate * args.duration)
        padding = b"\0" * max(0, args.size - HEADER.size)
        cpu0 = _cpu_seconds(pid)
        start = time.monotonic()
        for seq in range(total):
            due = start + seq / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = HEADER.pack(seq, time.monotonic_ns()) + padding
            group, obj = divmod(seq, args.group)
            await track.write(group, obj, payload, end_of_group=obj == args.group - 1)
        m.expected = total * args.subscribers
        deadline = time.monotonic() + 5.0
        while m.delivered < m.expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        m.cpu_s = _cpu_seconds(pid) - cpu0
    finally:
        for task in tasks:
            task.cancel()
        for c in clients:
            await c.close()
    return m


async def _run_ours(args: argparse.Namespace) -> Measure:
    proc, url = await _start_process(
        [sys.executable, "-m", "moqmls", "relay", "--listen", "127.0.0.1:0"], "listening on"
    )
    try:
        return await measure("moqmls", url, proc.pid, args)
    finally:
        await _stop(proc)


async def _run_moqrs(args: argparse.Namespace) -> Measure:
    proc, url = await _start_process([sys.executable, "-c", _MOQRS_SERVER], "listening on")
    try:
        return await measure("moq-rs", url, proc.pid, args)
    finally:
        await _stop(proc)


def _row(m: Measure) -> str:
    return (
        f"{m.name:<8} {m.delivered:>9}/{m.expected:<9} {m.ratio:>8.4f} "
        f"{m.percentile(50):>8.2f} {m.percentile(99):>8.2f} {m.cpu_s:>9.2f}"
    )


async def _main(args: argparse.Namespace) -> int:
    print(
        f"relay bench: 1 publisher -> {args.subscribers} subscribers, {args.size} B objects, "
        f"{args.rate}/s for {args.duration:g} s",
        flush=True,
    )
    results: dict[str, Measure] = {}
    if args.only in (None, "ours"):
        results["ours"] = await _run_ours(args)
    if args.only in (None, "moqrs"):
        results["moqrs"] = await _run_moqrs(args)
    print(
        f"{'relay':<8} {'delivered/expected':>19} {'ratio':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU s':>9}"
    )
    for m in results.values():
        print(_row(m))
    verdict = "one relay measured: no comparison"
    if "ours" in results and "moqrs" in results:
        ours, rs = results["ours"], results["moqrs"]
        p99 = ours.percentile(99) / rs.percentile(99) if rs.percentile(99) else float("inf")
        cpu = ours.cpu_s / rs.cpu_s if rs.cpu_s else float("inf")
        print(f"ours/moq-rs: p99 x{p99:.2f}, relay CPU x{cpu:.2f} (target: lossless, both <= 2)")
        ok = ours.ratio == 1.0 and p99 <= 2.0 and cpu <= 2.0
        verdict = "target met" if ok else "target NOT met"
    if args.json:
        flat: dict[str, float] = {}
        for key, m in results.items():
            flat[f"{key}.delivered_ratio"] = m.ratio
            flat[f"{key}.p50_ms"] = m.percentile(50)
            flat[f"{key}.p99_ms"] = m.percentile(99)
            flat[f"{key}.cpu_s"] = m.cpu_s
        Path(args.json).write_text(json.dumps(flat, indent=2) + "\n")
    print(verdict, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
