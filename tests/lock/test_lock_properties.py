"""Random interleavings of lock, complete, release and time against the decision logic.

Invariants (DESIGN.md "Lock service"): one Committed per epoch, a linear history, Fenced
is final for a token, Committed is repeated for a token that committed.
"""

from __future__ import annotations

import asyncio
import hashlib

from hypothesis import event, given, settings
from hypothesis import strategies as st

from moqmls.lock import (
    Acquired,
    Committed,
    Create,
    Created,
    Fenced,
    MemoryStore,
    Stale,
    StoreOptions,
)

lock_ops = st.tuples(
    st.just("lock"), st.integers(0, 3), st.sampled_from([0, 0, 0, -1, 1]), st.integers(10, 60)
)
ops = st.lists(
    st.one_of(
        lock_ops,
        lock_ops,
        st.tuples(st.just("complete"), st.integers(0, 3)),
        st.tuples(st.just("complete"), st.integers(0, 3)),
        st.tuples(st.just("release"), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.integers(0, 40)),
    ),
    min_size=10,
    max_size=80,
)


async def play(steps: list[tuple[object, ...]]) -> None:
    now = [1_000_000]
    store = MemoryStore(StoreOptions(clock=lambda: now[0]))
    created = await store.create_or_join("g", "founder")
    assert isinstance(created, Create)
    assert await store.complete(created.token) == Created(0)
    known_epoch = 0
    tokens: list[tuple[str, int]] = []
    committed: dict[int, str] = {}  # epoch -> token that committed it
    fenced: set[str] = set()
    for step in steps:
        kind = step[0]
        if kind == "tick":
            now[0] += int(step[1])  # type: ignore[call-overload]
        elif kind == "lock":
            _, who, offset, ttl = step
            epoch = max(0, known_epoch + int(offset))  # type: ignore[call-overload]
            status = await store.status("g")
            if status.epoch is not None and epoch > status.epoch:
                continue  # asking ahead is a client bug (a 400), not part of this property
            got = await store.lock("g", epoch, f"h{who}", ttl_ms=int(ttl))  # type: ignore[call-overload]
            if isinstance(got, Acquired):
                tokens.append((got.token, epoch))
            elif isinstance(got, Stale):
                known_epoch = got.epoch
        elif tokens:
            # mostly the newest tokens: those are the ones that can still win
            token, epoch = tokens[-1 - int(step[1]) % len(tokens)]  # type: ignore[call-overload]
            if kind == "release":
                await store.release(token)
                continue
            digest = hashlib.sha256(token.encode()).hexdigest()
            done = await store.complete(token, commit_hash=digest)
            if isinstance(done, Committed):
                assert done.epoch == epoch + 1
                assert token not in fenced, "Fenced is final"
                assert committed.setdefault(epoch, token) == token, "one commit per epoch"
                known_epoch = max(known_epoch, done.epoch)
            else:
                assert isinstance(done, Fenced)
                assert committed.get(epoch) != token, "a committed token stays Committed"
                fenced.add(token)
    event(f"epochs committed: {min(len(committed), 3)}+, fenced: {min(len(fenced), 2)}+")
    status = await store.status("g")
    assert status.epoch == len(committed)
    assert [h.epoch for h in status.history] == sorted(committed) == list(range(len(committed)))


@settings(max_examples=200, deadline=None)
@given(ops)
def test_random_interleavings_keep_the_invariants(steps: list[tuple[object, ...]]) -> None:
    asyncio.run(play(steps))
