"""The asyncio runtime of a member (`GroupMember`) over a scripted MoQT session."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

from moqmls.e2ee import events as ev
from moqmls.e2ee.mls_adapter import MLSIdentity
from moqmls.e2ee.runtime import GroupMember, MoQTProperties, Received, Transport
from moqmls.e2ee.tracks import Namespace


class RefusingOnce:
    """A session whose first SUBSCRIBE_TRACKS on one prefix fails (timeout, refusal)."""

    def __init__(self, refuse: Namespace) -> None:
        self.refuse = {refuse}
        self.attempts: Counter[Namespace] = Counter()
        self.subscribed: set[Namespace] = set()
        self._objects: asyncio.Queue[Received | None] = asyncio.Queue()

    async def subscribe_tracks(self, prefix: Namespace) -> None:
        self.attempts[prefix] += 1
        if prefix in self.refuse:
            self.refuse.discard(prefix)
            raise TimeoutError("no SUBSCRIBE_TRACKS answer")
        self.subscribed.add(prefix)

    async def unsubscribe_tracks(self, prefix: Namespace) -> None:
        self.subscribed.discard(prefix)

    async def publish(
        self,
        namespace: Namespace,
        track: bytes,
        group: int,
        obj: int,
        payload: bytes,
        properties: MoQTProperties = (),
        end_of_group: bool = False,
    ) -> None:
        return None

    async def fetch(self, namespace: Namespace, track: bytes, group: int, obj: int) -> None:
        return None

    async def objects(self) -> AsyncIterator[Received]:
        while (item := await self._objects.get()) is not None:
            yield item

    async def close(self) -> None:
        self._objects.put_nowait(None)


class SilentLock:
    """A lock service that never answers: the member stays in bootstrap."""

    async def call(self, op: ev.LockOp) -> ev.LockResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_failed_subscription_is_retried_on_the_same_session() -> None:
    # A SUBSCRIBE_TRACKS that fails while the session stays up must not leave the prefix
    # counted as subscribed: the member would never receive that prefix's objects.
    member: GroupMember | None = None
    transports: list[RefusingOnce] = []

    async def connect() -> Transport:
        assert member is not None
        transports.append(RefusingOnce(member.tracks.media_prefix))
        return transports[-1]

    member = GroupMember(MLSIdentity("a"), "g", connect, SilentLock())
    await member.start()
    try:
        media = member.tracks.media_prefix
        async with asyncio.timeout(10.0):
            while media not in transports[0].subscribed:
                await asyncio.sleep(0.01)
        assert len(transports) == 1  # the same session, not a reconnection
        assert transports[0].attempts[media] == 2
    finally:
        await member.close()
