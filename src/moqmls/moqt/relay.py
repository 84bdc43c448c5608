"""A caching MoQT relay (draft-ietf-moq-transport-18 §8 Relays, §6 Namespace Discovery).

Namespace and track tables, SUBSCRIBE_TRACKS fan-out (never back to a track's own
publisher), several publishers per namespace, one aggregated upstream subscription per
track, a per-track object cache with retention per namespace suffix, FETCH from the
cache, chaining to an upstream relay, auth tokens that bind a session to the track
names it may publish, and GOAWAY on shutdown. A session that misbehaves is closed by
its own sans-I/O core with the right code; every other session carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aioquic.asyncio.server import QuicServer

from moqmls.moqt import events as ev
from moqmls.moqt.cache import ObjectCache, RetentionRule, TrackKey
from moqmls.moqt.codec import Location, Namespace, Properties, Reader
from moqmls.moqt.errors import MoQTError
from moqmls.moqt.objects import ObjectData
from moqmls.moqt.quic import (
    DEFAULT_ALPNS,
    MoQTProtocol,
    open_connection,
    self_signed_certificate,
    start_server,
)
from moqmls.moqt.session import MoQTSession, fetch_ok_end, namespace_matches
from moqmls.moqt.varint import MAX_VI64

log = logging.getLogger(__name__)

UPSTREAM_ALL = -1  # a standing "SUBSCRIBE_TRACKS ()" held by the upstream relay


@dataclass
class RelayConfig:
    """How a relay behaves."""

    retention: Sequence[RetentionRule] = ()
    default_max_age: float | None = 600.0
    max_objects_per_track: int = 10000
    max_cache_bytes: int = 256 << 20
    #: token -> track names the session holding it may publish; None disables auth.
    auth_tokens: Mapping[bytes, frozenset[bytes]] | None = None
    upstream: str | None = None
    upstream_verify: bool | str | bytes = False
    goaway_timeout_ms: int = 2000
    #: MoQT drafts accepted, in order of preference (the server picks by this order).
    alpns: tuple[str, ...] = DEFAULT_ALPNS
    max_requests_per_session: int = 2048


@dataclass
class Track:
    """A relay's state for one Full Track Name."""

    key: TrackKey
    properties: Properties = ()
    publishers: dict[Peer, int] = field(default_factory=dict)
    subscribers: dict[Peer, int] = field(default_factory=dict)
    upstream_pending: dict[Peer, int] = field(default_factory=dict)
    waiting: list[tuple[Peer, int]] = field(default_factory=list)
    #: LARGEST_OBJECT reported by upstream publishers (SUBSCRIBE_OK), §9.2.9
    upstream_largest: Location | None = None


@dataclass
class FetchPipe:
    """A FETCH forwarded upstream on behalf of a downstream request."""

    down: Peer
    down_rid: int
    key: TrackKey
    accepted: bool = False
    finished: bool = False
    #: feeds the fill stream of a downstream SUBSCRIBE (FILL_PARAMETERS), not a FETCH
    fill: bool = False


@dataclass(eq=False)
class Peer:
    """One session attached to the relay (downstream client or the upstream relay)."""

    proto: MoQTProtocol
    upstream: bool = False
    allowed: frozenset[bytes] | None = None
    authenticated: bool = True
    routes: dict[int, Track] = field(default_factory=dict)
    namespaces: dict[int, Namespace] = field(default_factory=dict)
    ns_subs: dict[int, Namespace] = field(default_factory=dict)
    track_subs: dict[int, Namespace] = field(default_factory=dict)
    fetch_pipes: dict[int, FetchPipe] = field(default_factory=dict)
    upstream_ns_subs: dict[int, Namespace] = field(default_factory=dict)
    upstream_track_subs: dict[int, Namespace] = field(default_factory=dict)
    remote_namespaces: set[Namespace] = field(default_factory=set)
    open_requests: int = 0
    #: SUBSCRIBEs with FILL_PARAMETERS not yet answered: rid -> (fill, subscription filter)
    fills: dict[int, tuple[dict[str, Any], Any]] = field(default_factory=dict)

    @property
    def session(self) -> MoQTSession:
        assert self.proto.session is not None
        return self.proto.session

    def alive(self) -> bool:
        return self.proto.session is not None and not self.proto.session.closed


