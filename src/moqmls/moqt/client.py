"""The application API: MoQT client sessions over QUIC (draft-ietf-moq-transport-18 §5, §6, §9).

`connect()` returns a `MoQTClient` that publishes tracks (PUBLISH, or PUBLISH_NAMESPACE and
answering SUBSCRIBE), writes objects, subscribes to one track or to every track under a
namespace prefix (SUBSCRIBE_TRACKS, falling back to SUBSCRIBE_NAMESPACE -> NAMESPACE ->
SUBSCRIBE), FETCHes absolute ranges, and yields received objects from an async iterator
that drops duplicates arriving by both SUBSCRIBE and FETCH.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from moqmls.moqt import events as ev
from moqmls.moqt.codec import (
    OPEN_END,
    Location,
    Namespace,
    Properties,
    PropertyValue,
    as_properties,
)
from moqmls.moqt.errors import (
    MoQTError,
    RequestCancelledError,
    RequestError,
    SessionClosedError,
)
from moqmls.moqt.objects import ObjectData
from moqmls.moqt.quic import DEFAULT_ALPNS, MoQTProtocol, open_connection
from moqmls.moqt.session import MoQTSession, fetch_ok_end, in_fetch_range, namespace_matches
from moqmls.moqt.varint import encode_vi64

log = logging.getLogger(__name__)

PropertiesLike = Mapping[int, PropertyValue] | Sequence[tuple[int, PropertyValue]] | None
NameLike = bytes | str
NamespaceLike = Sequence[bytes | str]
Discovery = Literal["auto", "tracks", "namespace"]
Announce = Literal["auto", "publish", "namespace"]

REQUEST_TIMEOUT = 10.0
#: How many (track, group, object) keys an ObjectStream remembers for de-duplication.
DEDUP_WINDOW = 200_000
#: How long a history subscriber waits for the fill stream FILL_PARAMETERS asked for
#: before FETCHing the range itself: a peer may ignore FILL_PARAMETERS (moq-rs does).
FILL_WAIT = 1.0
#: Most groups fetched one by one, newest first, from a peer that refuses a FETCH
#: spanning several groups (moq-rs).
HISTORY_GROUPS = 16


def to_namespace(namespace: NamespaceLike) -> Namespace:
    """A namespace tuple of bytes from bytes or str fields (str is UTF-8 encoded)."""
    return tuple(f.encode() if isinstance(f, str) else bytes(f) for f in namespace)


def to_name(name: NameLike) -> bytes:
    """A track name as bytes (str is UTF-8 encoded)."""
    return name.encode() if isinstance(name, str) else bytes(name)


def auth_token_value(token: bytes) -> bytes:
    """An AUTHORIZATION TOKEN Token structure (§9.2.2): USE_VALUE, type 0, the token."""
    return encode_vi64(0x3) + encode_vi64(0) + token


@dataclass(frozen=True)
class MoQTObject:
    """One received object: full track name, location, properties and payload (§2.1)."""

    namespace: Namespace
    track_name: bytes
    group_id: int
    object_id: int
    payload: bytes
    properties: Properties = ()
    status: int = 0

    @property
    def location(self) -> Location:
        """The object's Location {group, object} (§1.4.2)."""
        return Location(self.group_id, self.object_id)

    def property(self, key: int) -> PropertyValue | None:
        """The first value of property `key`, or None."""
        for k, v in self.properties:
            if k == key:
                return v
        return None


