"""`moqmls bench mls`: MLS group operations (RFC 9420) at 10/100/1000 members, suite 0x0001.

Six metrics per group size N, each against the pure-Python `rfc9420` package in the same run
where that package supports the operation:

1. ``build_s``         the creator builds the group by adding N-1 members one commit at a time
2. ``add_commit_ms``   one Add commit (with its Welcome) in the group of N
3. ``add_process_ms``  another member processing that Add commit
4. ``join_ms``         the new member joining from its Welcome (ratchet tree included)
5. ``path_commit_ms``  a full-path commit (self-update) right after building the group
6. ``path_process_ms`` another member processing that commit

Repeated measurements (``--repeat``) report the median; commits are built without being merged
(RFC 9420 §14), and the processing member is restored from its saved state before each run.
The `rfc9420` peer is measured once per size (it keeps pending proposals in its state).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from moqmls.mls.group import Group, PendingCommit
from moqmls.mls.key_package import KeyPackagePrivate, make_key_package
from moqmls.mls.structs import Capabilities, MLSMessage

METRICS: tuple[str, ...] = (
    "build_s",
    "add_commit_ms",
    "add_process_ms",
    "join_ms",
    "path_commit_ms",
    "path_process_ms",
)
# Targets at N = 1000 (issue 3), in each metric's unit.
TARGETS_1000: dict[str, float] = {
    "build_s": 15.0,
    "add_commit_ms": 15.0,
    "add_process_ms": 3.0,
    "join_ms": 150.0,
    "path_commit_ms": 250.0,
}
PEER = "rfc9420"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes",
        default="10,100,1000",
        help="comma-separated group sizes to measure (default: 10,100,1000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="measurements per operation and size; the median is reported (default: 5)",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="do not measure the rfc9420 package even if it is installed",
    )
    parser.add_argument(
        "--peer-max-size",
        type=int,
        default=1000,
        help="measure rfc9420 only up to this group size (its build is slow; default: 1000)",
    )


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


# --------------------------------------------------------------------------- moqmls


def measure_moqmls(n: int, repeat: int) -> dict[str, float]:
    """The six metrics for this implementation at group size ``n``."""
    clients = [make_key_package(b"member-%d" % i) for i in range(n)]
    newcomer_kp, newcomer = make_key_package(b"newcomer")
    creator = Group.create(clients[0][1], group_id=b"bench-%d" % n)
    last_welcome: bytes | None = None
    start = time.perf_counter()
    for kp, _ in clients[1:]:
        pending = creator.commit(adds=[kp])
        creator.merge_pending(pending)
        last_welcome = pending.welcome
    build_s = time.perf_counter() - start
    _progress(f"  moqmls n={n}: built in {build_s:.2f} s")
    result: dict[str, float] = {"build_s": build_s}
    if n < 2 or last_welcome is None:
        return result
    other = Group.join_from_welcome(last_welcome, clients[-1][1])
    saved_other = other.to_bytes()

    adds = [_timed(lambda: creator.commit(adds=[newcomer_kp])) for _ in range(repeat)]
    result["add_commit_ms"] = _median_ms([t for t, _ in adds])
    result["add_process_ms"] = _process_ms(saved_other, [p for _, p in adds])
    welcome = adds[0][1].welcome
    assert welcome is not None
    joins = [_timed(lambda: Group.join_from_welcome(welcome, newcomer))[0] for _ in range(repeat)]
    result["join_ms"] = _median_ms(joins)
    paths = [_timed(lambda: creator.commit(force_path=True)) for _ in range(repeat)]
    result["path_commit_ms"] = _median_ms([t for t, _ in paths])
    result["path_process_ms"] = _process_ms(saved_other, [p for _, p in paths])
    _progress(f"  moqmls n={n}: " + _row_text(result))
    return result


def _process_ms(saved: bytes, pendings: list[PendingCommit]) -> float:
    samples = []
    for pending in pendings:
        member = Group.from_bytes(saved)
        elapsed, _ = _timed(lambda m=member, p=pending: m.process(p.commit))  # type: ignore[misc]
        samples.append(elapsed)
    return _median_ms(samples)


# --------------------------------------------------------------------------- rfc9420 peer


def _peer_available() -> bool:
    try:
        import rfc9420  # noqa: F401
    except ImportError:
        return False
    return True


# rfc9420 1.3 rejects Add proposals unless every member lists even the default proposal types
# in its capabilities, so the peer's KeyPackages list them all.
_PEER_CAPABILITIES = Capabilities((1,), (1,), (), (1, 2, 3, 4, 5, 6, 7), (1,))


def _peer_key_package(name: bytes) -> tuple[Any, KeyPackagePrivate]:
    from rfc9420.messages.key_packages import KeyPackage as PeerKeyPackage

    data, private = make_key_package(name, capabilities=_PEER_CAPABILITIES)
    message = MLSMessage.decode(data)
    assert message.key_package is not None
    return PeerKeyPackage.deserialize(message.key_package.encode()), private


def measure_peer(n: int) -> dict[str, float]:
    """The metrics the rfc9420 package supports (all but the path commit), measured once."""
    from rfc9420 import DefaultCryptoProvider, GroupConfig, MemoryStorageProvider, MLSGroup

    config = GroupConfig(
        crypto_provider=DefaultCryptoProvider(0x0001),
        storage_provider=MemoryStorageProvider(),
    )
    clients = [_peer_key_package(b"member-%d" % i) for i in range(n)]
    creator_kp, creator_priv = clients[0]
    signing = creator_priv.signature_priv
    creator = MLSGroup.create(config, b"peer-%d" % n, creator_kp)

    def add(kp: Any) -> tuple[Any, Any]:
        proposal = creator.add(kp, signing)
        creator.process_proposal(proposal, 0)
        return proposal, creator.create_commit(signing)

    staged = None
    start = time.perf_counter()
    for kp, _ in clients[1:]:
        _, staged = add(kp)
        creator.apply_staged_commit(staged)
    result: dict[str, float] = {"build_s": time.perf_counter() - start}
    _progress(f"  {PEER} n={n}: built in {result['build_s']:.2f} s")
    if n < 2 or staged is None:
        return result
    last_kp, last_priv = clients[-1]
    other = MLSGroup.join_from_welcome(config, staged.welcomes[0], last_priv.init_priv, last_kp)
    newcomer_kp, newcomer = _peer_key_package(b"newcomer")
    elapsed, (proposal, staged) = _timed(lambda: add(newcomer_kp))
    result["add_commit_ms"] = elapsed * 1000.0

    def process() -> None:
        other.process_proposal(proposal, 0)
        other.process_commit(staged.commit_message, 0)

    result["add_process_ms"] = _timed(process)[0] * 1000.0
    welcome = staged.welcomes[0]
    result["join_ms"] = (
        _timed(
            lambda: MLSGroup.join_from_welcome(config, welcome, newcomer.init_priv, newcomer_kp)
        )[0]
        * 1000.0
    )
    _progress(f"  {PEER} n={n}: " + _row_text(result))
    return result


# --------------------------------------------------------------------------- report


def _row_text(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in values.items())


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def render_table(results: dict[int, dict[str, float]], peer: dict[int, dict[str, float]]) -> str:
    """One row per size and metric: ours, the peer's, the ratio peer/ours, the target."""
    header = f"{'N':>5}  {'metric':<16}{'moqmls':>10}{PEER:>10}{'ratio':>8}{'target':>9}"
    lines = [header, "-" * len(header)]
    for n, values in results.items():
        for metric in METRICS:
            ours = values.get(metric)
            theirs = peer.get(n, {}).get(metric)
            ratio = f"{theirs / ours:.1f}x" if ours and theirs else "-"
            target = TARGETS_1000.get(metric) if n == 1000 else None
            lines.append(
                f"{n:>5}  {metric:<16}{_fmt(ours):>10}{_fmt(theirs):>10}{ratio:>8}{_fmt(target):>9}"
            )
    lines.append("ratio = rfc9420 time / moqmls time (higher is better for moqmls)")
    return "\n".join(lines)