class Relay:
    """The relay: accepts sessions, routes requests and objects between them."""

    def __init__(self, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig()
        self.cache = ObjectCache(
            self.config.retention,
            self.config.default_max_age,
            self.config.max_objects_per_track,
            self.config.max_cache_bytes,
        )
        self.tracks: dict[TrackKey, Track] = {}
        self.peers: set[Peer] = set()
        self.server: QuicServer | None = None
        self.port = 0
        self.certificate: Any = None
        self.upstream: Peer | None = None
        self._upstream_stack: contextlib.AsyncExitStack | None = None
        self._upstream_task: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        certificate: Any = None,
        private_key: Any = None,
    ) -> int:
        """Listen on host:port (a self-signed certificate is made when none is given)."""
        self._loop = asyncio.get_running_loop()
        if certificate is None:
            certificate, private_key = self_signed_certificate()
        self.certificate = certificate
        self.server, self.port = await start_server(
            host,
            port,
            certificate=certificate,
            private_key=private_key,
            on_connection=self._accept,
            alpns=self.config.alpns,
        )
        if self.config.upstream:
            await self._connect_upstream()
            self._upstream_task = asyncio.ensure_future(self._keep_upstream())
        return self.port

    async def close(self, grace: float = 0.3, new_session_uri: bytes = b"") -> None:
        """GOAWAY every session (§9.4), wait briefly, then close them and stop listening.

        `new_session_uri` (moqt://...) tells clients where to reconnect; empty: here again.
        """
        self._closing = True
        if self._upstream_task is not None:
            self._upstream_task.cancel()
        for peer in list(self.peers):
            if peer.alive() and not peer.upstream:
                with contextlib.suppress(MoQTError):
                    peer.session.goaway(new_session_uri, self.config.goaway_timeout_ms)
                peer.proto.flush()
        if self.peers:
            await asyncio.sleep(grace)
        for peer in list(self.peers):
            peer.proto.close_session(0, "relay shutting down")
        if self._upstream_stack is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._upstream_stack.aclose(), 1.0)
        if self.server is not None:
            self.server.close()
        await asyncio.sleep(0)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _accept(self, proto: MoQTProtocol) -> None:
        peer = Peer(proto)
        if self.config.auth_tokens is not None:
            peer.allowed = frozenset()
            peer.authenticated = False
        proto.context = peer
        proto.handler = self._on_event
        self.peers.add(peer)

    async def _connect_upstream(self) -> None:
        assert self.config.upstream is not None
        parts = urlsplit(self.config.upstream)
        proto, stack = await open_connection(
            parts.hostname or "127.0.0.1",
            parts.port or 443,
            verify=self.config.upstream_verify,
            handler=self._on_event,
        )
        peer = Peer(proto, upstream=True)
        peer.track_subs[UPSTREAM_ALL] = ()
        proto.context = peer
        self.peers.add(peer)
        self.upstream, self._upstream_stack = peer, stack
        for track in self.tracks.values():
            if track.publishers and peer not in track.publishers:
                self._offer_track(peer, track)
        for down in list(self.peers):
            for prefix in down.track_subs.values():
                if not down.upstream:
                    self._forward_tracks_upstream(prefix)
            for _rid, ns in down.namespaces.items():
                if not down.upstream:
                    peer.session.publish_namespace(ns)
        peer.proto.flush()

    async def _keep_upstream(self) -> None:
        while not self._closing:
            peer = self.upstream
            if peer is not None:
                await asyncio.shield(peer.proto.terminated)
            if self._closing:
                return
            await asyncio.sleep(0.2)
            with contextlib.suppress(MoQTError, OSError, TimeoutError):
                if self._upstream_stack is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._upstream_stack.aclose(), 1.0)
                await self._connect_upstream()

    # --- event routing -------------------------------------------------------------------

    def _on_event(self, proto: MoQTProtocol, event: ev.Event) -> None:
        peer = proto.context
        if not isinstance(peer, Peer):
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, peer, event)

    def _count_request(self, peer: Peer, request_id: int) -> bool:
        peer.open_requests += 1
        if peer.open_requests > self.config.max_requests_per_session:
            peer.session.reject(
                request_id,
                peer.session.profile.request_errors["EXCESSIVE_LOAD"],
                "too many requests",
                retry_interval=1000,
            )
            return False
        return True

    def _on_ready(self, peer: Peer, e: ev.SessionReady) -> None:
        if self.config.auth_tokens is None or peer.upstream:
            return
        for key, value in e.options:
            if key == 0x03 and isinstance(value, bytes):
                token = _token_value(value)
                if token is not None and token in self.config.auth_tokens:
                    peer.allowed = self.config.auth_tokens[token]
                    peer.authenticated = True
                    return
                peer.session.close(
                    peer.session.profile.session_errors["UNAUTHORIZED"], "unknown auth token"
                )
                return

    def _on_terminated(self, peer: Peer, e: ev.SessionTerminated) -> None:
        self.peers.discard(peer)
        for rid in list(peer.namespaces):
            self._withdraw_namespace(peer, rid)
        for track in list(self.tracks.values()):
            track.publishers.pop(peer, None)
            track.subscribers.pop(peer, None)
            track.upstream_pending.pop(peer, None)
            track.waiting = [(p, r) for p, r in track.waiting if p is not peer]
            self._settle_waiting(track)
        for pipe in peer.fetch_pipes.values():
            if pipe.down.alive():
                if pipe.fill:
                    pipe.down.session.end_fill(pipe.down_rid)
                else:
                    pipe.down.session.reject(pipe.down_rid, 0x0, "upstream lost")
                pipe.down.proto.schedule_flush()
        if peer is self.upstream:
            self.upstream = None

    def _on_closed(self, peer: Peer, e: Any) -> None:
        rid = e.request_id
        peer.fills.pop(rid, None)
        track = peer.routes.pop(rid, None)
        if track is not None:
            if track.publishers.get(peer) == rid:
                del track.publishers[peer]
            if track.subscribers.get(peer) == rid:
                del track.subscribers[peer]
        if rid in peer.namespaces:
            self._withdraw_namespace(peer, rid)
        peer.ns_subs.pop(rid, None)
        peer.track_subs.pop(rid, None)
        peer.open_requests = max(0, peer.open_requests - 1)

    # --- publishing -----------------------------------------------------------------------

    def _track(self, key: TrackKey) -> Track:
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = Track(key)
        return track

    def _may_publish(self, peer: Peer, name: bytes | None) -> bool:
        if peer.upstream or peer.allowed is None:
            return True
        return bool(peer.allowed) if name is None else name in peer.allowed

    def _on_publish(self, peer: Peer, e: ev.PublishRequested) -> None:
        session = peer.session
        errors = session.profile.request_errors
        if not self._count_request(peer, e.request_id):
            return
        if not self._may_publish(peer, e.track_name):
            session.reject(
                e.request_id, errors["UNAUTHORIZED"], "not allowed to publish this track"
            )
            return
        key = (e.namespace, e.track_name)
        track = self._track(key)
        if peer in track.publishers:
            # draft-19 dropped DUPLICATE_SUBSCRIPTION; the relay has no use for a second copy
            code = errors.get("DUPLICATE_SUBSCRIPTION", errors["UNINTERESTED"])
            session.reject(e.request_id, code, "already publishing")
            return
        is_new_ns = not self._namespace_known(e.namespace)
        track.publishers[peer] = e.request_id
        track.properties = e.track_properties or track.properties
        peer.routes[e.request_id] = track
        session.accept_request(e.request_id, {"forward": 1})
        if is_new_ns:
            self._announce_namespace(e.namespace, exclude=None)
        for other in list(self.peers):
            wants = any(namespace_matches(p, e.namespace) for p in other.track_subs.values())
            if wants and other is not peer and other not in track.subscribers and other.alive():
                self._offer_track(other, track)
        self._settle_waiting(track)

    def _offer_track(self, peer: Peer, track: Track) -> None:
        """PUBLISH a track to a SUBSCRIBE_TRACKS subscriber (§6.1)."""
        if not peer.alive() or peer in track.publishers:
            return
        params: dict[str, Any] = {"forward": 1}
        largest = self._largest(track)
        if largest is not None:
            params["largest_object"] = largest
        rid = peer.session.publish(track.key[0], track.key[1], params, track.properties)
        track.subscribers[peer] = rid
        peer.routes[rid] = track
        peer.proto.schedule_flush()

    def _on_object(self, peer: Peer, e: ev.ObjectReceived) -> None:
        obj = ObjectData(
            e.group_id, e.object_id, e.payload, e.properties, e.subgroup_id, e.priority, e.status
        )
        if e.via_fetch:
            pipe = peer.fetch_pipes.get(e.request_id)
            if pipe is not None:
                self.cache.put(pipe.key, obj, self._now())
                if pipe.down.alive():
                    pipe.down.session.send_fetch_object(pipe.down_rid, obj)
                    pipe.down.proto.schedule_flush()
            return
        track = peer.routes.get(e.request_id)
        if track is None or track.publishers.get(peer) != e.request_id:
            return
        if not self.cache.put(track.key, obj, self._now()):
            return  # a duplicate from a second publisher or a replay (§8.3)
        # every subscriber's stream is usually at the same point: encode the object once
        encoded: dict[int | None, bytes] = {}
        subgroup = e.subgroup_id or 0
        for sub, rid in list(track.subscribers.items()):
            session = sub.proto.session
            if sub is peer or session is None or session.closed:
                continue
            session.send_object(
                rid,
                e.group_id,
                e.object_id,
                e.payload,
                e.properties,
                subgroup,
                e.priority,
                e.status,
                encoded=encoded,
            )
            sub.proto.schedule_flush()

    def _on_subgroup_finished(self, peer: Peer, e: ev.SubgroupFinished) -> None:
        """Forward a subgroup's FIN once its objects are sent (§10.4.3)."""
        track = peer.routes.get(e.request_id)
        if track is None or track.publishers.get(peer) != e.request_id:
            return
        for sub, rid in list(track.subscribers.items()):
            if sub is not peer and sub.alive():
                sub.session.end_subgroup(rid, e.group_id, e.subgroup_id)
                sub.proto.schedule_flush()

    def _on_publish_done(self, peer: Peer, e: ev.PublishDoneReceived) -> None:
        track = peer.routes.get(e.request_id)
        if track is not None and track.publishers.get(peer) == e.request_id:
            del track.publishers[peer]

    # --- subscribing ------------------------------------------------------------------------

    def _sources(self, key: TrackKey, exclude: Peer) -> list[Peer]:
        """Sessions to ask for a track: namespace publishers allowed to publish it, upstream."""
        namespace, name = key
        found = []
        for peer in self.peers:
            if peer is exclude or not peer.alive() or not self._may_publish(peer, name):
                continue
            if any(namespace_matches(ns, namespace) for ns in peer.namespaces.values()):
                found.append(peer)
        if (
            self.upstream is not None
            and self.upstream is not exclude
            and self.upstream.alive()
            and self.upstream not in found
        ):
            found.append(self.upstream)
        return found

    def _on_subscribe(self, peer: Peer, e: ev.SubscribeRequested) -> None:
        session = peer.session
        if not self._count_request(peer, e.request_id):
            return
        if "fill_parameters" in e.params:
            peer.fills[e.request_id] = (
                e.params["fill_parameters"],
                e.params.get("subscription_filter"),
            )
        key = (e.namespace, e.track_name)
        track = self.tracks.get(key)
        others = [p for p in (track.publishers if track else {}) if p is not peer]
        if track is not None and (others or self.cache.largest(key) is not None):
            self._accept_subscriber(peer, e.request_id, track)
            if not others:
                self._subscribe_upstream(track, exclude=peer)
            return
        sources = self._sources(key, exclude=peer)
        if not sources:
            session.reject(
                e.request_id,
                session.profile.request_errors["DOES_NOT_EXIST"],
                "no publisher for this track",
            )
            return
        track = self._track(key)
        track.waiting.append((peer, e.request_id))
        self._subscribe_upstream(track, exclude=peer)
        self._settle_waiting(track)

    def _subscribe_upstream(self, track: Track, exclude: Peer) -> None:
        """One aggregated upstream SUBSCRIBE per source (§8.4)."""
        for src in self._sources(track.key, exclude):
            if src in track.publishers or src in track.upstream_pending:
                continue
            rid = src.session.subscribe(track.key[0], track.key[1], {"forward": 1})
            track.upstream_pending[src] = rid
            src.routes[rid] = track
            src.proto.schedule_flush()

    def _largest(self, track: Track) -> Location | None:
        """LARGEST_OBJECT for a track: the larger of cached and upstream-reported (§9.2.9)."""
        known = [x for x in (self.cache.largest(track.key), track.upstream_largest) if x]
        return max(known) if known else None

    def _accept_subscriber(self, peer: Peer, request_id: int, track: Track) -> None:
        peer.session.accept_subscribe(request_id, self._largest(track), track.properties)
        track.subscribers[peer] = request_id
        peer.routes[request_id] = track
        fill = peer.fills.pop(request_id, None)
        if fill is not None:
            self._serve_fill(peer, request_id, track, *fill)
        peer.proto.schedule_flush()

    def _serve_fill(
        self, peer: Peer, request_id: int, track: Track, fill: dict[str, Any], sub_filter: Any
    ) -> None:
        """The fill stream of a SUBSCRIBE with FILL_PARAMETERS (draft-20 on).

        Its range is FILL_PARAMETERS' LOCATION_FILTER, else the subscription's, read as a
        FETCH's: capped at Largest Object; an empty range opens no stream. Served from the
        cache, or by a FETCH upstream (of either draft) when the cache does not cover it.
        """
        largest = self._largest(track)
        if largest is None:
            return
        flt = fill.get("subscription_filter", sub_filter)
        start, last = flt.window(largest) if flt is not None else (Location(0, 0), None)
        if last is None or last > largest:
            last = largest
        end = Location(last.group, last.object + 1) if last.object < MAX_VI64 else last
        now = self._now()
        objects = self.cache.range(track.key, start, end, now)
        earliest = self.cache.earliest(track.key, now)
        if not objects or earliest is None or start < earliest:
            sources = self._sources(track.key, exclude=peer)
            if sources:
                rid = sources[0].session.fetch(track.key[0], track.key[1], start, end)
                sources[0].fetch_pipes[rid] = FetchPipe(peer, request_id, track.key, fill=True)
                sources[0].proto.schedule_flush()
                return
        if not objects:
            return
        for obj in objects:
            peer.session.send_fetch_object(request_id, obj)
        peer.session.end_fill(request_id)

    def _settle_waiting(self, track: Track) -> None:
        if not track.waiting:
            return
        if track.publishers:
            waiting, track.waiting = track.waiting, []
            for peer, rid in waiting:
                if peer.alive():
                    self._accept_subscriber(peer, rid, track)
        elif not track.upstream_pending:
            waiting, track.waiting = track.waiting, []
            for peer, rid in waiting:
                if peer.alive():
                    peer.session.reject(
                        rid, peer.session.profile.request_errors["DOES_NOT_EXIST"], "no publisher"
                    )
                    peer.proto.schedule_flush()

    def _on_subscribe_ok(self, peer: Peer, e: ev.SubscribeAccepted) -> None:
        track = peer.routes.get(e.request_id)
        if track is None or track.upstream_pending.get(peer) != e.request_id:
            return
        del track.upstream_pending[peer]
        track.publishers[peer] = e.request_id
        track.properties = e.track_properties or track.properties
        largest = e.params.get("largest_object")
        if isinstance(largest, Location):
            track.upstream_largest = max(largest, track.upstream_largest or largest)
        self._settle_waiting(track)
        # a track learnt through a namespace publisher is now known by name: offer it to
        # SUBSCRIBE_TRACKS subscribers too (§6.1)
        self._offer_to_track_subscribers(track, source=peer)

    def _offer_to_track_subscribers(self, track: Track, source: Peer) -> None:
        for other in list(self.peers):
            wants = any(namespace_matches(p, track.key[0]) for p in other.track_subs.values())
            if wants and other is not source and other not in track.subscribers and other.alive():
                self._offer_track(other, track)

    def _on_rejected(self, peer: Peer, e: ev.RequestRejected) -> None:
        pipe = peer.fetch_pipes.pop(e.request_id, None)
        if pipe is not None:
            if pipe.down.alive():
                if pipe.fill:  # the subscription stands; its fill just ends
                    pipe.down.session.end_fill(pipe.down_rid)
                else:
                    pipe.down.session.reject(pipe.down_rid, e.error_code, e.reason)
                pipe.down.proto.schedule_flush()
            return
        track = peer.routes.pop(e.request_id, None)
        if track is None:
            return
        if track.upstream_pending.get(peer) == e.request_id:
            del track.upstream_pending[peer]
            self._settle_waiting(track)
        if track.subscribers.get(peer) == e.request_id:
            del track.subscribers[peer]

    def _on_track_status(self, peer: Peer, e: ev.TrackStatusRequested) -> None:
        """TRACK_STATUS (§9.16): answered from the track table and cache."""
        session = peer.session
        key = (e.namespace, e.track_name)
        track = self.tracks.get(key)
        largest = self.cache.largest(key)
        if track is None and largest is None:
            session.reject(
                e.request_id, session.profile.request_errors["DOES_NOT_EXIST"], "unknown track"
            )
            return
        params = {} if largest is None else {"largest_object": largest}
        session.accept_request(e.request_id, params, track.properties if track else ())

    # --- fetching -------------------------------------------------------------------------

    def _on_fetch(self, peer: Peer, e: ev.FetchRequested) -> None:
        session = peer.session
        errors = session.profile.request_errors
        if not self._count_request(peer, e.request_id):
            return
        key = (e.namespace, e.track_name)
        now = self._now()
        cached = self.cache.range(key, e.start, e.end, now)
        earliest = self.cache.earliest(key, now)
        if not cached or (earliest is not None and e.start < earliest):
            sources = self._sources(key, exclude=peer)
            if sources:
                src = sources[0]
                rid = src.session.fetch(e.namespace, e.track_name, e.start, e.end)
                src.fetch_pipes[rid] = FetchPipe(peer, e.request_id, key)
                src.proto.schedule_flush()
                return
        largest = self.cache.largest(key)
        if largest is None or largest < e.start:
            session.reject(e.request_id, errors["INVALID_RANGE"], "no objects in range")
            return
        session.accept_fetch(e.request_id, fetch_ok_end(e.end, largest, cached))
        for obj in cached:
            session.send_fetch_object(e.request_id, obj)
        session.end_fetch(e.request_id)
        peer.proto.schedule_flush()

    def _on_fetch_ok(self, peer: Peer, e: ev.FetchAccepted) -> None:
        pipe = peer.fetch_pipes.get(e.request_id)
        if pipe is None or not pipe.down.alive():
            return
        if not pipe.fill:
            pipe.down.session.accept_fetch(
                pipe.down_rid, e.end_location, e.end_of_track, e.track_properties
            )
        pipe.accepted = True
        self._finish_pipe(peer, e.request_id, pipe)

    def _on_fetch_finished(self, peer: Peer, e: ev.FetchFinished) -> None:
        pipe = peer.fetch_pipes.get(e.request_id)
        if pipe is not None:
            pipe.finished = True
            self._finish_pipe(peer, e.request_id, pipe)

    def _finish_pipe(self, peer: Peer, rid: int, pipe: FetchPipe) -> None:
        if pipe.accepted and pipe.finished:
            peer.fetch_pipes.pop(rid, None)
            if pipe.down.alive():
                if pipe.fill:
                    pipe.down.session.end_fill(pipe.down_rid)
                else:
                    pipe.down.session.end_fetch(pipe.down_rid)
                pipe.down.proto.schedule_flush()

    # --- namespaces -------------------------------------------------------------------------

    def _namespace_known(self, namespace: Namespace) -> bool:
        for peer in self.peers:
            if namespace in peer.namespaces.values() or namespace in peer.remote_namespaces:
                return True
        return any(t.key[0] == namespace and t.publishers for t in self.tracks.values())

    def _known_namespaces(self) -> set[Namespace]:
        known: set[Namespace] = set()
        for peer in self.peers:
            known.update(peer.namespaces.values())
            known.update(peer.remote_namespaces)
        known.update(t.key[0] for t in self.tracks.values() if t.publishers)
        return known

    def _announce_namespace(
        self, namespace: Namespace, exclude: Peer | None, done: bool = False
    ) -> None:
        for peer in list(self.peers):
            if peer is exclude or not peer.alive():
                continue
            for rid, prefix in peer.ns_subs.items():
                if namespace_matches(prefix, namespace):
                    peer.session.send_namespace(rid, namespace[len(prefix) :], done)
                    peer.proto.schedule_flush()

    def _on_publish_namespace(self, peer: Peer, e: ev.PublishNamespaceRequested) -> None:
        session = peer.session
        if not self._count_request(peer, e.request_id):
            return
        if not self._may_publish(peer, None):
            session.reject(
                e.request_id,
                session.profile.request_errors["UNAUTHORIZED"],
                "not allowed to publish",
            )
            return
        is_new = not self._namespace_known(e.namespace)
        peer.namespaces[e.request_id] = e.namespace
        session.accept_request(e.request_id)
        if is_new:
            self._announce_namespace(e.namespace, exclude=None)
        for track in self.tracks.values():
            if (
                namespace_matches(e.namespace, track.key[0])
                and (track.subscribers or track.waiting)
                and peer not in track.publishers
                and peer not in track.upstream_pending
            ):
                rid = session.subscribe(track.key[0], track.key[1], {"forward": 1})
                track.upstream_pending[peer] = rid
                peer.routes[rid] = track
        if self.upstream is not None and not peer.upstream and self.upstream.alive():
            self.upstream.session.publish_namespace(e.namespace)
            self.upstream.proto.schedule_flush()

    def _withdraw_namespace(self, peer: Peer, rid: int) -> None:
        namespace = peer.namespaces.pop(rid)
        if not self._namespace_known(namespace):
            self._announce_namespace(namespace, exclude=None, done=True)

    def _overlaps(self, existing: Mapping[int, Namespace], prefix: Namespace) -> bool:
        return any(
            namespace_matches(p, prefix) or namespace_matches(prefix, p)
            for rid, p in existing.items()
            if rid != UPSTREAM_ALL
        )

    def _on_subscribe_namespace(self, peer: Peer, e: ev.SubscribeNamespaceRequested) -> None:
        session = peer.session
        if not self._count_request(peer, e.request_id):
            return
        if self._overlaps(peer.ns_subs, e.prefix):
            session.reject(
                e.request_id, session.profile.request_errors["PREFIX_OVERLAP"], "overlapping prefix"
            )
            return
        session.accept_request(e.request_id)
        peer.ns_subs[e.request_id] = e.prefix
        for ns in sorted(self._known_namespaces()):
            if namespace_matches(e.prefix, ns):
                session.send_namespace(e.request_id, ns[len(e.prefix) :])
        up = self.upstream
        if up is None or peer.upstream or not up.alive():
            return
        if not any(namespace_matches(p, e.prefix) for p in up.upstream_ns_subs.values()):
            rid = up.session.subscribe_namespace(e.prefix)
            up.upstream_ns_subs[rid] = e.prefix
            up.proto.schedule_flush()

    def _on_namespace(self, peer: Peer, e: ev.NamespaceAnnounced) -> None:
        if e.request_id not in peer.upstream_ns_subs or e.namespace in peer.remote_namespaces:
            return
        is_new = not self._namespace_known(e.namespace)
        peer.remote_namespaces.add(e.namespace)
        if is_new:
            self._announce_namespace(e.namespace, exclude=peer)

    def _on_namespace_done(self, peer: Peer, e: ev.NamespaceWithdrawn) -> None:
        if e.namespace in peer.remote_namespaces:
            peer.remote_namespaces.discard(e.namespace)
            if not self._namespace_known(e.namespace):
                self._announce_namespace(e.namespace, exclude=peer, done=True)

    def _on_subscribe_tracks(self, peer: Peer, e: ev.SubscribeTracksRequested) -> None:
        session = peer.session
        if not self._count_request(peer, e.request_id):
            return
        if self._overlaps(peer.track_subs, e.prefix):
            session.reject(
                e.request_id, session.profile.request_errors["PREFIX_OVERLAP"], "overlapping prefix"
            )
            return
        session.accept_request(e.request_id)
        peer.track_subs[e.request_id] = e.prefix
        for track in list(self.tracks.values()):
            if (
                namespace_matches(e.prefix, track.key[0])
                and any(p is not peer for p in track.publishers)
                and peer not in track.subscribers
            ):
                self._offer_track(peer, track)
        if not peer.upstream:
            self._forward_tracks_upstream(e.prefix)

    def _forward_tracks_upstream(self, prefix: Namespace) -> None:
        up = self.upstream
        if up is None or not up.alive():
            return
        if any(namespace_matches(p, prefix) for p in up.upstream_track_subs.values()):
            return
        rid = up.session.subscribe_tracks(prefix, {"forward": 1})
        up.upstream_track_subs[rid] = prefix
        up.proto.schedule_flush()