class ObjectStream:
    """Objects of one subscription (one track or a namespace prefix), as an async iterator.

    Objects are de-duplicated by (namespace, track name, group, object) across every
    SUBSCRIBE, PUBLISH and FETCH feeding this stream; the newest `DEDUP_WINDOW` keys are
    remembered, so a long-lived media stream does not grow without bound.
    """

    def __init__(
        self,
        client: MoQTClient,
        prefix: Namespace,
        track_name: bytes | None,
        discovery: Discovery = "auto",
        track_names: Callable[[Namespace], Sequence[bytes]] | None = None,
        history: bool = False,
    ) -> None:
        self._client = client
        self.history = history
        self.prefix = prefix
        self.track_name = track_name
        self.discovery = discovery
        self.track_names = track_names or (lambda ns: [ns[-1]])
        self._queue: asyncio.Queue[MoQTObject | None] = asyncio.Queue()
        self._seen: set[tuple[Namespace, bytes, int, int]] = set()
        self._seen_order: deque[tuple[Namespace, bytes, int, int]] = deque()
        self.closed = False
        self.mode: str = "track" if track_name is not None else discovery
        self.namespaces: set[Namespace] = set()

    def __aiter__(self) -> AsyncIterator[MoQTObject]:
        return self

    async def __anext__(self) -> MoQTObject:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def get(self, timeout: float | None = None) -> MoQTObject:
        """The next object, waiting at most `timeout` seconds (TimeoutError)."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    def offer(self, obj: MoQTObject) -> bool:
        """Queue `obj` unless already seen; returns whether it was new."""
        key = (obj.namespace, obj.track_name, obj.group_id, obj.object_id)
        if key in self._seen or self.closed:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > DEDUP_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        self._queue.put_nowait(obj)
        return True

    async def fetch(
        self, namespace: NamespaceLike, track_name: NameLike, start: Location, end: Location
    ) -> int:
        """FETCH [start, end) of a track into this stream; returns how many were new."""
        objects = await self._client.fetch(namespace, track_name, start, end)
        return sum(self.offer(o) for o in objects)

    async def close(self) -> None:
        """Cancel the subscription(s) behind this stream and end the iteration."""
        if self.closed:
            return
        self.closed = True
        self._client._drop_stream(self)
        self._queue.put_nowait(None)


class TrackPublisher:
    """A track this client publishes; keeps recent objects to answer FETCH and replays."""

    def __init__(
        self,
        client: MoQTClient,
        namespace: Namespace,
        track_name: bytes,
        announce: Announce,
        track_properties: Properties,
        keep: int,
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.track_name = track_name
        self.announce = announce
        self.track_properties = track_properties
        self.keep = keep
        self.objects: OrderedDict[Location, ObjectData] = OrderedDict()
        self.largest: Location | None = None
        self.subscriptions: set[int] = set()
        self.publish_request: int | None = None
        self.closed = False

    async def write(
        self,
        group_id: int,
        object_id: int,
        payload: bytes,
        properties: PropertiesLike = None,
        *,
        end_of_group: bool = False,
    ) -> None:
        """Publish one object (§10.4.2) to every current subscription.

        With `end_of_group`, this is the group's last object: its subgroup stream is
        closed with FIN (§10.4.3), which lets caches treat the group as complete.
        """
        if self.closed:
            raise SessionClosedError("track publisher is closed")
        props = as_properties(properties or ())
        obj = ObjectData(group_id, object_id, bytes(payload), props)
        loc = Location(group_id, object_id)
        self.objects[loc] = obj
        while len(self.objects) > self.keep:
            self.objects.popitem(last=False)
        if self.largest is None or loc > self.largest:
            self.largest = loc
        self._client._send_object(self, obj, end_of_group)

    async def close(self) -> None:
        """Stop publishing: PUBLISH_DONE to subscribers."""
        if not self.closed:
            self.closed = True
            self._client._unpublish(self)


class FillWatch:
    """A SUBSCRIBE sent with FILL_PARAMETERS: whether its fill stream delivered, and the
    first live object, which bounds the history when the peer reports no Largest Object."""

    def __init__(self) -> None:
        self.filled = asyncio.Event()
        self.live = asyncio.Event()
        self.first_live: Location | None = None

    def wake(self) -> None:
        """Release a waiting history task (the subscription is gone)."""
        self.filled.set()
        self.live.set()


class MoQTClient:
    """A MoQT client session; create it with `connect()`."""

    def __init__(
        self,
        url: str,
        *,
        verify: bool | str | bytes = True,
        auth_token: bytes | None = None,
        reconnect: bool = False,
        alpns: tuple[str, ...] = DEFAULT_ALPNS,
        timeout: float = 10.0,
        max_streams: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "moqt" or not parts.hostname:
            raise MoQTError(f"not a moqt:// URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 443
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.verify = verify
        self.auth_token = auth_token
        self.reconnect = reconnect
        self.alpns = alpns
        self.timeout = timeout
        self.max_streams = max_streams
        self.protocol: MoQTProtocol | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._closing = False
        self._pending: dict[int, asyncio.Future[ev.Event]] = {}
        self._fetches: dict[int, list[ObjectData]] = {}
        self._fetch_done: dict[int, asyncio.Future[None]] = {}
        self._routes: dict[int, tuple[ObjectStream, Namespace, bytes]] = {}
        self._watchers: dict[int, ObjectStream] = {}
        self._serving: dict[int, TrackPublisher] = {}
        self._published: dict[tuple[Namespace, bytes], TrackPublisher] = {}
        self._announced: dict[Namespace, int] = {}
        self._streams: list[ObjectStream] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        #: SUBSCRIBEs sent with FILL_PARAMETERS -> set once their fill stream delivers
        self._fill_watch: dict[int, FillWatch] = {}
        #: seconds to wait for a requested fill stream before FETCHing instead
        self.fill_wait = FILL_WAIT
        self.connected = asyncio.Event()
        self.goaway = asyncio.Event()
        self.reconnects = 0

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> MoQTClient:
        """Connect (called by `connect()`)."""
        await self._connect_once()
        if self.reconnect:
            self._spawn(self._supervise())
        return self

    async def __aenter__(self) -> MoQTClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> MoQTSession:
        """The current sans-I/O session (raises when disconnected)."""
        if self.protocol is None or self.protocol.session is None or self.protocol.session.closed:
            raise SessionClosedError("not connected")
        return self.protocol.session

    @property
    def alpn(self) -> str:
        """The negotiated ALPN (the MoQT draft in use)."""
        return self.session.profile.alpn

    async def close(self) -> None:
        """Close the session (NO_ERROR) and stop reconnecting."""
        self._closing = True
        for stream in list(self._streams):
            stream.closed = True
            stream._queue.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        await self._disconnect()

    async def _disconnect(self) -> None:
        proto, stack = self.protocol, self._stack
        self.protocol, self._stack = None, None
        self.connected.clear()
        if proto is not None:
            proto.close_session(0, "bye")
        if stack is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), 2.0)
        self._fail_pending(SessionClosedError("session closed"))

    async def _connect_once(self) -> None:
        options: list[tuple[int, PropertyValue]] = [(0x05, f"{self.host}:{self.port}".encode())]
        if self.path:
            options.append((0x01, self.path.encode()))
        if self.auth_token is not None:
            options.append((0x03, auth_token_value(self.auth_token)))
        proto, stack = await open_connection(
            self.host,
            self.port,
            verify=self.verify,
            alpns=self.alpns,
            setup_options=tuple(options),
            handler=self._on_event,
            timeout=self.timeout,
            max_streams=self.max_streams,
        )
        self.protocol, self._stack = proto, stack
        self.goaway.clear()
        self.connected.set()

    async def _supervise(self) -> None:
        while not self._closing:
            proto = self.protocol
            if proto is not None:
                waiters: list[asyncio.Future[Any]] = [
                    asyncio.ensure_future(asyncio.shield(proto.terminated)),
                    asyncio.ensure_future(self.goaway.wait()),
                ]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
            if self._closing:
                return
            await self._disconnect()
            delay = 0.05
            while not self._closing:
                try:
                    await self._connect_once()
                    break
                except (MoQTError, OSError, TimeoutError, ConnectionError) as exc:
                    log.debug("reconnect to %s failed: %r", self.url, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            if self._closing:
                return
            self.reconnects += 1
            await self._restore()

    async def _restore(self) -> None:
        for watch in self._fill_watch.values():
            watch.wake()  # a history task of the old session; resubscribing starts anew
        self._fill_watch.clear()
        self._routes.clear()
        self._watchers.clear()
        self._serving.clear()
        self._announced.clear()
        for pub in list(self._published.values()):
            pub.subscriptions.clear()
            pub.publish_request = None
            try:
                await self._announce(pub)
                for obj in list(pub.objects.values()):
                    self._send_object(pub, obj, False)
            except MoQTError as exc:
                log.warning("re-publishing %r failed: %r", pub.track_name, exc)
        for stream in list(self._streams):
            try:
                await self._open_stream(stream)
            except MoQTError as exc:
                log.warning("re-subscribing failed: %r", exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        namespace: NamespaceLike,
        track_name: NameLike,
        *,
        announce: Announce = "auto",
        track_properties: PropertiesLike = None,
        keep: int = 1024,
    ) -> TrackPublisher:
        """Publish a track (§9.12, §9.17).

        `announce`: "publish" sends PUBLISH; "namespace" sends PUBLISH_NAMESPACE (once per
        namespace) and answers SUBSCRIBE and FETCH from the objects kept (`keep` newest);
        "auto" (default) tries PUBLISH and falls back to "namespace" when the peer answers
        NOT_SUPPORTED (as moq-rs does).
        """
        ns, name = to_namespace(namespace), to_name(track_name)
        if (ns, name) in self._published:
            raise MoQTError(f"already publishing {ns!r} {name!r}")
        pub = TrackPublisher(self, ns, name, announce, as_properties(track_properties or ()), keep)
        await self._announce(pub)
        self._published[(ns, name)] = pub
        return pub

    async def _announce(self, pub: TrackPublisher) -> None:
        if pub.announce == "namespace":
            if pub.namespace not in self._announced:
                rid = self.session.publish_namespace(pub.namespace)
                self._announced[pub.namespace] = rid
                await self._await_answer(rid)
            return
        session = self.session
        params: dict[str, Any] = {"forward": 1}
        if pub.largest is not None:
            params["largest_object"] = pub.largest
        rid = session.publish(pub.namespace, pub.track_name, params, pub.track_properties)
        pub.publish_request = rid
        pub.subscriptions.add(rid)
        self._serving[rid] = pub
        self._kick()
        try:
            await self._await_answer(rid)
        except RequestError as exc:
            if (
                pub.announce != "auto"
                or exc.code != session.profile.request_errors["NOT_SUPPORTED"]
            ):
                raise
            # a relay without PUBLISH (moq-rs): announce the namespace and answer SUBSCRIBE
            pub.announce = "namespace"
            await self._announce(pub)
            return
        pub.announce = "publish"

    def _send_object(self, pub: TrackPublisher, obj: ObjectData, end_of_group: bool) -> None:
        if self.protocol is None or self.protocol.session is None:
            return
        session = self.protocol.session
        for rid in list(pub.subscriptions):
            session.send_object(
                rid,
                obj.group_id,
                obj.object_id,
                obj.payload,
                obj.properties,
                end_of_group=end_of_group,
            )
            if end_of_group:
                session.end_subgroup(rid, obj.group_id)
        self.protocol.schedule_flush()

    def _unpublish(self, pub: TrackPublisher) -> None:
        self._published.pop((pub.namespace, pub.track_name), None)
        if self.protocol is None or self.protocol.session is None:
            return
        session = self.protocol.session
        for rid in list(pub.subscriptions):
            session.publish_done(rid, session.profile.publish_done["TRACK_ENDED"], "done")
            self._serving.pop(rid, None)
        pub.subscriptions.clear()
        self.protocol.schedule_flush()

    # --- subscribing -------------------------------------------------------------------------

    async def subscribe(
        self, namespace: NamespaceLike, track_name: NameLike, *, history: bool = False
    ) -> ObjectStream:
        """SUBSCRIBE to one track (§9.9): objects published from now on.

        With `history`, what the publisher or relay still holds up to the Largest Location
        it reports comes into the same stream too (duplicates are dropped): at -18 by a
        FETCH; from -20 on on the SUBSCRIBE's fill stream (FILL_PARAMETERS), or, when the
        peer opens none within `fill_wait` seconds, by a FETCH after all.
        """
        stream = ObjectStream(self, to_namespace(namespace), to_name(track_name), history=history)
        self._streams.append(stream)
        try:
            await self._open_stream(stream)
        except BaseException:
            self._streams.remove(stream)
            raise
        return stream

    async def subscribe_tracks(
        self,
        prefix: NamespaceLike,
        *,
        discovery: Discovery = "auto",
        track_names: Callable[[Namespace], Sequence[bytes]] | None = None,
        history: bool = False,
    ) -> ObjectStream:
        """Receive every track under a namespace prefix (§6.1).

        "tracks" uses SUBSCRIBE_TRACKS; "namespace" uses SUBSCRIBE_NAMESPACE and then
        SUBSCRIBE to `track_names(namespace)` of each announced namespace (by default its
        last field); "auto" tries SUBSCRIBE_TRACKS and falls back when it is refused.
        With `history`, each track's earlier objects still held upstream (up to the
        Largest Location reported in PUBLISH or SUBSCRIBE_OK) are FETCHed in as well.
        """
        stream = ObjectStream(
            self, to_namespace(prefix), None, discovery, track_names, history=history
        )
        self._streams.append(stream)
        try:
            await self._open_stream(stream)
        except BaseException:
            self._streams.remove(stream)
            raise
        return stream

    async def _open_stream(self, stream: ObjectStream) -> None:
        session = self.session
        if stream.track_name is not None:
            await self._subscribe_route(stream, stream.prefix, stream.track_name)
            return
        if stream.mode in ("auto", "tracks"):
            rid = session.subscribe_tracks(stream.prefix, {"forward": 1})
            self._watchers[rid] = stream
            self._kick()
            try:
                await self._await_answer(rid)
                stream.mode = "tracks"
                return
            except RequestError:
                self._watchers.pop(rid, None)
                if stream.mode == "tracks":
                    raise
        stream.mode = "namespace"
        rid = self.session.subscribe_namespace(stream.prefix)
        self._watchers[rid] = stream
        self._kick()
        await self._await_answer(rid)

    async def _subscribe_into(self, stream: ObjectStream, ns: Namespace, name: bytes) -> None:
        if any(r[0] is stream and r[1:] == (ns, name) for r in self._routes.values()):
            return
        try:
            await self._subscribe_route(stream, ns, name)
        except MoQTError as exc:
            log.info("subscribing %r %r failed: %r", ns, name, exc)

    async def _subscribe_route(self, stream: ObjectStream, ns: Namespace, name: bytes) -> None:
        """SUBSCRIBE to one track into `stream`, and catch up on its history if asked."""
        params = self._subscribe_params(stream)
        rid = self.session.subscribe(ns, name, params)
        self._routes[rid] = (stream, ns, name)
        watch = FillWatch() if "fill_parameters" in params else None
        if watch is not None:
            self._fill_watch[rid] = watch
        try:
            answer = await self._await_answer(rid)
        except BaseException:
            self._fill_watch.pop(rid, None)
            raise
        self._backfill(stream, ns, name, answer, rid if watch is not None else None)

    def _subscribe_params(self, stream: ObjectStream) -> dict[str, Any]:
        """SUBSCRIBE parameters; with `history`, FILL_PARAMETERS where the draft has them."""
        params: dict[str, Any] = {"forward": 1}
        fill = self.session.profile.fill_parameters
        if stream.history and fill is not None:
            # subscribe and catch up in one request: the publisher opens a fill stream
            # with everything from {0, 0} up to its Largest Object (draft-20 on)
            params["fill_parameters"] = fill(Location(0, 0), OPEN_END)
        return params

    def _backfill(
        self,
        stream: ObjectStream,
        ns: Namespace,
        name: bytes,
        answer: Any,
        fill_rid: int | None = None,
    ) -> None:
        """FETCH a track's past into `stream` when it asked for history.

        `fill_rid`: the SUBSCRIBE asked for a fill stream; FETCH only if none has
        delivered within `fill_wait` seconds.
        """
        largest = getattr(answer, "params", {}).get("largest_object")
        watch = self._fill_watch.get(fill_rid) if fill_rid is not None else None
        if not stream.history or (watch is None and not isinstance(largest, Location)):
            return
        known = largest if isinstance(largest, Location) else None
        self._spawn(self._fetch_history(stream, ns, name, known, fill_rid, watch))

    async def _fetch_history(
        self,
        stream: ObjectStream,
        ns: Namespace,
        name: bytes,
        largest: Location | None,
        fill_rid: int | None,
        watch: FillWatch | None,
    ) -> None:
        try:
            if watch is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.fill_wait):
                        await watch.filled.wait()
                if watch.filled.is_set():
                    return  # the fill stream delivers the history (or the stream closed)
                log.info("no fill stream for %r %r: FETCHing its history", ns, name)
                if largest is None:
                    # no Largest Object reported (moq-rs): what precedes the first live
                    # object is the history
                    await watch.live.wait()
                    if watch.first_live is None or stream.closed:
                        return
                    end = watch.first_live
            if largest is not None:
                end = Location(largest.group, largest.object + 1)
            await self._fetch_range_into(stream, ns, name, end)
        finally:
            if fill_rid is not None:
                self._fill_watch.pop(fill_rid, None)

    async def _fetch_range_into(
        self, stream: ObjectStream, ns: Namespace, name: bytes, end: Location
    ) -> None:
        """FETCH [{0, 0}, end); from a peer refusing that, up to `HISTORY_GROUPS` whole
        groups one by one, newest first, until one is refused."""
        try:
            await stream.fetch(ns, name, Location(0, 0), end)
            return
        except RequestError as exc:
            if end.group == 0 or stream.closed:
                log.info("history FETCH of %r %r failed: %r", ns, name, exc)
                return
        except MoQTError as exc:
            log.info("history FETCH of %r %r failed: %r", ns, name, exc)
            return
        got: list[MoQTObject] = []
        for group in range(end.group, max(-1, end.group - HISTORY_GROUPS), -1):
            try:
                got += await self.fetch(ns, name, Location(group, 0), Location(group, 0))
            except MoQTError as exc:
                log.info("history FETCH of %r %r group %d: %r", ns, name, group, exc)
                break
        for obj in sorted(got, key=lambda o: (o.group_id, o.object_id)):
            if obj.location < end or end.object == 0:
                stream.offer(obj)

    def _drop_stream(self, stream: ObjectStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
        if self.protocol is None or self.protocol.session is None:
            return
        session = self.protocol.session
        for rid in [r for r, v in self._routes.items() if v[0] is stream]:
            del self._routes[rid]
            session.cancel(rid)
            watch = self._fill_watch.pop(rid, None)
            if watch is not None:
                watch.wake()
        for rid in [r for r, v in self._watchers.items() if v is stream]:
            del self._watchers[rid]
            session.cancel(rid)
        self._kick()

    # --- fetching ------------------------------------------------------------------------

    async def fetch(
        self,
        namespace: NamespaceLike,
        track_name: NameLike,
        start: Location | tuple[int, int],
        end: Location | tuple[int, int],
    ) -> list[MoQTObject]:
        """FETCH an absolute range (§9.14.1) and return its objects in order.

        `end` is the draft's End Location: the last wanted object plus one, or
        (group, 0) for the whole of `group`.
        """
        ns, name = to_namespace(namespace), to_name(track_name)
        start, end = _loc(start), _loc(end)
        rid = self.session.fetch(ns, name, start, end)
        self._fetches[rid] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetch_done[rid] = done
        self._kick()
        try:
            await self._await_answer(rid)
            async with asyncio.timeout(self.timeout):
                await done
            objects = self._fetches.get(rid, [])
        finally:
            self._fetches.pop(rid, None)
            self._fetch_done.pop(rid, None)
        return [
            MoQTObject(ns, name, o.group_id, o.object_id, o.payload, o.properties, o.status)
            for o in objects
        ]

    async def track_status(self, namespace: NamespaceLike, track_name: NameLike) -> Location | None:
        """TRACK_STATUS (§9.16): the track's Largest Location, None when nothing published."""
        rid = self.session.track_status(to_namespace(namespace), to_name(track_name))
        answer = await self._await_answer(rid)
        largest = getattr(answer, "params", {}).get("largest_object")
        return largest if isinstance(largest, Location) else None

    # --- plumbing -----------------------------------------------------------------------

    def _kick(self) -> None:
        if self.protocol is not None:
            self.protocol.flush()

    async def _await_answer(self, request_id: int) -> ev.Event:
        fut: asyncio.Future[ev.Event] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        self._kick()
        try:
            async with asyncio.timeout(self.timeout):
                answer = await fut
        finally:
            self._pending.pop(request_id, None)
        if isinstance(answer, ev.RequestRejected):
            raise RequestError(
                answer.reason or "request rejected", answer.error_code, answer.retry_interval
            )
        if isinstance(answer, ev.RequestClosed):
            raise RequestCancelledError("request stream closed before an answer")
        return answer

    def _answer(self, request_id: int, event: ev.Event) -> None:
        fut = self._pending.get(request_id)
        if fut is not None and not fut.done():
            fut.set_result(event)

    def _fail_pending(self, exc: Exception) -> None:
        for fut in list(self._pending.values()) + list(self._fetch_done.values()):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved when nobody awaits it any more

    def _on_event(self, proto: MoQTProtocol, event: ev.Event) -> None:
        if proto is not self.protocol:
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, proto, event)

    def _h_answer(self, proto: MoQTProtocol, e: Any) -> None:
        self._answer(e.request_id, e)

    def _h_rejected(self, proto: MoQTProtocol, e: ev.RequestRejected) -> None:
        self._answer(e.request_id, e)
        self._routes.pop(e.request_id, None)
        pub = self._serving.pop(e.request_id, None)
        if pub is not None:
            pub.subscriptions.discard(e.request_id)
        done = self._fetch_done.get(e.request_id)
        if done is not None and not done.done():
            done.set_exception(RequestError(e.reason, e.error_code, e.retry_interval))
            done.exception()  # `fetch` raises from its answer and never awaits `done`

    def _h_object(self, proto: MoQTProtocol, e: ev.ObjectReceived) -> None:
        if e.via_fetch:
            bucket = self._fetches.get(e.request_id)
            if bucket is not None:
                bucket.append(
                    ObjectData(
                        e.group_id,
                        e.object_id,
                        e.payload,
                        e.properties,
                        e.subgroup_id,
                        e.priority,
                        e.status,
                    )
                )
                return
            # otherwise the fill stream of a SUBSCRIBE with FILL_PARAMETERS: its route
        self._watch_fill(e.request_id, e.via_fetch, Location(e.group_id, e.object_id))
        route = self._routes.get(e.request_id)
        if route is None:
            return
        stream, ns, name = route
        stream.offer(
            MoQTObject(ns, name, e.group_id, e.object_id, e.payload, e.properties, e.status)
        )

    def _watch_fill(self, request_id: int, via_fetch: bool, location: Location) -> None:
        watch = self._fill_watch.get(request_id)
        if watch is None:
            return
        if via_fetch:
            watch.filled.set()
        elif watch.first_live is None:
            watch.first_live = location
            watch.live.set()

    def _h_fetch_finished(self, proto: MoQTProtocol, e: ev.FetchFinished) -> None:
        watch = self._fill_watch.get(e.request_id)
        if watch is not None:
            watch.filled.set()
        done = self._fetch_done.get(e.request_id)
        if done is not None and not done.done():
            done.set_result(None)

    def _h_publish(self, proto: MoQTProtocol, e: ev.PublishRequested) -> None:
        session = proto.session
        assert session is not None
        for stream in self._watchers.values():
            if (
                not stream.closed
                and stream.mode != "namespace"
                and namespace_matches(stream.prefix, e.namespace)
            ):
                self._routes[e.request_id] = (stream, e.namespace, e.track_name)
                session.accept_request(e.request_id, {"forward": 1})
                self._backfill(stream, e.namespace, e.track_name, e)
                return
        session.reject(e.request_id, session.profile.request_errors["UNINTERESTED"], "no interest")

    def _h_subscribe(self, proto: MoQTProtocol, e: ev.SubscribeRequested) -> None:
        session = proto.session
        assert session is not None
        pub = self._published.get((e.namespace, e.track_name))
        if pub is None or pub.closed:
            session.reject(
                e.request_id, session.profile.request_errors["DOES_NOT_EXIST"], "not published here"
            )
            return
        session.accept_subscribe(e.request_id, pub.largest, pub.track_properties)
        pub.subscriptions.add(e.request_id)
        self._serving[e.request_id] = pub

    def _h_fetch(self, proto: MoQTProtocol, e: ev.FetchRequested) -> None:
        session = proto.session
        assert session is not None
        pub = self._published.get((e.namespace, e.track_name))
        if pub is None or pub.largest is None:
            session.reject(
                e.request_id, session.profile.request_errors["INVALID_RANGE"], "nothing published"
            )
            return
        objs = [o for loc, o in sorted(pub.objects.items()) if in_fetch_range(loc, e.start, e.end)]
        end = fetch_ok_end(e.end, pub.largest, objs)
        session.accept_fetch(e.request_id, end, False, pub.track_properties)
        for obj in objs:
            session.send_fetch_object(e.request_id, obj)
        session.end_fetch(e.request_id)

    def _h_namespace(self, proto: MoQTProtocol, e: ev.NamespaceAnnounced) -> None:
        stream = self._watchers.get(e.request_id)
        if stream is None:
            return
        if e.namespace in stream.namespaces:
            return
        stream.namespaces.add(e.namespace)
        for name in stream.track_names(e.namespace):
            self._spawn(self._subscribe_into(stream, e.namespace, name))

    def _h_publish_namespace(self, proto: MoQTProtocol, e: ev.PublishNamespaceRequested) -> None:
        # Some relays (moq-rs) also advertise namespaces with PUBLISH_NAMESPACE (§6.2).
        session = proto.session
        assert session is not None
        session.accept_request(e.request_id)
        for rid, stream in list(self._watchers.items()):
            if stream.mode == "namespace" and namespace_matches(stream.prefix, e.namespace):
                self._h_namespace(proto, ev.NamespaceAnnounced(rid, e.namespace))

    def _h_track_status(self, proto: MoQTProtocol, e: ev.TrackStatusRequested) -> None:
        session = proto.session
        assert session is not None
        pub = self._published.get((e.namespace, e.track_name))
        if pub is None:
            session.reject(
                e.request_id, session.profile.request_errors["DOES_NOT_EXIST"], "not published here"
            )
            return
        params = {} if pub.largest is None else {"largest_object": pub.largest}
        session.accept_request(e.request_id, params, pub.track_properties)

    def _h_not_supported(self, proto: MoQTProtocol, e: Any) -> None:
        # A client serves no namespace or track discovery of its own.
        session = proto.session
        assert session is not None
        session.reject(
            e.request_id,
            session.profile.request_errors["NOT_SUPPORTED"],
            "not supported by this endpoint",
        )

    def _h_closed(self, proto: MoQTProtocol, e: ev.RequestClosed) -> None:
        self._answer(e.request_id, e)
        pub = self._serving.pop(e.request_id, None)
        if pub is not None:
            pub.subscriptions.discard(e.request_id)
        self._routes.pop(e.request_id, None)

    def _h_goaway(self, proto: MoQTProtocol, e: ev.GoawayReceived) -> None:
        if e.request_id is not None:
            return
        if e.new_session_uri:
            # migrate to the URI the server names (§3.6); a bad URI keeps the current one
            parts = urlsplit(e.new_session_uri.decode("utf-8", errors="replace"))
            if parts.scheme == "moqt" and parts.hostname:
                with contextlib.suppress(ValueError):
                    self.port = parts.port or 443
                    self.host = parts.hostname
                    self.path = parts.path + (f"?{parts.query}" if parts.query else "")
                    self.url = parts.geturl()
        self.goaway.set()

    def _h_terminated(self, proto: MoQTProtocol, e: ev.SessionTerminated) -> None:
        self.connected.clear()
        self._fail_pending(SessionClosedError(f"session terminated: {e.reason}"))


