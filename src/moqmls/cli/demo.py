"""`moqmls demo`: the whole system on loopback, and a proof that it works.

A relay (self-signed certificate made at start), an embedded lock service (SQLite in a temp
dir) and N members in one process: N-K join one by one, K join at the same moment, every
member sends encrypted media that every other member decrypts, M members leave, and the
departed ones, still subscribed to the media through the relay, decrypt nothing that follows.
Exit status 1 if anything did not converge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from moqmls.e2ee.errors import ConvergenceError
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.world import World, percentile

JSON_KEYS = (
    "members",
    "epochs",
    "authenticators_equal",
    "join_ms",
    "media_sent",
    "media_decrypted",
    "media_expected",
    "departed_decrypted_after_leave",
    "forks",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=8, metavar="N", help="members in total")
    parser.add_argument(
        "--concurrent",
        type=int,
        default=None,
        metavar="K",
        help="of which K join at the same moment (default: min(4, N-1))",
    )
    parser.add_argument("--leave", type=int, default=1, metavar="M", help="members that leave")
    parser.add_argument("--json", action="store_true", help="print only a JSON summary")
    parser.add_argument("--group", default="demo", help="MLS group / MoQT namespace name")
    parser.add_argument(
        "--store", default="sqlite", help="lock store: sqlite (temp dir) | memory | etcd://H:P,..."
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds allowed for each phase to converge"
    )
    parser.add_argument("--verbose", action="store_true", help="also log the members' decisions")


def run(args: argparse.Namespace) -> int:
    if args.concurrent is None:
        args.concurrent = max(0, min(4, args.members - 1))
    if args.members < 2 or not 0 <= args.concurrent <= args.members - 1:
        print("need --members >= 2 and 0 <= --concurrent < --members", file=sys.stderr)
        return 2
    if not 0 <= args.leave <= args.members - 1:
        print("need 0 <= --leave < --members", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR, format="    %(message)s"
    )
    summary = asyncio.run(_demo(args))
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k in JSON_KEYS}))
    else:
        _print_summary(summary)
    return 0 if summary["ok"] is True else 1


async def _demo(args: argparse.Namespace) -> dict[str, Any]:
    show = None if args.json else print
    config = MemberConfig(heartbeat_interval=1.0, liveness_timeout=10.0)
    sent = decrypted = expected = 0
    failures: list[str] = []
    async with World.start(args.group, config, args.store, on_line=show) as world:
        world.say(f"relay at {world.relay_url}, lock service at {world.lock_url}")
        n, k, m = args.members, args.concurrent, args.leave
        try:
            for i in range(n - k):
                await world.join(f"member-{i}", args.timeout)
            if k:
                world.say(f"{k} members join at the same moment")
                await asyncio.gather(*(world.add(f"member-{i}") for i in range(n - k, n)))
                await asyncio.gather(
                    *(mb.wait_joined(args.timeout) for mb in world.members.values())
                )
            if not await world.converge(args.timeout):
                raise ConvergenceError("members did not converge after joining")
            everyone = list(world.members.values())
            s, d, x = await world.media_round(everyone, everyone, "hello", args.timeout)
            sent, decrypted, expected = sent + s, decrypted + d, expected + x
            world.say(f"media: {d}/{x} objects decrypted ({s} sent, one per member)")
            departed = everyone[len(everyone) - m :] if m else []
            for leaver in departed:
                world.say(f"{leaver.sender_id} leaves")
                await leaver.leave(args.timeout, close=False)
            remaining = [mb for mb in everyone if mb not in departed]
            if not await world.converge(args.timeout, {mb.sender_id for mb in remaining}):
                raise ConvergenceError("members did not converge after the leave")
            spy_before = sum(mb.media_stats.decrypted for mb in departed)
            s, d, x = await world.media_round(remaining, remaining, "after", args.timeout)
            sent, decrypted, expected = sent + s, decrypted + d, expected + x
            await asyncio.sleep(0.3)  # let the departed members receive the ciphertext too
            departed_decrypted = sum(mb.media_stats.decrypted for mb in departed) - spy_before
            departed_seen = sum(mb.media_stats.failed for mb in departed)
            world.say(f"media after the leave: {d}/{x} decrypted by the remaining members")
            if departed:
                world.say(
                    f"departed members received {departed_seen} objects they could not "
                    f"decrypt and decrypted {departed_decrypted}"
                )
        except (ConvergenceError, TimeoutError) as exc:
            failures.append(str(exc) or type(exc).__name__)
            departed_decrypted = -1
        live = world.live()
        joins = [r.ms for r in world.joins.values() if r.epoch > 0]
        equal = world.authenticators_equal()
        summary: dict[str, Any] = {
            "members": len(live),
            "epochs": max((mb.epoch for mb in live), default=0),
            "authenticators_equal": equal,
            "join_ms": {
                "p50": round(percentile(joins, 50), 1),
                "p95": round(percentile(joins, 95), 1),
            },
            "media_sent": sent,
            "media_decrypted": decrypted,
            "media_expected": expected,
            "departed_decrypted_after_leave": departed_decrypted,
            "forks": world.forks(),
        }
        ok = (
            not failures
            and equal
            and decrypted == expected
            and departed_decrypted == 0
            and summary["forks"] == 0
            and len(live) == args.members - args.leave
        )
        summary["ok"] = ok
        if failures:
            summary["failures"] = failures
        summary["committers"] = sorted({r.committer for r in world.joins.values() if r.committer})
        return summary


def _print_summary(summary: dict[str, Any]) -> None:
    print()
    print("summary")
    rows = [
        ("members now", summary["members"]),
        ("epochs", summary["epochs"]),
        ("epoch authenticators equal", summary["authenticators_equal"]),
        ("join latency p50 / p95", f"{summary['join_ms']['p50']} / {summary['join_ms']['p95']} ms"),
        (
            "media decrypted / expected",
            f"{summary['media_decrypted']} / {summary['media_expected']}",
        ),
        ("decrypted by departed members", summary["departed_decrypted_after_leave"]),
        ("forks", summary["forks"]),
        ("committers", ", ".join(summary["committers"])),
    ]
    for name, value in rows:
        print(f"  {name:<32} {value}")
    for failure in summary.get("failures", []):
        print(f"  FAILED: {failure}")
    print("  converged" if summary["ok"] else "  NOT CONVERGED")
