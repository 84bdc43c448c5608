"""SQLite durability: a complete is answered only after a WAL fsync that began after it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path

import pytest

from moqmls.lock import Acquired, Create, Created
from moqmls.lock.sqlite import SQLiteStore
from tests.lock.lock_helpers import committed


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_complete_waits_for_the_wal_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls: list[int] = []
    real_fsync = os.fsync

    def gated_fsync(fd: int) -> None:
        calls.append(fd)
        assert gate.wait(10)
        real_fsync(fd)

    async with SQLiteStore(tmp_path / "d.db") as store:
        create = await store.create_or_join("g", "a")
        assert isinstance(create, Create)
        assert await store.complete(create.token) == Created(0)
        monkeypatch.setattr(os, "fsync", gated_fsync)
        got = await store.lock("g", 0, "a")  # a lock answer does not wait for a sync
        assert isinstance(got, Acquired) and calls == []
        done = asyncio.create_task(store.complete(got.token, commit_hash=sha(b"c"), commit=b"c"))
        await asyncio.sleep(0.2)
        assert not done.done(), "the Committed answer waits for the fsync"
        assert len(calls) == 1
        assert isinstance(await store.lock("g", 1, "b"), Acquired), "the store goes on meanwhile"
        gate.set()
        assert committed(await done, 1)
        monkeypatch.setattr(os, "fsync", real_fsync)


async def test_normal_sync_answers_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    async with SQLiteStore(tmp_path / "n.db", sync="normal") as store:
        monkeypatch.setattr(os, "fsync", calls.append)
        create = await store.create_or_join("g", "a")
        assert isinstance(create, Create)
        await store.complete(create.token)
        got = await store.lock("g", 0, "a")
        assert isinstance(got, Acquired)
        assert committed(await store.complete(got.token, commit_hash=sha(b"c")), 1)
    assert calls == []


async def test_answers_queued_behind_busy_fsyncs_are_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls: list[int] = []
    real_fsync = os.fsync

    def gated_fsync(fd: int) -> None:
        calls.append(fd)
        assert gate.wait(10)
        real_fsync(fd)

    async with SQLiteStore(tmp_path / "q.db") as store:
        tokens = []
        for group in ("a", "b", "c"):
            create = await store.create_or_join(group, "m")
            assert isinstance(create, Create)
            await store.complete(create.token)
            got = await store.lock(group, 0, "m")
            assert isinstance(got, Acquired)
            tokens.append(got.token)
        monkeypatch.setattr(os, "fsync", gated_fsync)
        done = []
        for expected_calls, token in zip((1, 2, 2), tokens, strict=True):
            done.append(asyncio.create_task(store.complete(token, commit_hash=sha(b"x"))))
            for _ in range(200):
                await asyncio.sleep(0.005)
                if len(calls) >= expected_calls:
                    break
            assert len(calls) == expected_calls, "at most two fsyncs run at once"
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in done)
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*done), 10)
        assert all(committed(r, 1) for r in results) and len(results) == 3
        assert len(calls) == 3, "the queued answer got an fsync of its own"
        monkeypatch.setattr(os, "fsync", real_fsync)
