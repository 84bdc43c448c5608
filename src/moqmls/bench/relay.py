"""`moqmls bench relay`: 1 publisher -> N subscribers through our relay and moq-rs's.

Both relays run in their own process (so their CPU time can be read from /proc) and are
driven by the same client code: by default moq-rs's own client (Rust; its subscribers are
cheap, so the relay is the bottleneck being measured), or with `--client moqmls` ours. The
publisher announces its namespace (PUBLISH_NAMESPACE) and every subscriber SUBSCRIBEs to
the one track; subscribers live in `--workers` processes. Objects of `--size` bytes go out
at `--rate` per second for `--duration` seconds (groups of `--group` objects, each group's
stream closed with FIN); every payload carries its send time, so each receiver measures
publish->receive latency. Besides the relay's CPU seconds, the table shows those of the
subscriber workers (from READY on) and of this publishing process, since all of them share
the machine's cores with the relay; and the load average.
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
from typing import Any, Protocol

from moqmls.moqt.client import ObjectStream, connect

NAMESPACE = ("bench", "relay")
TRACK = "stream"
HEADER = struct.Struct(">QQ")  # sequence number, send time (ns, CLOCK_MONOTONIC)

_WORKER = "from moqmls.bench.relay import worker_main; worker_main()"

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
        "--workers",
        type=int,
        default=2,
        help="subscriber processes sharing the subscribers (default 2)",
    )
    parser.add_argument(
        "--drain", type=float, default=5.0, help="seconds to wait for stragglers (default 5)"
    )
    parser.add_argument(
        "--client",
        choices=("moqrs", "moqmls"),
        default="moqrs",
        help="client stack driving both relays: moq-rs's (Rust, so the relay is what is "
        "measured) or ours (Python) (default: %(default)s)",
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
    #: CPU seconds of the subscriber worker processes, and of this (publishing) process
    subscribers_cpu_s: float = 0.0
    publisher_cpu_s: float = 0.0

    @property
    def ratio(self) -> float:
        return self.delivered / self.expected if self.expected else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _start_process(
    argv: list[str], marker: str, stdin: bool = False
) -> tuple[asyncio.subprocess.Process, str]:
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        limit=1 << 26,
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


class _Publisher(Protocol):
    """The publishing side, written with one of the two client stacks."""

    async def start(self, url: str) -> None: ...

    async def write(self, group: int, obj: int, payload: bytes, last: bool) -> None: ...

    async def close(self) -> None: ...


class _MoqmlsPublisher:
    async def start(self, url: str) -> None:
        self.client = await connect(url, verify=False)
        self.track = await self.client.publish(NAMESPACE, TRACK, announce="namespace")

    async def write(self, group: int, obj: int, payload: bytes, last: bool) -> None:
        await self.track.write(group, obj, payload, end_of_group=last)

    async def close(self) -> None:
        await self.client.close()


class _MoqrsPublisher:
    async def start(self, url: str) -> None:
        import moq

        self.client = _rs_client(moq, url)
        await self.client.__aenter__()
        self.broadcast = self.client.create_broadcast("/".join(NAMESPACE))
        self.track = self.broadcast.publish_track(TRACK)
        self.broadcast.announce()
        self.group: Any = None

    async def write(self, group: int, obj: int, payload: bytes, last: bool) -> None:
        if obj == 0:
            self.group = self.track.create_group(group)
        self.group.write_frame(payload)
        if last:
            self.group.finish()

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)


def _rs_client(moq: Any, url: str) -> Any:
    return moq.Client(url, tls_verify=False, reconnect=False, websocket_enabled=False)


class _Tally:
    """What one worker process received."""

    def __init__(self, expected: int) -> None:
        self.delivered = 0
        self.lat: list[float] = []
        self.expected = expected
        self.done = asyncio.Event()
        self.ready = 0

    def record(self, payload: bytes, seen: set[int]) -> None:
        now = time.monotonic_ns()
        seq, sent = HEADER.unpack_from(payload)
        if seq in seen:
            return
        seen.add(seq)
        self.delivered += 1
        self.lat.append(round((now - sent) / 1e6, 3))
        if self.delivered >= self.expected:
            self.done.set()


async def _moqmls_subscriber(url: str, tally: _Tally) -> None:
    client = await connect(url, verify=False)
    try:
        stream: ObjectStream = await client.subscribe(NAMESPACE, TRACK)
        tally.ready += 1
        seen: set[int] = set()
        async for obj in stream:
            tally.record(obj.payload, seen)
    finally:
        await client.close()


async def _moqrs_subscriber(url: str, tally: _Tally) -> None:
    import moq

    seen: set[int] = set()
    readers: set[asyncio.Task[None]] = set()

    async def read(group: Any) -> None:
        while (frame := await group.read_frame()) is not None:
            tally.record(frame.payload, seen)

    async with _rs_client(moq, url) as client:
        broadcast = await client.announced_broadcast("/".join(NAMESPACE))
        track = await broadcast.subscribe_track(TRACK)
        tally.ready += 1
        async for group in track.groups_as_arrived():
            task = asyncio.ensure_future(read(group))
            readers.add(task)
            task.add_done_callback(readers.discard)


async def _worker(kind: str, url: str, count: int, expected_each: int) -> None:
    """A subscriber process: `count` sessions of client stack `kind` on the bench track."""
    tally = _Tally(count * expected_each)
    run = _moqmls_subscriber if kind == "moqmls" else _moqrs_subscriber
    tasks = [asyncio.ensure_future(run(url, tally)) for _ in range(count)]
    while tally.ready < count:
        await asyncio.sleep(0.05)
        if any(t.done() for t in tasks):
            break
    print("READY", flush=True)
    cpu_ready = time.process_time()
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.wait(
        [asyncio.ensure_future(tally.done.wait()), stop], return_when=asyncio.FIRST_COMPLETED
    )
    report = {
        "delivered": tally.delivered,
        "lat": tally.lat,
        "cpu": time.process_time() - cpu_ready,
    }
    print(json.dumps(report), flush=True)
    os._exit(0)  # skip teardown of hundreds of sessions; the stdin thread may still block


def worker_main() -> None:
    """Entry point of a subscriber worker: CLIENT URL COUNT EXPECTED_PER_SUBSCRIBER."""
    asyncio.run(_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))


async def measure(name: str, url: str, pid: int, args: argparse.Namespace) -> Measure:
    """Publish through the relay at `url`; subscriber worker processes report what they got."""
    m = Measure(name)
    total = int(args.rate * args.duration)
    workers: list[asyncio.subprocess.Process] = []
    publisher: _Publisher = _MoqmlsPublisher() if args.client == "moqmls" else _MoqrsPublisher()
    await publisher.start(url)
    try:
        n = max(1, min(args.workers, args.subscribers))
        shares = [args.subscribers // n + (1 if i < args.subscribers % n else 0) for i in range(n)]
        for share in shares:
            proc, _ = await _start_process(
                [sys.executable, "-c", _WORKER, args.client, url, str(share), str(total)],
                "READY",
                stdin=True,
            )
            workers.append(proc)
        await asyncio.sleep(0.5)
        print(
            f"  {name}: {args.subscribers} {args.client} subscribers in {n} processes, publishing",
            flush=True,
        )
        padding = b"\0" * max(0, args.size - HEADER.size)
        cpu0 = _cpu_seconds(pid)
        pub0 = time.process_time()
        start = time.monotonic()
        for seq in range(total):
            delay = start + seq / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = HEADER.pack(seq, time.monotonic_ns()) + padding
            group, obj = divmod(seq, args.group)
            await publisher.write(group, obj, payload, obj == args.group - 1 or seq == total - 1)
        m.expected = total * args.subscribers
        readers = [asyncio.ensure_future(_read_report(w)) for w in workers]
        await asyncio.wait(readers, timeout=args.drain)
        m.cpu_s = _cpu_seconds(pid) - cpu0
        m.publisher_cpu_s = time.process_time() - pub0
        for w, reader in zip(workers, readers, strict=True):
            if not reader.done() and w.stdin is not None:
                w.stdin.write(b"STOP\n")
        for report in await asyncio.gather(*readers):
            m.delivered += report["delivered"]
            m.latencies_ms.extend(report["lat"])
            m.subscribers_cpu_s += report.get("cpu", 0.0)
    finally:
        await publisher.close()
        for w in workers:
            await _stop(w)
    return m


async def _read_report(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The JSON line a worker prints when it is done."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    report: dict[str, Any] = json.loads(line) if line else {"delivered": 0, "lat": []}
    return report


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
        f"{m.percentile(50):>8.2f} {m.percentile(99):>8.2f} {m.cpu_s:>9.2f} "
        f"{m.subscribers_cpu_s:>10.2f} {m.publisher_cpu_s:>8.2f}"
    )


async def _main(args: argparse.Namespace) -> int:
    print(
        f"relay bench: 1 publisher -> {args.subscribers} subscribers, {args.size} B objects, "
        f"{args.rate}/s for {args.duration:g} s",
        flush=True,
    )
    load_before = _loadavg()
    results: dict[str, Measure] = {}
    if args.only in (None, "ours"):
        results["ours"] = await _run_ours(args)
    if args.only in (None, "moqrs"):
        results["moqrs"] = await _run_moqrs(args)
    print(f"load average: {_loadavg()} (before: {load_before})")
    print(
        f"{'relay':<8} {'delivered/expected':>19} {'ratio':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU s':>9} {'subs CPU':>10} {'pub CPU':>8}"
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
