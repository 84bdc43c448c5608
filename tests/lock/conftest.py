"""Fixtures of the lock-service tests: a store of each kind, served over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from moqmls.lock import LockClient, MemoryStore, Store, serve
from moqmls.lock.sqlite import SQLiteStore

StoreFactory = Callable[[], Store]

LOCAL_STORES = ["memory", "sqlite"]


def make_store_factory(kind: str, tmp_path: Path) -> StoreFactory:
    """A factory of fresh (unstarted) stores of one kind."""
    if kind == "memory":
        return MemoryStore
    if kind == "sqlite":
        return lambda: SQLiteStore(tmp_path / "lock.db")
    raise ValueError(kind)


@pytest.fixture(params=LOCAL_STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with make_store_factory(request.param, tmp_path)() as started:
        yield started


@pytest.fixture
async def url(store: Store) -> AsyncIterator[str]:
    async with serve(store) as bound:
        yield bound


@pytest.fixture
async def client(url: str) -> AsyncIterator[LockClient]:
    async with LockClient(url) as c:
        yield c