_HANDLERS: dict[type[Any], Callable[[MoQTClient, MoQTProtocol, Any], None]] = {
    ev.SubscribeAccepted: MoQTClient._h_answer,
    ev.RequestAccepted: MoQTClient._h_answer,
    ev.FetchAccepted: MoQTClient._h_answer,
    ev.RequestRejected: MoQTClient._h_rejected,
    ev.ObjectReceived: MoQTClient._h_object,
    ev.FetchFinished: MoQTClient._h_fetch_finished,
    ev.PublishRequested: MoQTClient._h_publish,
    ev.SubscribeRequested: MoQTClient._h_subscribe,
    ev.FetchRequested: MoQTClient._h_fetch,
    ev.NamespaceAnnounced: MoQTClient._h_namespace,
    ev.PublishNamespaceRequested: MoQTClient._h_publish_namespace,
    ev.TrackStatusRequested: MoQTClient._h_track_status,
    ev.SubscribeNamespaceRequested: MoQTClient._h_not_supported,
    ev.SubscribeTracksRequested: MoQTClient._h_not_supported,
    ev.RequestClosed: MoQTClient._h_closed,
    ev.GoawayReceived: MoQTClient._h_goaway,
    ev.SessionTerminated: MoQTClient._h_terminated,
}


def _loc(value: Location | tuple[int, int]) -> Location:
    return value if isinstance(value, Location) else Location(value[0], value[1])


async def connect(
    url: str,
    *,
    verify: bool | str | bytes = True,
    auth_token: bytes | None = None,
    reconnect: bool = False,
    alpns: tuple[str, ...] = DEFAULT_ALPNS,
    timeout: float = 10.0,
    max_streams: int | None = None,
) -> MoQTClient:
    """Open a MoQT session to `moqt://host:port[/path]` over raw QUIC.

    `verify`: True (system trust), False (accept any certificate), a CA file path, or PEM
    bytes of a certificate to trust. `auth_token` is sent in SETUP (AUTHORIZATION TOKEN).
    With `reconnect`, a lost or GOAWAY'd session is re-established and its publications
    and subscriptions are restored. `max_streams`: streams of each kind the relay may open
    towards us at once, for a subscriber offered more tracks than aioquic's default 128
    allows (each offered track is a request stream, draft-18 §3.3); None keeps that default.
    """
    client = MoQTClient(
        url,
        verify=verify,
        auth_token=auth_token,
        reconnect=reconnect,
        alpns=alpns,
        timeout=timeout,
        max_streams=max_streams,
    )
    return await client.start()
