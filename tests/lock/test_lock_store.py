"""The decision logic, through each local store, with a clock the test controls.

Expected answers come from DESIGN.md "Lock service" (the operation table), not from the code.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moqmls.lock import (
    Acquired,
    BadRequestError,
    Create,
    Created,
    Fenced,
    ForbiddenError,
    HashMismatchError,
    Join,
    Locked,
    MemoryStore,
    NotFoundError,
    Stale,
    Store,
    StoreOptions,
)
from moqmls.lock.sqlite import SQLiteStore
from tests.lock.lock_helpers import committed


class Clock:
    """Server time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
async def st(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    options = StoreOptions(clock=clock, retain_epochs=3, default_ttl_ms=1000)
    store: Store = (
        MemoryStore(options)
        if request.param == "memory"
        else SQLiteStore(tmp_path / "s.db", options)
    )
    async with store:
        yield store


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def created(st: Store, group: str = "g") -> None:
    got = await st.create_or_join(group, "founder")
    assert isinstance(got, Create)
    assert await st.complete(got.token) == Created(0)


async def commit_epoch(st: Store, epoch: int, holder: str = "m") -> str:
    got = await st.lock("g", epoch, holder)
    assert isinstance(got, Acquired)
    commit = f"c{epoch}".encode()
    assert committed(
        await st.complete(got.token, commit_hash=sha(commit), commit=commit), epoch + 1
    )
    return got.token


async def test_create_once_then_join(st: Store, clock: Clock) -> None:
    first = await st.create_or_join("g", "a")
    assert isinstance(first, Create) and first.ttl_ms == 1000
    clock.now += 400
    other = await st.create_or_join("g", "b")
    assert other == Locked(600, "a")
    assert await st.create_or_join("g", "a") == Create(first.token, 600), "same holder: same token"
    assert await st.complete(first.token) == Created(0)
    assert await st.complete(first.token) == Created(0), "a repeated complete is answered again"
    assert await st.create_or_join("g", "b") == Join(0)
    status = await st.status("g")
    assert (status.exists, status.epoch, status.holder, status.history) == (True, 0, None, ())


async def test_expired_create_lease_passes_on_and_fences(st: Store, clock: Clock) -> None:
    first = await st.create_or_join("g", "a")
    assert isinstance(first, Create)
    clock.now += 1000  # the lease ends exactly now
    second = await st.create_or_join("g", "b")
    assert isinstance(second, Create) and second.token != first.token
    assert await st.complete(first.token) == Fenced()
    assert await st.complete(second.token) == Created(0)
    assert await st.complete(first.token) == Fenced()


async def test_lock_answers(st: Store, clock: Clock) -> None:
    with pytest.raises(NotFoundError):
        await st.lock("g", 0, "m")
    await created(st)
    got = await st.lock("g", 0, "m", ttl_ms=300)
    assert isinstance(got, Acquired) and got.ttl_ms == 300
    clock.now += 100
    assert await st.lock("g", 0, "n") == Locked(200, "m")
    assert await st.lock("g", 0, "m") == Locked(200, "m"), "no request_id: no replay"
    with pytest.raises(BadRequestError):
        await st.lock("g", 1, "n")  # ahead of the group
    assert committed(await st.complete(got.token, commit_hash=sha(b"x"), commit=b"x"), 1)
    assert await st.lock("g", 0, "n") == Stale(1)


async def test_request_id_makes_lock_idempotent(st: Store, clock: Clock) -> None:
    await created(st)
    got = await st.lock("g", 0, "m", request_id="r1")
    assert isinstance(got, Acquired)
    clock.now += 10
    assert await st.lock("g", 0, "m", request_id="r1") == Acquired(got.token, 990)
    assert isinstance(await st.lock("g", 0, "m", request_id="r2"), Locked)
    assert isinstance(await st.lock("g", 0, "other", request_id="r1"), Locked)


async def test_late_complete_is_fenced_and_winner_commits(st: Store, clock: Clock) -> None:
    await created(st)
    slow = await st.lock("g", 0, "slow", ttl_ms=100)
    assert isinstance(slow, Acquired)
    clock.now += 100
    fast = await st.lock("g", 0, "fast", ttl_ms=100)
    assert isinstance(fast, Acquired)
    assert await st.complete(slow.token, commit_hash=sha(b"s")) == Fenced()
    assert committed(await st.complete(fast.token, commit_hash=sha(b"f")), 1)
    assert await st.complete(slow.token, commit_hash=sha(b"s")) == Fenced()
    history = (await st.status("g")).history
    assert [(h.epoch, h.committer, h.commit_hash) for h in history] == [(0, "fast", sha(b"f"))]


async def test_expired_lease_cannot_complete_even_untaken(st: Store, clock: Clock) -> None:
    await created(st)
    got = await st.lock("g", 0, "m", ttl_ms=50)
    assert isinstance(got, Acquired)
    clock.now += 50
    assert await st.complete(got.token, commit_hash=sha(b"x")) == Fenced()
    assert (await st.status("g")).epoch == 0


async def test_complete_replay_after_later_epochs(st: Store) -> None:
    await created(st)
    token = await commit_epoch(st, 0, "a")
    await commit_epoch(st, 1, "b")
    assert committed(await st.complete(token, commit_hash=sha(b"c0")), 1)


async def test_release_is_idempotent_and_exact(st: Store) -> None:
    await created(st)
    first = await st.lock("g", 0, "a")
    assert isinstance(first, Acquired)
    await st.release(first.token)
    await st.release(first.token)
    second = await st.lock("g", 0, "b")
    assert isinstance(second, Acquired)
    await st.release(first.token)  # an old token does not release the new lease
    assert await st.lock("g", 0, "c") == Locked(1000, "b")
    assert await st.complete(first.token, commit_hash=sha(b"a")) == Fenced()


async def test_retention_keeps_the_last_epochs(st: Store) -> None:
    await created(st)
    for epoch in range(5):
        await commit_epoch(st, epoch)
    assert [h.epoch for h in (await st.status("g")).history] == [2, 3, 4]
    with pytest.raises(NotFoundError):
        await st.epoch("g", 1)
    record = await st.epoch("g", 4)
    assert (record.commit, record.commit_hash, record.committer) == (b"c4", sha(b"c4"), "m")


async def test_bad_completes_leave_state_untouched(st: Store) -> None:
    create = await st.create_or_join("g", "a")
    assert isinstance(create, Create)
    with pytest.raises(BadRequestError):
        await st.complete(create.token, commit_hash=sha(b"x"))
    assert await st.complete(create.token) == Created(0)
    got = await st.lock("g", 0, "m")
    assert isinstance(got, Acquired)
    with pytest.raises(HashMismatchError):
        await st.complete(got.token, commit_hash=sha(b"other"), commit=b"x")
    with pytest.raises(BadRequestError):
        await st.complete(got.token)  # no hash
    with pytest.raises(BadRequestError):
        await st.complete(got.token, commit_hash=sha(b"x"), welcome=b"w")  # welcome alone
    with pytest.raises(BadRequestError):
        await st.complete(got.token, commit_hash="AB" * 32)
    assert (await st.status("g")).epoch == 0
    assert committed(await st.complete(got.token, commit_hash=sha(b"x"), commit=b"x"), 1)


async def test_may_act_as_binds_holders(st: Store) -> None:
    only_a = {"a"}.__contains__
    with pytest.raises(ForbiddenError):
        await st.create_or_join("g", "b", may_act_as=only_a)
    create = await st.create_or_join("g", "b")
    assert isinstance(create, Create)
    with pytest.raises(ForbiddenError):
        await st.complete(create.token, may_act_as=only_a)
    with pytest.raises(ForbiddenError):
        await st.release(create.token, may_act_as=only_a)
    assert await st.complete(create.token, may_act_as={"b"}.__contains__) == Created(0)


async def test_status_while_creating_and_unknown(st: Store) -> None:
    with pytest.raises(NotFoundError):
        await st.status("nobody")
    create = await st.create_or_join("g", "a")
    assert isinstance(create, Create)
    status = await st.status("g")
    assert (status.exists, status.epoch, status.holder) == (False, None, "a")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.create_or_join("", "a"),
        lambda s: s.create_or_join("..", "a"),
        lambda s: s.create_or_join("g/h", "a"),
        lambda s: s.create_or_join("g", ""),
        lambda s: s.create_or_join("g", "a\nb"),
        lambda s: s.create_or_join("g", "a", ttl_ms=9),
        lambda s: s.create_or_join("g", "a", ttl_ms=600_001),
        lambda s: s.lock("g", -1, "a"),
        lambda s: s.lock("g", 2**63, "a"),
        lambda s: s.lock("g", 0, "a", request_id=""),
        lambda s: s.complete("not-a-token"),
        lambda s: s.release("1.1.abc.g"),
    ],
)
async def test_bad_arguments_are_bad_requests(st: Store, call: object) -> None:
    with pytest.raises(BadRequestError):
        await call(st)  # type: ignore[operator]
