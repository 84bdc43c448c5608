"""The member's `Transport` over `moqmls.moqt.client` (draft-ietf-moq-transport-18).

One MoQT session per `MoQTTransport`: SUBSCRIBE_TRACKS on each prefix the member asks for (the
client falls back to SUBSCRIBE_NAMESPACE + SUBSCRIBE per track where the relay lacks it), one
PUBLISH per own track, FETCH of single objects. `objects()` ends when the session ends; the
runtime then connects a new session, so reconnection stays in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from moqmls.e2ee.runtime import MoQTProperties, Received
from moqmls.e2ee.tracks import Namespace
from moqmls.moqt.client import MoQTClient, ObjectStream, TrackPublisher, connect
from moqmls.moqt.codec import Location
from moqmls.moqt.errors import MoQTError

#: Objects a publisher keeps to answer FETCH from its own session.
KEEP_OBJECTS = 256


#: Streams the relay may have open towards us at once. Every track the relay offers under a
#: SUBSCRIBE_TRACKS prefix is a PUBLISH request on its own bidirectional stream for as long as
#: the track lives (draft-18 §3.3): one KeyPackage track per member, so a group of N needs
#: more than N; aioquic's default is 128.
MAX_PEER_STREAMS = 1 << 14


class MoQTTransport:
    """A member's MoQT session to one relay."""

    def __init__(self, client: MoQTClient) -> None:
        self.client = client
        self._queue: asyncio.Queue[Received | None] = asyncio.Queue()
        self._streams: dict[Namespace, ObjectStream] = {}
        self._pumps: dict[Namespace, asyncio.Task[None]] = {}
        self._publishers: dict[tuple[Namespace, bytes], TrackPublisher] = {}
        self._publishing: dict[tuple[Namespace, bytes], asyncio.Lock] = {}
        self._watch = asyncio.create_task(self._watch_session())

    @classmethod
    async def open(
        cls, url: str, *, verify: bool | str | bytes = True, auth_token: bytes | None = None
    ) -> MoQTTransport:
        client = await connect(
            url, verify=verify, auth_token=auth_token, timeout=5.0, max_streams=MAX_PEER_STREAMS
        )
        return cls(client)

    async def _watch_session(self) -> None:
        proto = self.client.protocol
        if proto is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(proto.terminated)
        self._queue.put_nowait(None)

    async def subscribe_tracks(self, prefix: Namespace) -> None:
        if prefix in self._streams:
            return
        stream = await self.client.subscribe_tracks(prefix)
        self._streams[prefix] = stream
        self._pumps[prefix] = asyncio.create_task(self._pump(stream))

    async def _pump(self, stream: ObjectStream) -> None:
        async for obj in stream:
            self._queue.put_nowait(
                Received(
                    obj.namespace,
                    obj.track_name,
                    obj.group_id,
                    obj.object_id,
                    obj.payload,
                    obj.properties,
                )
            )

    async def unsubscribe_tracks(self, prefix: Namespace) -> None:
        stream = self._streams.pop(prefix, None)
        if stream is not None:
            await stream.close()
        pump = self._pumps.pop(prefix, None)
        if pump is not None:
            pump.cancel()

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
        key = (namespace, track)
        pub = self._publishers.get(key)
        if pub is None:
            lock = self._publishing.setdefault(key, asyncio.Lock())
            async with lock:
                pub = self._publishers.get(key)
                if pub is None:
                    pub = await self.client.publish(namespace, track, keep=KEEP_OBJECTS)
                    self._publishers[key] = pub
        await pub.write(group, obj, payload, properties, end_of_group=end_of_group)

    async def fetch(self, namespace: Namespace, track: bytes, group: int, obj: int) -> bytes | None:
        try:
            found = await self.client.fetch(
                namespace, track, Location(group, obj), Location(group, obj + 1)
            )
        except MoQTError:
            return None
        for o in found:
            if o.group_id == group and o.object_id == obj:
                return o.payload
        return None

    async def objects(self) -> AsyncIterator[Received]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        for pump in self._pumps.values():
            pump.cancel()
        self._watch.cancel()
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.client.close()
