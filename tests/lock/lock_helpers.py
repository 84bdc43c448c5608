"""Helpers of the lock-service tests: racing clients and checking what they saw."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import moqmls
from moqmls.bench.lock import lock_service_process
from moqmls.lock import (
    Acquired,
    Committed,
    Create,
    Created,
    Fenced,
    Join,
    LockClient,
    Locked,
    Stale,
)
from moqmls.lock.errors import (
    BadReceiptSignatureError,
    ReceiptMismatchError,
    UnknownReceiptKeyError,
)
from moqmls.lock.receipt import Receipt


def committed(result: object, epoch: int) -> bool:
    """`result` is Committed(epoch) with a receipt for the epoch before (the one committed)."""
    if not isinstance(result, Committed) or result.epoch != epoch or result.receipt is None:
        return False
    return Receipt.decode(result.receipt).epoch == epoch - 1


async def assert_receipt_proves_only_this(
    client: LockClient, receipt: bytes, group: str, epoch: int, committer: str, digest: bytes
) -> None:
    """The service's receipt verifies for exactly (group, epoch, committer, digest): each
    field changed fails the signature, a wrong key id is unknown, another decision mismatches."""
    expected = {"group": group, "epoch": epoch, "committer": committer, "commit_hash": digest}
    await client.verify_receipt(receipt, **expected)  # type: ignore[arg-type]
    genuine = Receipt.decode(receipt)
    changes: dict[str, object] = {
        "group": group + "x",
        "epoch": epoch + 1,
        "commit_hash": hashlib.sha256(digest).digest(),
        "committer": committer + "x",
        "signature": bytes(64),
    }
    for name, value in changes.items():
        forged = dataclasses.replace(genuine, **{name: value}).encode()
        with pytest.raises(BadReceiptSignatureError):
            await client.verify_receipt(forged, **expected)  # type: ignore[arg-type]
    renamed = dataclasses.replace(genuine, key_id=bytes(8)).encode()
    with pytest.raises(UnknownReceiptKeyError):
        await client.verify_receipt(renamed, **expected)  # type: ignore[arg-type]
    for name in ("group", "epoch", "committer", "commit_hash"):
        with pytest.raises(ReceiptMismatchError):
            await client.verify_receipt(receipt, **(expected | {name: changes[name]}))  # type: ignore[arg-type]


def commit_bytes(group: str, epoch: int, holder: str) -> bytes:
    """A stand-in Commit: distinct per (group, epoch, holder), opaque to the service."""
    return f"commit:{group}:{epoch}:{holder}".encode() * 3


@dataclass
class RaceLog:
    """What racers saw: every Committed answer and every fenced completion."""

    wins: list[tuple[int, str, str]] = field(default_factory=list)  # (epoch, holder, hash)
    receipts: dict[int, bytes | None] = field(default_factory=dict)  # epoch -> its receipt
    fenced: int = 0
    locked: int = 0


async def race_epochs(
    clients: list[LockClient],
    group: str,
    epochs: int,
    ttl_ms: int = 2000,
    log: RaceLog | None = None,
    stop: asyncio.Event | None = None,
) -> RaceLog:
    """Each client races to commit `group` (which must exist) up to epoch `epochs`."""
    log = RaceLog() if log is None else log

    async def racer(client: LockClient, holder: str) -> None:
        epoch = 0
        while epoch < epochs and not (stop is not None and stop.is_set()):
            got = await client.lock(group, epoch, holder, ttl_ms=ttl_ms)
            if isinstance(got, Stale):
                epoch = got.epoch
                await asyncio.sleep(random.uniform(0, 0.002))  # "processing" the commit
            elif isinstance(got, Locked):
                log.locked += 1
                await asyncio.sleep(random.uniform(0.0005, 0.003))
            else:
                assert isinstance(got, Acquired)
                commit = commit_bytes(group, epoch, holder)
                done = await client.complete(got.token, commit=commit, welcome=b"w" + commit)
                if isinstance(done, Committed):
                    assert done.epoch == epoch + 1
                    log.wins.append((epoch, holder, hashlib.sha256(commit).hexdigest()))
                    log.receipts[epoch] = done.receipt
                    epoch = done.epoch
                    await asyncio.sleep(random.uniform(0, 0.002))
                else:
                    assert isinstance(done, Fenced)
                    log.fenced += 1

    async with asyncio.TaskGroup() as tasks:  # one failing racer stops them all
        for i, c in enumerate(clients):
            tasks.create_task(racer(c, f"member-{i}"))
    return log


async def create_group(client: LockClient, group: str, holder: str = "founder") -> None:
    """Create `group` at epoch 0 through the service."""
    got = await client.create_or_join(group, holder)
    assert isinstance(got, Create)
    assert await client.complete(got.token) == Created(0)


async def race_create(clients: list[LockClient], group: str) -> list[object]:
    """Every client calls create_or_join at once; the creator completes. All answers."""

    async def one(client: LockClient, holder: str) -> object:
        got = await client.create_or_join(group, holder)
        if isinstance(got, Create):
            assert await client.complete(got.token) == Created(0)
        return got

    async with asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(one(c, f"joiner-{i}")) for i, c in enumerate(clients)]
    return [t.result() for t in running]


def assert_create_race(answers: list[object]) -> None:
    """Exactly one Create; every other answer is Join(0) or Locked."""
    creates = [a for a in answers if isinstance(a, Create)]
    assert len(creates) == 1
    others = [a for a in answers if not isinstance(a, Create)]
    assert all(isinstance(a, Join | Locked) for a in others)
    assert all(a.epoch == 0 for a in others if isinstance(a, Join))


@contextlib.asynccontextmanager
async def response_dropping_proxy(target: str, drops: int) -> AsyncIterator[str]:
    """A TCP proxy that forwards the first `drops` requests but never returns their answers."""
    host, port = target.removeprefix("http://").rsplit(":", 1)
    remaining = [drops]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        drop = remaining[0] > 0
        remaining[0] -= 1

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        upstream = asyncio.create_task(pump(reader, up_writer))
        if drop:
            await up_reader.read(65536)  # the answer arrived: the request took effect
            upstream.cancel()
        else:
            await pump(up_reader, writer)
            upstream.cancel()
        for w in (writer, up_writer):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


SRC = Path(moqmls.__file__).resolve().parent.parent


def service_env() -> dict[str, str]:
    """The environment of a service subprocess: this checkout's moqmls first."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


@contextlib.asynccontextmanager
async def service_process(
    store: str, *options: str
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`moqmls.bench.lock.lock_service_process` running this checkout's moqmls."""
    async with lock_service_process(store, *options, env=service_env()) as (url, proc):
        assert url.startswith("http://127.0.0.1:"), url
        yield url, proc
