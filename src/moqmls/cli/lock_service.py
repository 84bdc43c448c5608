"""`moqmls lock-service`: the group lock service over HTTP (DESIGN.md "Lock service").

Prints the URL it listens on (one line, flushed), then serves until SIGINT or SIGTERM.
Committed decisions are signed (receipts, `moqmls.lock.receipt`) with a key kept in the
store itself: created by the first instance that opens the store, shared by every instance
on the same SQLite file or etcd cluster; its public half is served at ``GET /v1/keys``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from moqmls.lock import AuthTable, StoreOptions, open_store, serve
from moqmls.lock.model import DEFAULT_TTL_MS, MAX_TTL_MS, MIN_TTL_MS
from moqmls.lock.server import DEFAULT_MAX_BODY, DEFAULT_MAX_INFLIGHT
from moqmls.lock.store import DEFAULT_RETAIN_EPOCHS
from moqmls.lock.stores import STORE_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8470",
        metavar="HOST:PORT",
        help="address to listen on; port 0 picks a free port (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        default="sqlite:moqmls-lock.db",
        metavar="SPEC",
        help=f"where state lives: {STORE_HELP} (default: %(default)s)",
    )
    parser.add_argument(
        "--auth-file",
        metavar="FILE",
        help="require bearer tokens: one 'TOKEN HOLDER [HOLDER...]' per line, '*' = any holder",
    )
    parser.add_argument(
        "--default-ttl-ms",
        type=int,
        default=DEFAULT_TTL_MS,
        help=f"lease duration when a request names none, {MIN_TTL_MS}-{MAX_TTL_MS} "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--retain-epochs",
        type=int,
        default=DEFAULT_RETAIN_EPOCHS,
        help="epoch records (commit hash, Commit, Welcome) kept per group (default: %(default)s)",
    )
    parser.add_argument(
        "--sqlite-sync",
        choices=("full", "normal"),
        default="full",
        help="SQLite durability of epoch advances: 'full' fsyncs each (survives power loss), "
        "'normal' survives a killed service process only (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest request body accepted (default: %(default)s)",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=DEFAULT_MAX_INFLIGHT,
        help="concurrent requests before answering 429 (default: %(default)s)",
    )


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--listen needs HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


async def _serve(args: argparse.Namespace) -> None:
    host, port = _split_listen(args.listen)
    auth = AuthTable.load(args.auth_file) if args.auth_file else None
    options = StoreOptions(retain_epochs=args.retain_epochs, default_ttl_ms=args.default_ttl_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        open_store(args.store, options, sqlite_sync=args.sqlite_sync) as store,
        serve(
            store,
            host,
            port,
            auth=auth,
            max_body=args.max_body,
            max_inflight=args.max_inflight,
        ) as url,
    ):
        key_id = (await store.signer()).key.key_id.hex()
        print(
            f"moqmls lock-service listening on {url} (store {args.store}, receipt key {key_id})",
            flush=True,
        )
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve(args))
    except (ValueError, OSError) as exc:
        print(f"moqmls lock-service: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0