def _token_value(raw: bytes) -> bytes | None:
    """The Token Value of a USE_VALUE Token structure (§9.2.2), else None."""
    try:
        r = Reader(raw)
        if r.vi() != 0x3:
            return None
        r.vi()  # token type
        return r.take(r.remaining())
    except MoQTError:
        return None


_HANDLERS: dict[type[Any], Any] = {
    ev.SessionReady: Relay._on_ready,
    ev.SessionTerminated: Relay._on_terminated,
    ev.RequestClosed: Relay._on_closed,
    ev.PublishRequested: Relay._on_publish,
    ev.ObjectReceived: Relay._on_object,
    ev.PublishDoneReceived: Relay._on_publish_done,
    ev.SubgroupFinished: Relay._on_subgroup_finished,
    ev.SubscribeRequested: Relay._on_subscribe,
    ev.SubscribeAccepted: Relay._on_subscribe_ok,
    ev.RequestRejected: Relay._on_rejected,
    ev.FetchRequested: Relay._on_fetch,
    ev.TrackStatusRequested: Relay._on_track_status,
    ev.FetchAccepted: Relay._on_fetch_ok,
    ev.FetchFinished: Relay._on_fetch_finished,
    ev.PublishNamespaceRequested: Relay._on_publish_namespace,
    ev.SubscribeNamespaceRequested: Relay._on_subscribe_namespace,
    ev.NamespaceAnnounced: Relay._on_namespace,
    ev.NamespaceWithdrawn: Relay._on_namespace_done,
    ev.SubscribeTracksRequested: Relay._on_subscribe_tracks,
}


__all__ = ["Relay", "RelayConfig", "RetentionRule"]
