"""Real service processes: SQLite SIGKILL and restart, two processes on one file, the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from moqmls.lock import LockClient, LockError, UnauthorizedError
from tests.lock.lock_helpers import (
    RaceLog,
    commit_bytes,
    create_group,
    race_epochs,
    service_env,
    service_process,
)


async def test_sigkill_and_restart_keeps_every_commit(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'lock.db'}"
    log = RaceLog()
    async with service_process(store) as (url, proc):
        clients = [LockClient(url, attempts=1, timeout_s=5) for _ in range(4)]
        try:
            await create_group(clients[0], "g")

            async def killer() -> None:
                while len(log.wins) < 40:
                    await asyncio.sleep(0.005)
                proc.send_signal(signal.SIGKILL)

            kill = asyncio.create_task(killer())
            try:
                await race_epochs(clients, "g", 10_000, log=log)
            except* LockError:
                pass  # the service died under the racers; anything else fails the test
            await kill
        finally:
            for c in clients:
                await c.close()
        assert await proc.wait() == -signal.SIGKILL
    seen = sorted(log.wins)
    assert len(seen) >= 40
    async with service_process(store) as (url, _), LockClient(url) as client:
        status = await client.status("g")
        assert status.exists and status.epoch is not None and status.epoch >= len(seen)
        history = {h.epoch: (h.committer, h.commit_hash) for h in status.history}
        assert sorted(history) == list(range(status.epoch)), "a linear history"
        for epoch, holder, digest in seen:
            assert history[epoch] == (holder, digest), "every Committed answer survived"
            record = await client.epoch("g", epoch)
            assert record is not None and record.commit == commit_bytes("g", epoch, holder)
        # and the group goes on from where it was
        more = await race_epochs([client], "g", status.epoch + 3)
        assert sorted(e for e, _, _ in more.wins) == [status.epoch + i for i in range(3)]


async def test_two_processes_on_one_file(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'lock.db'}"
    async with service_process(store) as (url_a, _), service_process(store) as (url_b, _):
        clients = [LockClient(url_a if i % 2 else url_b) for i in range(8)]
        try:
            await create_group(clients[0], "g")
            log = await race_epochs(clients, "g", 100)
            status_a = await clients[0].status("g")
            status_b = await clients[1].status("g")
        finally:
            for c in clients:
                await c.close()
    assert sorted(e for e, _, _ in log.wins) == list(range(100))
    assert status_a == status_b
    assert [(h.epoch, h.committer, h.commit_hash) for h in status_a.history] == sorted(
        (e, holder, digest) for e, holder, digest in log.wins
    )


async def test_cli_with_auth_file(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("secret alice\n")
    async with service_process("memory", "--auth-file", str(auth)) as (url, _):
        async with LockClient(url, attempts=1) as anonymous:
            with pytest.raises(UnauthorizedError):
                await anonymous.status("g")
        async with LockClient(url, auth_token="secret") as alice:
            await create_group(alice, "g", "alice")
            assert (await alice.status("g")).epoch == 0


def test_cli_rejects_a_bad_listen_address() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "moqmls",
            "lock-service",
            "--listen",
            "nowhere",
            "--store",
            "memory",
        ],
        capture_output=True,
        env=service_env(),
        timeout=60,
    )
    assert done.returncode == 2
    assert b"HOST:PORT" in done.stderr


def test_bench_lock_smoke(tmp_path: Path) -> None:
    out = tmp_path / "lock.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "moqmls",
            "bench",
            "lock",
            "--seconds",
            "0.3",
            "--repeat",
            "1",
            "--stores",
            "memory,sqlite",
            "--clients",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        env=service_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    numbers = json.loads(out.read_text())
    for store in ("memory", "sqlite"):
        assert numbers[f"{store}.c2.cycles_per_s"] > 0
        assert 0 < numbers[f"{store}.c2.p50_ms"] <= numbers[f"{store}.c2.p99_ms"]
    assert b"vs memory" in done.stdout
