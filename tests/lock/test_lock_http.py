"""The HTTP service and client on loopback: leases, fencing, Retry-After, unknown outcomes."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from moqmls.lock import (
    Acquired,
    Fenced,
    LockClient,
    Locked,
    Store,
    TooManyRequestsError,
    UnavailableError,
    serve,
)
from moqmls.lock.sqlite import SQLiteStore
from tests.lock.lock_helpers import committed, create_group, response_dropping_proxy


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_silent_holder_loses_lease_and_late_complete_is_fenced(client: LockClient) -> None:
    await create_group(client, "g")
    silent = await client.lock("g", 0, "silent", ttl_ms=1000)
    assert isinstance(silent, Acquired)
    other = await client.lock("g", 0, "other", ttl_ms=1000)
    assert isinstance(other, Locked) and other.holder == "silent"
    assert 0 < other.retry_after_ms <= 1000
    await asyncio.sleep(other.retry_after_ms / 1000 + 0.05)
    taken = await client.lock("g", 0, "other", ttl_ms=2000)
    assert isinstance(taken, Acquired)
    assert await client.complete(silent.token, commit=b"late") == Fenced()
    assert committed(await client.complete(taken.token, commit=b"ok"), 1)
    assert await client.complete(silent.token, commit=b"late") == Fenced()
    assert (await client.epoch("g", 0)).commit == b"ok"  # type: ignore[union-attr]


async def test_expired_lease_alone_is_fenced(client: LockClient) -> None:
    await create_group(client, "g")
    silent = await client.lock("g", 0, "silent", ttl_ms=50)
    assert isinstance(silent, Acquired)
    await asyncio.sleep(0.08)
    assert await client.complete(silent.token, commit=b"late") == Fenced()
    assert (await client.status("g")).epoch == 0


async def test_locked_carries_retry_after_header(url: str, client: LockClient) -> None:
    await create_group(client, "g")
    assert isinstance(await client.lock("g", 0, "a", ttl_ms=2500), Acquired)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/groups/g/epochs/0/lock", json={"holder": "b"}) as response,
    ):
        body = await response.json()
        assert response.status == 409
        assert response.headers["Retry-After"] == "3"  # ceil(2.5 s)
        assert body["result"] == "locked" and 0 < body["retry_after_ms"] <= 2500


async def test_status_and_epoch_of_unknown(client: LockClient) -> None:
    status = await client.status("nobody")
    assert (status.exists, status.epoch, status.history) == (False, None, ())
    assert await client.epoch("nobody", 0) is None
    await create_group(client, "g")
    assert await client.epoch("g", 0) is None


async def test_release_frees_the_epoch(client: LockClient) -> None:
    await create_group(client, "g")
    first = await client.lock("g", 0, "a")
    assert isinstance(first, Acquired)
    await client.release(first.token)
    await client.release(first.token)
    assert isinstance(await client.lock("g", 0, "b"), Acquired)


async def test_unknown_lock_outcome_settled_by_request_id(url: str, client: LockClient) -> None:
    await create_group(client, "g")
    async with (
        response_dropping_proxy(url, drops=1) as proxied,
        LockClient(proxied, attempts=1) as lossy,
    ):
        try:
            await lossy.lock("g", 0, "m", ttl_ms=5000, request_id="req-1")
        except UnavailableError:
            pass
        else:
            raise AssertionError("the answer was dropped; the outcome must be unknown")
    assert isinstance(await client.lock("g", 0, "other"), Locked), "the lock did take effect"
    again = await client.lock("g", 0, "m", ttl_ms=5000, request_id="req-1")
    assert isinstance(again, Acquired)
    assert committed(await client.complete(again.token, commit=b"c"), 1)


async def test_unknown_complete_outcome_settled_by_retry(url: str, client: LockClient) -> None:
    await create_group(client, "g")
    got = await client.lock("g", 0, "m")
    assert isinstance(got, Acquired)
    async with response_dropping_proxy(url, drops=1) as proxied, LockClient(proxied) as lossy:
        # The client's own retry repeats the complete after the dropped answer.
        assert committed(await lossy.complete(got.token, commit=b"c"), 1)
    status = await client.status("g")
    assert status.epoch == 1 and [h.commit_hash for h in status.history] == [sha(b"c")]


async def test_load_shedding_answers_429_with_retry_after(store: Store) -> None:
    async with serve(store, max_inflight=0) as bound:
        async with aiohttp.ClientSession() as http, http.get(f"{bound}/v1/groups/g") as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["error"] == "too_many_requests"
        async with LockClient(bound, attempts=2, max_delay_s=0.01) as shed:
            with pytest.raises(TooManyRequestsError):
                await shed.status("g")


async def test_busy_database_is_503_and_client_retries(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with SQLiteStore(path, busy_timeout_ms=50) as store, serve(store) as bound:
        async with LockClient(bound) as client:
            await create_group(client, "g")
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            async with aiohttp.ClientSession() as http:
                url = f"{bound}/v1/groups/g/epochs/0/lock"
                async with http.post(url, json={"holder": "m"}) as r:
                    assert r.status == 503
                    assert r.headers["Retry-After"] == "1"
            async with LockClient(bound, max_delay_s=0.3) as client:
                pending = asyncio.create_task(client.lock("g", 0, "m", request_id="r"))
                await asyncio.sleep(0.15)
                assert not pending.done(), "the client waits and retries"
                blocker.execute("ROLLBACK")
                assert isinstance(await pending, Acquired)
        finally:
            blocker.close()
