"""Packets built per second with many idle QUIC streams: stock aioquic vs ParkingQuicConnection.

Usage: python3 benchmarks/quic_streams.py [--idle 0 300 1000] [--megabytes 4] [--rounds 3]
                                          [--json FILE]

Two real aioquic connections (client, server) exchange datagrams in memory, no loss. The
client opens IDLE bidirectional streams the way a MoQT relay's PUBLISH requests stay open
(one message each way, no FIN), then sends MEGABYTES on one more stream. Measured per
connection class, in the same process and run, alternating classes round by round:

- packets: datagrams both sides built during the transfer (data one way, ACKs the other);
- build s: CPU seconds inside `datagrams_to_send` (where aioquic walks the streams);
- packets/s: packets / build s;  transfer MB/s: MEGABYTES / all CPU seconds of the transfer.

The best of `--rounds` is reported for each class; "ratio" is parking over stock.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from moqmls.moqt.quic import self_signed_certificate
from moqmls.moqt.quic_streams import ParkingQuicConnection

CLASSES: dict[str, type[QuicConnection]] = {
    "stock": QuicConnection,
    "parking": ParkingQuicConnection,
}
CLIENT_ADDR = ("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.2", 4433)
STEP = 0.001


@dataclass(frozen=True)
class Result:
    """One transfer's measures."""

    kind: str
    idle: int
    packets: int
    build_seconds: float
    transfer_seconds: float

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.build_seconds

    def megabytes_per_second(self, megabytes: float) -> float:
        return megabytes / self.transfer_seconds


class Pair:
    """A client and a server QuicConnection joined in memory on a simulated clock."""

    def __init__(self, cls: type[QuicConnection], cert: object, key: object) -> None:
        ccfg = QuicConfiguration(is_client=True, alpn_protocols=["b"], idle_timeout=600)
        ccfg.verify_mode = ssl.CERT_NONE
        scfg = QuicConfiguration(is_client=False, alpn_protocols=["b"], idle_timeout=600)
        scfg.certificate, scfg.private_key = cert, key
        self.client = cls(configuration=ccfg)
        self.server = cls(
            configuration=scfg,
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        for conn in (self.client, self.server):
            for limit in (conn._local_max_streams_bidi, conn._local_max_streams_uni):
                limit.value = limit.sent = 4096
        self.now = 0.0
        self.packets = 0
        self.build = 0.0
        self.received: dict[int, int] = {}
        self.ended: set[int] = set()
        self.client.connect(SERVER_ADDR, now=self.now)

    def step(self) -> bool:
        sent = False
        for src, dst, addr in (
            (self.client, self.server, CLIENT_ADDR),
            (self.server, self.client, SERVER_ADDR),
        ):
            start = time.process_time()
            datagrams = src.datagrams_to_send(now=self.now)
            self.build += time.process_time() - start
            self.packets += len(datagrams)
            for data, _ in datagrams:
                sent = True
                dst.receive_datagram(data, addr, now=self.now)
                while (event := dst.next_event()) is not None:
                    if isinstance(event, qe.StreamDataReceived):
                        sid = event.stream_id
                        self.received[sid] = self.received.get(sid, 0) + len(event.data)
                        if event.end_stream:
                            self.ended.add(sid)
        return sent

    def settle(self) -> None:
        """Run until neither side has anything to send, ACKs included."""
        while True:
            if not self.step():
                self.now += 0.05  # past the ACK delay, so pending ACKs go out
                if not self.step():
                    return
            self.now += STEP

    def run_until(self, done: Callable[[], bool]) -> None:
        while not done():
            sent = self.step()
            timers = [t for c in (self.client, self.server) if (t := c.get_timer()) is not None]
            if not sent:
                if not timers:
                    raise RuntimeError("stalled")
                self.now = max(self.now + STEP, min(timers))
            else:
                self.now += STEP
            for conn in (self.client, self.server):
                timer = conn.get_timer()
                if timer is not None and timer <= self.now:
                    conn.handle_timer(now=self.now)


def measure(kind: str, idle: int, size: int, cert: object, key: object) -> Result:
    pair = Pair(CLASSES[kind], cert, key)
    pair.run_until(lambda: pair.client._handshake_complete and pair.server._handshake_complete)
    ids = []
    for i in range(idle):
        sid = pair.client.get_next_available_stream_id()
        pair.client.send_stream_data(sid, b"PUBLISH %d" % i)
        ids.append(sid)
    pair.run_until(lambda: all(sid in pair.received for sid in ids))
    for sid in ids:
        pair.server.send_stream_data(sid, b"OK")
    want = {sid: len(b"PUBLISH %d" % i) + 2 for i, sid in enumerate(ids)}
    pair.run_until(lambda: all(pair.received[sid] == n for sid, n in want.items()))
    pair.settle()
    active = pair.client.get_next_available_stream_id()
    pair.packets, pair.build = 0, 0.0
    start = time.process_time()
    pair.client.send_stream_data(active, b"\x00" * size, end_stream=True)
    pair.run_until(lambda: active in pair.ended)
    transfer = time.process_time() - start
    assert pair.received[active] == size
    return Result(kind, idle, pair.packets, pair.build, transfer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--idle",
        type=int,
        nargs="+",
        default=[0, 300, 1000],
        help="numbers of idle open streams to measure (default 0 300 1000)",
    )
    parser.add_argument(
        "--megabytes",
        type=float,
        default=4.0,
        help="bytes sent on the one active stream, in MB (default 4)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="transfers per class and idle count; the best is kept (default 3)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    cert, key = self_signed_certificate()
    size = int(args.megabytes * 1_000_000)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    best: dict[tuple[str, int], Result] = {}
    for idle in args.idle:
        for r in range(args.rounds):
            for kind in CLASSES:
                res = measure(kind, idle, size, cert, key)
                print(
                    f"  idle={idle:5d} round {r + 1} {kind:8s} {res.packets_per_second:9.0f} "
                    "packets/s",
                    flush=True,
                )
                key_ = (kind, idle)
                if key_ not in best or res.build_seconds < best[key_].build_seconds:
                    best[key_] = res
    print()
    print(
        f"{'idle':>5} {'class':8} {'packets':>8} {'build s':>8} {'packets/s':>10} "
        f"{'MB/s':>6} {'ratio':>6}"
    )
    rows = []
    for idle in args.idle:
        stock = best[("stock", idle)]
        for kind in CLASSES:
            res = best[(kind, idle)]
            ratio = res.packets_per_second / stock.packets_per_second
            print(
                f"{idle:5d} {kind:8} {res.packets:8d} {res.build_seconds:8.3f} "
                f"{res.packets_per_second:10.0f} {res.megabytes_per_second(args.megabytes):6.2f} "
                f"{ratio:6.2f}"
            )
            rows.append(
                {
                    **asdict(res),
                    "packets_per_second": res.packets_per_second,
                    "megabytes_per_second": res.megabytes_per_second(args.megabytes),
                    "ratio_vs_stock": ratio,
                }
            )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"loadavg": os.getloadavg(), "megabytes": args.megabytes, "rows": rows}, f, indent=1
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
