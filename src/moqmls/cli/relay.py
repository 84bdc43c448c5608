"""`moqmls relay`: a caching MoQT relay over raw QUIC (draft-ietf-moq-transport-18 §8),
speaking drafts -18 and -22 (ALPN ``moqt-18``/``moqt-22``, order set by ``--alpn``).

Prints the URL it listens on (one line, flushed), then relays until SIGINT or SIGTERM,
when it sends GOAWAY to every session and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from moqmls.moqt.cache import RetentionRule, parse_retention
from moqmls.moqt.errors import MoQTError
from moqmls.moqt.profile import PROFILES
from moqmls.moqt.quic import DEFAULT_ALPNS, certificate_pem, self_signed_certificate
from moqmls.moqt.relay import Relay, RelayConfig

#: Retention when no --retain is given (DESIGN.md: KeyPackages hours, commits many epochs).
DEFAULT_RETENTION = (
    "keypackage=12h",
    "welcome=1h,groups:1000",
    "commit=24h,groups:1000",
    "proposal=1h,groups:64",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:4443",
        metavar="HOST:PORT",
        help="UDP address to listen on; port 0 picks a free port (default: %(default)s)",
    )
    parser.add_argument("--cert", metavar="PEM", help="TLS certificate (default: self-signed)")
    parser.add_argument("--key", metavar="PEM", help="TLS private key for --cert")
    parser.add_argument(
        "--write-cert",
        metavar="FILE",
        help="write the certificate in use (PEM) to FILE so clients can trust it",
    )
    parser.add_argument(
        "--upstream",
        metavar="URL",
        help="chain to an upstream relay, e.g. moqt://relay.example:4443",
    )
    parser.add_argument(
        "--upstream-ca",
        metavar="PEM",
        help="CA or certificate to trust for --upstream (default: no verification)",
    )
    parser.add_argument(
        "--retain",
        action="append",
        default=None,
        metavar="SUFFIX=RULE",
        help="cache retention for namespaces ending in SUFFIX (fields joined by '/'): an age "
        "like 90s/10m/6h and/or groups:N; repeatable "
        f"(default: {' '.join(DEFAULT_RETENTION)})",
    )
    parser.add_argument(
        "--default-retention",
        default="10m",
        metavar="AGE",
        help="retention of other namespaces, or '-' for no age limit (default: %(default)s)",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=10000,
        help="most objects cached per track (default: %(default)s)",
    )
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=256,
        help="byte budget of the whole object cache, in MiB (default: %(default)s)",
    )
    parser.add_argument(
        "--auth-token",
        action="append",
        default=None,
        metavar="TOKEN=NAME[,NAME...]",
        help="require SETUP auth tokens; TOKEN may publish only the listed track names "
        "(sender-ids); repeatable. Without it, no authentication.",
    )
    parser.add_argument(
        "--alpn",
        default=",".join(DEFAULT_ALPNS),
        metavar="ALPN[,ALPN...]",
        help="MoQT drafts accepted, by ALPN, in order of preference: of the drafts a client "
        "offers, the first in this list is chosen; a client offering none is refused "
        f"(choices: {', '.join(PROFILES)}; default: %(default)s)",
    )
    parser.add_argument(
        "--goaway-timeout-ms",
        type=int,
        default=2000,
        help="timeout announced in GOAWAY at shutdown (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="Python log level (default: %(default)s)"
    )


def _auth_tokens(specs: list[str] | None) -> dict[bytes, frozenset[bytes]] | None:
    if not specs:
        return None
    table: dict[bytes, frozenset[bytes]] = {}
    for spec in specs:
        token, sep, names = spec.partition("=")
        if not sep or not token:
            raise MoQTError(f"--auth-token wants TOKEN=NAME[,NAME...], got {spec!r}")
        table[token.encode()] = frozenset(n.encode() for n in names.split(",") if n)
    return table


def _alpns(spec: str) -> tuple[str, ...]:
    alpns = tuple(a.strip() for a in spec.split(",") if a.strip())
    unknown = [a for a in alpns if a not in PROFILES]
    if unknown or not alpns or len(set(alpns)) != len(alpns):
        raise MoQTError(
            f"--alpn wants distinct drafts from {', '.join(PROFILES)}, comma-separated; "
            f"got {spec!r}"
        )
    return alpns


def build_config(args: argparse.Namespace) -> RelayConfig:
    """The relay configuration described by the command line."""
    rules: list[RetentionRule] = [parse_retention(r) for r in (args.retain or DEFAULT_RETENTION)]
    default = parse_retention(f"={args.default_retention}").max_age
    upstream_verify: bool | str = args.upstream_ca or False
    return RelayConfig(
        retention=rules,
        default_max_age=default,
        max_objects_per_track=args.max_objects,
        max_cache_bytes=args.cache_mb << 20,
        auth_tokens=_auth_tokens(args.auth_token),
        upstream=args.upstream,
        upstream_verify=upstream_verify,
        goaway_timeout_ms=args.goaway_timeout_ms,
        alpns=_alpns(args.alpn),
    )


async def serve_relay(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    config = build_config(args)
    if args.cert:
        cert = x509.load_pem_x509_certificate(Path(args.cert).read_bytes())
        key = serialization.load_pem_private_key(Path(args.key or args.cert).read_bytes(), None)
    else:
        cert, key = self_signed_certificate(host.strip("[]") or "localhost")
    if args.write_cert:
        Path(args.write_cert).write_bytes(certificate_pem(cert))
    relay = Relay(config)
    port = await relay.start(host.strip("[]") or "127.0.0.1", int(port_text), cert, key)
    print(f"moqmls relay listening on moqt://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await relay.close(grace=min(args.goaway_timeout_ms / 1000, 0.5))
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper())
    try:
        return asyncio.run(serve_relay(args))
    except (MoQTError, OSError, ValueError) as exc:
        print(f"moqmls relay: {exc}", file=sys.stderr)
        return 1