def flat_json(
    results: dict[int, dict[str, float]], peer: dict[int, dict[str, float]]
) -> dict[str, float]:
    out = {f"n{n}.{m}": v for n, values in results.items() for m, v in values.items()}
    out.update({f"{PEER}.n{n}.{m}": v for n, values in peer.items() for m, v in values.items()})
    return out


def run(args: argparse.Namespace) -> int:
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        print(f"--sizes must be integers: {args.sizes!r}", file=sys.stderr)
        return 2
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        print("sizes and --repeat must be positive", file=sys.stderr)
        return 2
    with_peer = not args.no_peer and _peer_available()
    if not args.no_peer and not with_peer:
        _progress(f"{PEER} is not installed (pip install {PEER}); measuring moqmls only")
    results: dict[int, dict[str, float]] = {}
    peer: dict[int, dict[str, float]] = {}
    load_before = os.getloadavg()[0]
    for n in sizes:
        _progress(f"N = {n}")
        results[n] = measure_moqmls(n, args.repeat)
        if with_peer and n <= args.peer_max_size:
            peer[n] = measure_peer(n)
    print(render_table(results, peer))
    # The machine is shared: the load says how much the timings may be inflated.
    print(
        f"moqmls: median of {args.repeat} run(s); 1-min load average before "
        f"{load_before:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(flat_json(results, peer), fh, indent=2, sort_keys=True)
    return 0
