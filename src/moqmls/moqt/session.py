"""The sans-I/O MoQT session state machine (draft-ietf-moq-transport-18 §3, §5, §9, §10).

Like aioquic's `QuicConnection`, a `MoQTSession` owns no socket, task or clock. The
transport adapter feeds it stream bytes (`receive_stream_data`, `stream_reset`, ...),
then drains `commands()` (bytes to write on QUIC streams, resets, a connection close)
and `events()` (what the peer did). Every request travels on its own bidirectional
stream (§3.3); SETUP and GOAWAY on a pair of unidirectional control streams; objects on
unidirectional SUBGROUP / FETCH data streams (§10.4).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from moqmls.moqt import events as ev
from moqmls.moqt import messages as m
from moqmls.moqt.codec import (
    Location,
    LocationWindow,
    Namespace,
    Properties,
    decode_message,
    encode_message,
    split_message,
)
from moqmls.moqt.errors import (
    DuplicateTrackAliasError,
    InvalidRequestIdError,
    MoQTError,
    ProtocolViolation,
    SessionClosedError,
)
from moqmls.moqt.objects import (
    DataStreamParser,
    EndOfRange,
    FetchHeader,
    ObjectData,
    PaddingHeader,
    SubgroupHeader,
    encode_fetch_header,
    encode_fetch_object,
    encode_subgroup_header,
    encode_subgroup_object,
)
from moqmls.moqt.profile import Profile
from moqmls.moqt.varint import decode_vi64

log = logging.getLogger(__name__)

MAX_CONTROL_BUFFER = 1 << 18
MAX_PENDING_OBJECTS = 4096
RESERVED_FIRST_FIELDS = frozenset({b".", b".session"})


# --- commands for the transport adapter ----------------------------------------------------


@dataclass(frozen=True)
class StreamWrite:
    """Write `data` on QUIC stream `stream_id`, then FIN when `end_stream`."""

    stream_id: int
    data: bytes
    end_stream: bool = False


@dataclass(frozen=True)
class StreamReset:
    """Reset the sending side of `stream_id` with `code` (§3.4.3)."""

    stream_id: int
    code: int


@dataclass(frozen=True)
class StopSending:
    """Ask the peer to stop sending on `stream_id` (§3.4.2)."""

    stream_id: int
    code: int


@dataclass(frozen=True)
class CloseConnection:
    """Close the transport session with a session termination code (§3.4)."""

    code: int
    reason: str


Command = StreamWrite | StreamReset | StopSending | CloseConnection


# --- per-request state ------------------------------------------------------------------------

_FIRST_RESPONSES: dict[type[Any], tuple[type[Any], ...]] = {
    m.Subscribe: (m.SubscribeOk, m.RequestErrorMsg),
    m.Fetch: (m.FetchOk, m.RequestErrorMsg),
    m.Publish: (m.RequestOk, m.PublishOk, m.RequestErrorMsg),
}
_DEFAULT_FIRST = (m.RequestOk, m.RequestErrorMsg)
_LATER_FROM_RESPONDER: dict[type[Any], tuple[type[Any], ...]] = {
    m.Subscribe: (m.PublishDone, m.RequestOk, m.RequestErrorMsg, m.Goaway, m.PublishStateNotify),
    m.Publish: (m.RequestUpdate, m.Goaway),
    m.Fetch: (m.RequestOk, m.RequestErrorMsg, m.Goaway),
    m.SubscribeNamespace: (
        m.NamespaceMsg,
        m.NamespaceDone,
        m.RequestOk,
        m.RequestErrorMsg,
        m.Goaway,
    ),
    m.SubscribeTracks: (m.PublishBlocked, m.RequestOk, m.RequestErrorMsg, m.Goaway),
    m.PublishNamespace: (m.RequestOk, m.RequestErrorMsg, m.Goaway),
    m.TrackStatus: (),
}
_LATER_FROM_REQUESTER: dict[type[Any], tuple[type[Any], ...]] = {
    m.Publish: (m.PublishDone, m.RequestOk, m.RequestErrorMsg, m.Goaway, m.PublishStateNotify),
}
_DEFAULT_LATER_FROM_REQUESTER = (m.RequestUpdate, m.Goaway)


@dataclass
class Request:
    """One request stream and what we know about it."""

    request_id: int
    stream_id: int
    kind: type[Any]
    local: bool
    namespace: Namespace = ()
    track_name: bytes = b""
    buffer: bytearray = field(default_factory=bytearray)
    answered: bool = False
    closed: bool = False
    # subscriptions
    track_alias: int | None = None
    forward: bool = True
    start: Location = Location(0, 0)
    end: Location | None = None  # inclusive
    streams_opened: int = 0
    largest: Location | None = None
    filter: LocationWindow | None = None
    # subgroup streams we publish: (group, subgroup) -> [stream_id, header, last object id]
    out_streams: dict[tuple[int, int], list[Any]] = field(default_factory=dict)
    stopped: set[tuple[int, int]] = field(default_factory=set)
    fetch_stream: int | None = None
    fetch_done: bool = False
    fetch_previous: ObjectData | None = None
    # INCLUDE_PROPERTIES (draft-20 on): 0 asks for empty Track Properties in the answer
    include_properties: bool = True


@dataclass
class _UniIn:
    """An incoming unidirectional stream: control, data or not yet known."""

    buffer: bytearray = field(default_factory=bytearray)
    control: bool = False
    parser: DataStreamParser | None = None
    request_id: int | None = None
    alias: int | None = None
    ignore: bool = False


class MoQTSession:
    """One MoQT session endpoint, fed bytes, producing bytes and events."""

    def __init__(self, profile: Profile, is_client: bool) -> None:
        self.profile = profile
        self.is_client = is_client
        self.closed = False
        self.peer_setup: Properties | None = None
        self.goaway_received = False
        self._commands: list[Command] = []
        self._events: deque[ev.Event] = deque()
        self._next_request_id = 0 if is_client else 1
        self._next_bidi = 0 if is_client else 1
        self._next_uni = 2 if is_client else 3
        self._next_alias = 0
        self._control_out: int | None = None
        self._control_in: int | None = None
        self._requests: dict[int, Request] = {}
        self._by_stream: dict[int, int] = {}
        self._peer_request_ids: set[int] = set()
        self._finished_peer_streams: set[int] = set()
        self._uni: dict[int, _UniIn] = {}
        self._alias_in: dict[int, int] = {}
        self._pending_alias: dict[int, list[tuple[int, ObjectData]]] = {}
        self._pending_count = 0
        self.local_setup: Properties = ()

    # --- draining ----------------------------------------------------------------------------

    def commands(self) -> list[Command]:
        """Take the transport commands produced so far."""
        out, self._commands = self._commands, []
        return out

    def events(self) -> list[ev.Event]:
        """Take the events produced so far."""
        out = list(self._events)
        self._events.clear()
        return out

    # --- setup and teardown ----------------------------------------------------------------

    def initiate(self, options: Properties = ()) -> None:
        """Open our control stream and send SETUP (§3.3, §9.3)."""
        if self._control_out is not None:
            return
        self._control_out = self._alloc_uni()
        self.local_setup = tuple(options)
        self._write(self._control_out, encode_message(m.Setup(tuple(options)), self.profile))

    def goaway(self, new_session_uri: bytes = b"", timeout_ms: int = 0) -> None:
        """Send GOAWAY on the control stream (§9.4)."""
        self._check_open()
        assert self._control_out is not None
        # The smallest peer Request ID not processed (§9.4): peers count from 0 (client)
        # or 1 (server) in steps of 2.
        first_peer_id = 1 if self.is_client else 0
        next_peer = max(self._peer_request_ids, default=first_peer_id - 2) + 2
        if self.is_client:
            new_session_uri = b""
        msg = m.Goaway(new_session_uri, timeout_ms, next_peer)
        self._write(self._control_out, encode_message(msg, self.profile))

    def close(self, code: int = 0, reason: str = "") -> None:
        """Close the session with a termination code (§3.4)."""
        if self.closed:
            return
        self.closed = True
        self._commands.append(CloseConnection(code, reason))
        self._events.append(ev.SessionTerminated(code, reason))

    def connection_lost(self, code: int = 0, reason: str = "") -> None:
        """The transport ended underneath us."""
        if self.closed:
            return
        self.closed = True
        self._events.append(ev.SessionTerminated(code, reason, by_peer=True))

    # --- transport input -------------------------------------------------------------------

    def receive_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Bytes arrived on a QUIC stream."""
        if self.closed:
            return
        try:
            if stream_id & 0x2:
                self._receive_uni(stream_id, data, end_stream)
            else:
                self._receive_bidi(stream_id, data, end_stream)
        except MoQTError as exc:
            log.info("closing MoQT session: %s (code %#x)", exc, exc.code)
            self.close(exc.code, str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug must end this session only, never the process
            log.exception("internal error in MoQT session")
            self.close(self.profile.session_errors["INTERNAL_ERROR"], f"internal: {exc!r}")

    def stream_reset(self, stream_id: int, code: int) -> None:
        """The peer reset its sending side of a stream."""
        if self.closed:
            return
        if stream_id in (self._control_in,):
            self.close(self.profile.session_errors["PROTOCOL_VIOLATION"], "control stream reset")
            return
        rid = self._by_stream.get(stream_id)
        if rid is not None:
            self._request_gone(rid, code)
            return
        self._finished_peer_streams.discard(stream_id)
        state = self._uni.pop(stream_id, None)
        if state is not None and state.request_id is not None:
            req = self._requests.get(state.request_id)
            if req is not None and req.kind is m.Fetch:
                self._events.append(ev.FetchFinished(state.request_id))

    def stop_sending_received(self, stream_id: int, code: int) -> None:
        """The peer asked us to stop sending on a stream: reset it (§10.4.3)."""
        if self.closed:
            return
        rid = self._by_stream.get(stream_id)
        if rid is not None:
            self._commands.append(StreamReset(stream_id, code))
            self._request_gone(rid, code)
            return
        for req in self._requests.values():
            for key, entry in list(req.out_streams.items()):
                if entry[0] == stream_id:
                    del req.out_streams[key]
                    # no new stream for the rest of this subgroup (§10.4.3)
                    req.stopped.add(key)
                    self._commands.append(StreamReset(stream_id, code))

    # --- local requests ------------------------------------------------------------------------

    def subscribe(
        self, namespace: Namespace, track_name: bytes, params: dict[str, Any] | None = None
    ) -> int:
        """Send SUBSCRIBE (§9.9); returns its Request ID."""
        req = self._new_request(m.Subscribe, namespace, track_name)
        self._send_first(req, m.Subscribe(req.request_id, namespace, track_name, params or {}))
        return req.request_id

    def publish(
        self,
        namespace: Namespace,
        track_name: bytes,
        params: dict[str, Any] | None = None,
        track_properties: Properties = (),
    ) -> int:
        """Send PUBLISH (§9.12) with a fresh Track Alias; returns its Request ID."""
        req = self._new_request(m.Publish, namespace, track_name)
        req.track_alias = self._alloc_alias()
        p = dict(params or {})
        req.forward = bool(p.get("forward", 1))
        msg = m.Publish(req.request_id, namespace, track_name, req.track_alias, p, track_properties)
        self._send_first(req, msg)
        return req.request_id

    def fetch(
        self,
        namespace: Namespace,
        track_name: bytes,
        start: Location,
        end: Location,
        params: dict[str, Any] | None = None,
    ) -> int:
        """Send a standalone FETCH (§9.14.1) for [start, end); returns its Request ID."""
        req = self._new_request(m.Fetch, namespace, track_name)
        msg = m.Fetch(req.request_id, 1, namespace, track_name, start, end, params=params or {})
        self._send_first(req, msg)
        return req.request_id

    def joining_fetch(self, subscribe_request_id: int, joining_start: int, relative: bool) -> int:
        """Send a joining FETCH (§9.14.2) tied to one of our subscriptions."""
        sub = self._requests.get(subscribe_request_id)
        if sub is None or sub.kind is not m.Subscribe or not sub.local:
            raise ProtocolViolation("joining fetch needs one of our subscriptions")
        req = self._new_request(m.Fetch, sub.namespace, sub.track_name)
        ftype = 2 if relative else 3
        msg = m.Fetch(
            req.request_id,
            ftype,
            joining_request_id=subscribe_request_id,
            joining_start=joining_start,
        )
        self._send_first(req, msg)
        return req.request_id

    def publish_namespace(self, namespace: Namespace, params: dict[str, Any] | None = None) -> int:
        """Send PUBLISH_NAMESPACE (§9.17)."""
        req = self._new_request(m.PublishNamespace, namespace)
        self._send_first(req, m.PublishNamespace(req.request_id, namespace, params or {}))
        return req.request_id

    def subscribe_namespace(self, prefix: Namespace, params: dict[str, Any] | None = None) -> int:
        """Send SUBSCRIBE_NAMESPACE (§9.20)."""
        req = self._new_request(m.SubscribeNamespace, prefix)
        self._send_first(req, m.SubscribeNamespace(req.request_id, prefix, params or {}))
        return req.request_id

    def subscribe_tracks(self, prefix: Namespace, params: dict[str, Any] | None = None) -> int:
        """Send SUBSCRIBE_TRACKS (§9.21)."""
        req = self._new_request(m.SubscribeTracks, prefix)
        self._send_first(req, m.SubscribeTracks(req.request_id, prefix, params or {}))
        return req.request_id

    def track_status(
        self, namespace: Namespace, track_name: bytes, params: dict[str, Any] | None = None
    ) -> int:
        """Send TRACK_STATUS (§9.16)."""
        req = self._new_request(m.TrackStatus, namespace, track_name)
        self._send_first(req, m.TrackStatus(req.request_id, namespace, track_name, params or {}))
        return req.request_id

    def request_update(self, request_id: int, params: dict[str, Any]) -> int:
        """Send REQUEST_UPDATE (§9.11) on an existing request stream."""
        req = self._live(request_id)
        update_id = self._alloc_request_id()
        if "forward" in params and req.kind is m.Publish:
            req.forward = bool(params["forward"])
        self._write(req.stream_id, encode_message(m.RequestUpdate(update_id, params), self.profile))
        return update_id

    def cancel(self, request_id: int, code: int | None = None) -> None:
        """Cancel a request: reset our side and ask the peer to stop (§3.4.2)."""
        req = self._requests.pop(request_id, None)
        if req is None or self.closed:
            return
        self._by_stream.pop(req.stream_id, None)
        c = self.profile.reset_codes["CANCELLED"] if code is None else code
        self._close_out_streams(req, c)
        self._commands += [StreamReset(req.stream_id, c), StopSending(req.stream_id, c)]
        if req.track_alias is not None and self._alias_in.get(req.track_alias) == request_id:
            del self._alias_in[req.track_alias]

    def finish_request(self, request_id: int) -> None:
        """FIN our side of a request stream (withdraws a namespace, ends discovery)."""
        req = self._requests.get(request_id)
        if req is None or self.closed:
            return
        self._write(req.stream_id, b"", end=True)

    # --- answers ---------------------------------------------------------------------------

    def accept_subscribe(
        self,
        request_id: int,
        largest: Location | None = None,
        track_properties: Properties = (),
        params: dict[str, Any] | None = None,
    ) -> int | None:
        """Answer SUBSCRIBE with SUBSCRIBE_OK (§9.10); returns the Track Alias chosen.

        Returns None when the peer already cancelled the request.
        """
        req = self._pending_peer(request_id, m.Subscribe)
        if req is None:
            return None
        req.track_alias = self._alloc_alias()
        req.largest = largest
        p = dict(params or {})
        if largest is not None:
            p["largest_object"] = largest
        msg = m.SubscribeOk(req.track_alias, p, track_properties if req.include_properties else ())
        req.answered = True
        self._write(req.stream_id, encode_message(msg, self.profile))
        self._apply_filter(req, req.filter, largest)
        return req.track_alias

    def accept_request(
        self,
        request_id: int,
        params: dict[str, Any] | None = None,
        track_properties: Properties = (),
    ) -> None:
        """Answer a request with REQUEST_OK (§9.7)."""
        req = self._pending_peer(request_id, None)
        if req is None:
            return
        req.answered = True
        msg = m.RequestOk(params or {}, track_properties if req.include_properties else ())
        self._write(req.stream_id, encode_message(msg, self.profile))
        if req.kind is m.TrackStatus:
            self._write(req.stream_id, b"", end=True)
            self._forget(req)

    def accept_fetch(
        self,
        request_id: int,
        end_location: Location,
        end_of_track: bool = False,
        track_properties: Properties = (),
    ) -> None:
        """Answer FETCH with FETCH_OK (§9.15)."""
        req = self._pending_peer(request_id, m.Fetch)
        if req is None:
            return
        req.answered = True
        props = track_properties if req.include_properties else ()
        msg = m.FetchOk(int(end_of_track), end_location, {}, props)
        self._write(req.stream_id, encode_message(msg, self.profile))

    def reject(self, request_id: int, code: int, reason: str = "", retry_interval: int = 0) -> None:
        """Answer a request with REQUEST_ERROR and FIN the stream (§3.4.2, §9.8)."""
        req = self._requests.get(request_id)
        if req is None or req.local or self.closed:
            return
        msg = m.RequestErrorMsg(code, retry_interval, reason)
        self._write(req.stream_id, encode_message(msg, self.profile), end=True)
        self._forget(req)

    def send_namespace(self, request_id: int, suffix: Namespace, done: bool = False) -> None:
        """Send NAMESPACE or NAMESPACE_DONE under a SUBSCRIBE_NAMESPACE (§9.18, §9.19)."""
        req = self._requests.get(request_id)
        if req is None or self.closed:
            return
        msg = m.NamespaceDone(suffix) if done else m.NamespaceMsg(suffix)
        self._write(req.stream_id, encode_message(msg, self.profile))

    def publish_done(self, request_id: int, status_code: int, reason: str = "") -> None:
        """End a subscription we serve: FIN its streams, PUBLISH_DONE, FIN (§9.13)."""
        req = self._requests.get(request_id)
        if req is None or self.closed:
            return
        for stream_id, _, _ in req.out_streams.values():
            self._write(stream_id, b"", end=True)
        req.out_streams.clear()
        msg = m.PublishDone(status_code, req.streams_opened, reason)
        self._write(req.stream_id, encode_message(msg, self.profile), end=True)
        self._forget(req)

    # --- objects -----------------------------------------------------------------------------

    def is_forwarding(self, request_id: int) -> bool:
        """Whether objects of this subscription are to be sent (Forward State, §5.1)."""
        req = self._requests.get(request_id)
        return req is not None and req.forward and req.track_alias is not None

    def send_object(
        self,
        request_id: int,
        group_id: int,
        object_id: int,
        payload: bytes,
        properties: Properties = (),
        subgroup_id: int = 0,
        priority: int | None = None,
        status: int = 0,
        end_of_group: bool = False,
        encoded: dict[int | None, bytes] | None = None,
    ) -> bool:
        """Send one object of a subscription we serve (§10.4.2); False if filtered out.

        `encoded`: a memo shared by the calls sending this same object to many sessions
        (a relay's fan-out): its encoding after a given previous Object ID, made once.
        """
        req = self._requests.get(request_id)
        if req is None or self.closed or req.track_alias is None or not req.forward:
            return False
        loc = Location(group_id, object_id)
        if loc < req.start or (req.end is not None and loc > req.end):
            return False
        key = (group_id, subgroup_id)
        if key in req.stopped:
            return False
        entry = req.out_streams.get(key)
        if entry is not None and object_id <= entry[2]:
            self._write(entry[0], b"", end=True)
            del req.out_streams[key]
            entry = None
        if entry is None:
            self._close_older_groups(req, group_id)
            header = SubgroupHeader(
                req.track_alias, group_id, subgroup_id, priority, True, end_of_group, True
            )
            sid = self._alloc_uni()
            req.streams_opened += 1
            entry = [sid, header, None]
            req.out_streams[key] = entry
            data = encode_subgroup_header(header, self.profile)
        else:
            data = b""
        previous = entry[2]
        body = encoded.get(previous) if encoded is not None else None
        if body is None:
            body = encode_subgroup_object(
                entry[1], previous, object_id, payload, properties, status
            )
            if encoded is not None:
                encoded[previous] = body
        data = data + body if data else body
        entry[2] = object_id
        self._write(entry[0], data)
        return True

    def end_subgroup(self, request_id: int, group_id: int, subgroup_id: int = 0) -> None:
        """FIN the stream of one subgroup (§10.4.3)."""
        req = self._requests.get(request_id)
        if req is None:
            return
        entry = req.out_streams.pop((group_id, subgroup_id), None)
        if entry is not None and not self.closed:
            self._write(entry[0], b"", end=True)

    def send_fetch_object(self, request_id: int, obj: ObjectData) -> None:
        """Send one object on the data stream answering a FETCH (§10.4.4)."""
        req = self._requests.get(request_id)
        if req is None or self.closed:
            return
        if req.fetch_stream is None:
            req.fetch_stream = self._alloc_uni()
            self._write(req.fetch_stream, encode_fetch_header(request_id, self.profile))
        self._write(req.fetch_stream, encode_fetch_object(req.fetch_previous, obj))
        req.fetch_previous = obj

    def end_fill(self, request_id: int) -> None:
        """FIN the fill stream of a subscription we serve (FILL_PARAMETERS, draft-20 on)."""
        req = self._requests.get(request_id)
        if req is None or self.closed or req.fetch_stream is None:
            return
        self._write(req.fetch_stream, b"", end=True)
        req.fetch_stream = None
        req.fetch_previous = None

    def end_fetch(self, request_id: int) -> None:
        """FIN the FETCH data stream (opening it if empty) and the request stream."""
        req = self._requests.get(request_id)
        if req is None or self.closed:
            return
        if req.fetch_stream is None:
            req.fetch_stream = self._alloc_uni()
            self._write(req.fetch_stream, encode_fetch_header(request_id, self.profile))
        self._write(req.fetch_stream, b"", end=True)
        self._write(req.stream_id, b"", end=True)
        self._forget(req)

    # --- internals: allocation and output -------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosedError("session is closed")

    def _alloc_uni(self) -> int:
        sid = self._next_uni
        self._next_uni += 4
        return sid

    def _alloc_request_id(self) -> int:
        rid = self._next_request_id
        self._next_request_id += 2
        return rid

    def _alloc_alias(self) -> int:
        alias = self._next_alias
        self._next_alias += 1
        return alias

    def _new_request(
        self, kind: type[Any], namespace: Namespace = (), name: bytes = b""
    ) -> Request:
        self._check_open()
        sid = self._next_bidi
        self._next_bidi += 4
        req = Request(self._alloc_request_id(), sid, kind, True, namespace, name)
        self._requests[req.request_id] = req
        self._by_stream[sid] = req.request_id
        return req

    def _send_first(self, req: Request, msg: Any) -> None:
        self._write(req.stream_id, encode_message(msg, self.profile))

    def _write(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self._commands.append(StreamWrite(stream_id, data, end))

    def _live(self, request_id: int) -> Request:
        self._check_open()
        req = self._requests.get(request_id)
        if req is None:
            raise SessionClosedError(f"request {request_id} is not open")
        return req

    def _pending_peer(self, request_id: int, kind: type[Any] | None) -> Request | None:
        """The peer's unanswered request, or None when the peer already cancelled it."""
        if self.closed or request_id not in self._requests:
            return None
        req = self._requests[request_id]
        if req.local or (kind is not None and req.kind is not kind) or req.answered:
            raise ProtocolViolation(f"request {request_id} cannot be answered this way")
        return req

    def _forget(self, req: Request) -> None:
        self._requests.pop(req.request_id, None)
        if self._by_stream.pop(req.stream_id, None) is not None and not req.local:
            # late bytes or the FIN of a peer request we already answered are ignored
            self._finished_peer_streams.add(req.stream_id)

    def _close_out_streams(self, req: Request, code: int) -> None:
        for stream_id, _, _ in req.out_streams.values():
            self._commands.append(StreamReset(stream_id, code))
        req.out_streams.clear()
        if req.fetch_stream is not None:
            self._commands.append(StreamReset(req.fetch_stream, code))
            req.fetch_stream = None

    def _close_older_groups(self, req: Request, group_id: int) -> None:
        # A stream left open by its writer is closed once two newer groups have begun;
        # the previous group may still be completing out of order.
        for key in [k for k in req.out_streams if k[0] < group_id - 1]:
            self._write(req.out_streams.pop(key)[0], b"", end=True)
        if req.stopped:
            req.stopped = {k for k in req.stopped if k[0] >= group_id - 2}

    def _apply_filter(
        self, req: Request, flt: LocationWindow | None, largest: Location | None
    ) -> None:
        if flt is not None:
            req.start, req.end = flt.window(largest)

    def _request_gone(self, request_id: int, code: int | None) -> None:
        req = self._requests.pop(request_id, None)
        if req is None:
            return
        self._by_stream.pop(req.stream_id, None)
        if not req.local:
            self._close_out_streams(req, self.profile.reset_codes["CANCELLED"])
        if req.track_alias is not None and self._alias_in.get(req.track_alias) == request_id:
            del self._alias_in[req.track_alias]
        self._events.append(ev.RequestClosed(request_id, code))

    # --- internals: unidirectional streams ---------------------------------------------------

    def _receive_uni(self, stream_id: int, data: bytes, end: bool) -> None:
        if bool(stream_id & 0x1) == (not self.is_client):
            raise ProtocolViolation("data on a unidirectional stream we opened")
        state = self._uni.get(stream_id)
        if state is None:
            state = self._uni[stream_id] = _UniIn()
        if state.ignore:
            return
        if state.parser is None and not state.control:
            state.buffer += data
            data = b""
            try:
                stype, _ = decode_vi64(state.buffer, 0)
            except MoQTError:
                if end:
                    raise ProtocolViolation("stream ended before its type") from None
                return
            if stype == self.profile.setup_type:
                if self._control_in is not None:
                    raise ProtocolViolation("second control stream")
                self._control_in = stream_id
                state.control = True
            else:
                state.parser = DataStreamParser(self.profile)
            data, state.buffer = bytes(state.buffer), bytearray()
        if state.control:
            self._receive_control(state, data, end)
        else:
            self._receive_data(stream_id, state, data, end)

    def _receive_control(self, state: _UniIn, data: bytes, end: bool) -> None:
        if end:
            raise ProtocolViolation("control stream closed")
        state.buffer += data
        if len(state.buffer) > MAX_CONTROL_BUFFER:
            raise ProtocolViolation("control stream buffer exceeded")
        pos = 0
        while (found := split_message(state.buffer, pos)) is not None:
            mtype, start, stop = found
            msg = decode_message(mtype, state.buffer, start, stop, self.profile)
            pos = stop
            self._control_message(msg)
        del state.buffer[:pos]

    def _control_message(self, msg: Any) -> None:
        if self.peer_setup is None:
            if not isinstance(msg, m.Setup):
                raise ProtocolViolation("control stream must begin with SETUP")
            self.peer_setup = msg.options
            self._events.append(ev.SessionReady(msg.options))
            return
        if isinstance(msg, m.Goaway):
            if self.goaway_received:
                raise ProtocolViolation("second GOAWAY")
            if not self.is_client and msg.new_session_uri:
                raise ProtocolViolation("GOAWAY from a client carries no URI")
            own_parity = 0 if self.is_client else 1
            if msg.request_id is not None and msg.request_id % 2 != own_parity:
                raise InvalidRequestIdError("GOAWAY Request ID of the wrong parity")
            self.goaway_received = True
            self._events.append(ev.GoawayReceived(msg.new_session_uri, msg.timeout))
            return
        raise ProtocolViolation(f"{type(msg).__name__} is not allowed on the control stream")

    def _receive_data(self, stream_id: int, state: _UniIn, data: bytes, end: bool) -> None:
        assert state.parser is not None
        parser = state.parser
        for item in parser.feed(data):
            if state.ignore:
                break
            self._data_item(stream_id, state, item)
        if end:
            if not state.ignore:
                parser.finish()
            self._uni.pop(stream_id, None)
            if state.request_id is not None and isinstance(parser.header, FetchHeader):
                self._events.append(ev.FetchFinished(state.request_id))
                req = self._requests.get(state.request_id)
                if req is not None:
                    req.fetch_done = True
                    if req.closed:
                        self._forget(req)
            header = parser.header
            if isinstance(header, SubgroupHeader) and not state.ignore:
                rid = self._alias_in.get(header.track_alias)
                subgroup = header.subgroup_id
                if subgroup is None:
                    subgroup = parser.first_subgroup or 0
                if rid is not None:
                    # FIN: every object of the subgroup arrived (§10.4.3)
                    self._events.append(
                        ev.SubgroupFinished(rid, header.group_id, subgroup, header.end_of_group)
                    )

    def _data_item(self, stream_id: int, state: _UniIn, item: Any) -> None:
        if isinstance(item, SubgroupHeader):
            state.alias = item.track_alias
            return
        if isinstance(item, FetchHeader):
            req = self._requests.get(item.request_id)
            # a FETCH's data stream, or the fill stream of a SUBSCRIBE with FILL_PARAMETERS
            if req is None or not req.local or req.kind not in (m.Fetch, m.Subscribe):
                state.ignore = True  # a late stream for a cancelled fetch
                self._commands.append(StopSending(stream_id, self.profile.reset_codes["CANCELLED"]))
                return
            state.request_id = item.request_id
            return
        if isinstance(item, PaddingHeader | EndOfRange):
            return
        obj: ObjectData = item
        if state.request_id is not None:
            self._events.append(
                ev.ObjectReceived(
                    state.request_id,
                    obj.group_id,
                    obj.object_id,
                    obj.payload,
                    obj.properties,
                    obj.subgroup_id,
                    obj.priority,
                    obj.status,
                    via_fetch=True,
                )
            )
            return
        assert state.alias is not None
        rid = self._alias_in.get(state.alias)
        if rid is None:
            self._pend(state.alias, obj)
            return
        self._deliver(rid, obj)

    def _deliver(self, request_id: int, obj: ObjectData) -> None:
        self._events.append(
            ev.ObjectReceived(
                request_id,
                obj.group_id,
                obj.object_id,
                obj.payload,
                obj.properties,
                obj.subgroup_id,
                obj.priority,
                obj.status,
            )
        )

    def _pend(self, alias: int, obj: ObjectData) -> None:
        if self._pending_count >= MAX_PENDING_OBJECTS:
            return  # unknown alias flood: drop rather than buffer without bound (§10.4.2)
        self._pending_alias.setdefault(alias, []).append((alias, obj))
        self._pending_count += 1

    def _bind_alias(self, alias: int, request_id: int) -> None:
        current = self._alias_in.get(alias)
        if current is not None and current != request_id and current in self._requests:
            raise DuplicateTrackAliasError(f"track alias {alias} already in use")
        self._alias_in[alias] = request_id
        for _, obj in self._pending_alias.pop(alias, []):
            self._pending_count -= 1
            self._deliver(request_id, obj)

    # --- internals: bidirectional request streams ----------------------------------------

    def _receive_bidi(self, stream_id: int, data: bytes, end: bool) -> None:
        rid = self._by_stream.get(stream_id)
        if rid is None:
            local = bool(stream_id & 0x1) == (not self.is_client)
            if local:
                return  # a request we already forgot (cancelled or finished)
            if stream_id in self._finished_peer_streams:
                if end:
                    self._finished_peer_streams.discard(stream_id)
                return
            self._receive_new_request(stream_id, data, end)
            return
        req = self._requests[rid]
        req.buffer += data
        if len(req.buffer) > MAX_CONTROL_BUFFER:
            raise ProtocolViolation("request stream buffer exceeded")
        self._drain_request(req)
        if end and rid in self._requests:
            if req.buffer:
                raise ProtocolViolation("request stream ended inside a message")
            if req.local and req.kind is m.Fetch and req.answered:
                # FETCH_OK then FIN: the data stream may still be arriving (§9.14)
                req.closed = True
                if req.fetch_done:
                    self._forget(req)
                return
            if not req.local and req.kind is not m.Publish and not self.profile.fin_cancels_request:
                return  # the requester will send no REQUEST_UPDATE; the request lives on
            self._request_gone(rid, None)

    def _receive_new_request(self, stream_id: int, data: bytes, end: bool) -> None:
        pending = self._uni.setdefault(-stream_id - 1, _UniIn())
        pending.buffer += data
        if len(pending.buffer) > MAX_CONTROL_BUFFER:
            raise ProtocolViolation("request stream buffer exceeded")
        found = split_message(pending.buffer)
        if found is None:
            if end:
                raise ProtocolViolation("request stream ended before its first message")
            return
        mtype, start, stop = found
        msg = decode_message(mtype, pending.buffer, start, stop, self.profile)
        rest = bytes(pending.buffer[stop:])
        del self._uni[-stream_id - 1]
        if not isinstance(msg, m.REQUEST_MESSAGES):
            raise ProtocolViolation(f"{type(msg).__name__} cannot open a request stream")
        self._check_peer_request_id(msg.request_id)
        req = Request(msg.request_id, stream_id, type(msg), False)
        self._requests[req.request_id] = req
        self._by_stream[stream_id] = req.request_id
        req.include_properties = bool(getattr(msg, "params", {}).get("include_properties", 1))
        if self._too_many_ranges(msg):
            self.reject(
                req.request_id, self.profile.request_errors["INVALID_FILTER"], "too many ranges"
            )
        else:
            self._incoming_request(req, msg)
        if rest or end:
            self._receive_bidi(stream_id, rest, end)

    def _too_many_ranges(self, msg: Any) -> bool:
        """Range Filters beyond the MAX_FILTER_RANGES we announced (default 0, draft-19 on)."""
        params = getattr(msg, "params", {})
        ranges = 0
        for spec in self.profile.params:
            if spec.repeatable:  # the Range Filters: each value counts its ranges
                ranges += sum(len(getattr(v, "ranges", ())) for v in params.get(spec.name, ()))
        if not ranges:
            return False
        code = self.profile.setup_options.get("MAX_FILTER_RANGES")
        allowed = next((v for k, v in self.local_setup if k == code), 0)
        return not isinstance(allowed, int) or ranges > allowed

    def _check_peer_request_id(self, request_id: int) -> None:
        peer_parity = 1 if self.is_client else 0
        if request_id % 2 != peer_parity or request_id in self._peer_request_ids:
            raise InvalidRequestIdError(f"bad or duplicate request ID {request_id}")
        self._peer_request_ids.add(request_id)

    def _incoming_request(self, req: Request, msg: Any) -> None:
        namespace = getattr(msg, "track_namespace", None) or getattr(msg, "prefix", ())
        if namespace and namespace[0] in RESERVED_FIRST_FIELDS:
            # "." is reserved outright and ".session" holds no track we define (§3.2.1, §3.2.2)
            self.reject(
                req.request_id, self.profile.request_errors["DOES_NOT_EXIST"], "reserved namespace"
            )
            return
        if isinstance(msg, m.Subscribe):
            req.namespace, req.track_name = msg.track_namespace, msg.track_name
            req.forward = bool(msg.params.get("forward", 1))
            req.filter = msg.params.get("subscription_filter")
            self._events.append(
                ev.SubscribeRequested(
                    req.request_id, msg.track_namespace, msg.track_name, msg.params
                )
            )
        elif isinstance(msg, m.Publish):
            req.namespace, req.track_name = msg.track_namespace, msg.track_name
            req.track_alias = msg.track_alias
            self._bind_alias(msg.track_alias, req.request_id)
            self._events.append(
                ev.PublishRequested(
                    req.request_id,
                    msg.track_namespace,
                    msg.track_name,
                    msg.track_alias,
                    msg.params,
                    msg.track_properties,
                )
            )
            self._flush_pending_events_after_publish(req.request_id)
        elif isinstance(msg, m.Fetch):
            self._incoming_fetch(req, msg)
        elif isinstance(msg, m.TrackStatus):
            self._events.append(
                ev.TrackStatusRequested(
                    req.request_id, msg.track_namespace, msg.track_name, msg.params
                )
            )
        elif isinstance(msg, m.PublishNamespace):
            req.namespace = msg.track_namespace
            self._events.append(
                ev.PublishNamespaceRequested(req.request_id, msg.track_namespace, msg.params)
            )
        elif isinstance(msg, m.SubscribeNamespace):
            req.namespace = msg.prefix
            self._events.append(
                ev.SubscribeNamespaceRequested(req.request_id, msg.prefix, msg.params)
            )
        elif isinstance(msg, m.SubscribeTracks):
            req.namespace = msg.prefix
            self._events.append(ev.SubscribeTracksRequested(req.request_id, msg.prefix, msg.params))

    def _flush_pending_events_after_publish(self, request_id: int) -> None:
        # Objects that raced ahead of PUBLISH were queued by _bind_alias before the
        # PublishRequested event; move them behind it so the application sees the track first.
        objs = [
            e
            for e in self._events
            if isinstance(e, ev.ObjectReceived) and e.request_id == request_id
        ]
        if not objs:
            return
        rest: list[ev.Event] = [e for e in self._events if e not in objs]
        self._events.clear()
        self._events.extend(rest)
        self._events.extend(objs)

    def _incoming_fetch(self, req: Request, msg: m.Fetch) -> None:
        if msg.fetch_type == 1:
            if msg.end < msg.start and msg.end.object != 0:
                raise ProtocolViolation("FETCH end before start")
            req.namespace, req.track_name = msg.track_namespace, msg.track_name
            self._events.append(
                ev.FetchRequested(
                    req.request_id,
                    msg.track_namespace,
                    msg.track_name,
                    msg.start,
                    msg.end,
                    params=msg.params,
                )
            )
            return
        if msg.fetch_type == 0:  # a range relative to Largest Object (draft-20 on)
            self.reject(
                req.request_id, self.profile.request_errors["NOT_SUPPORTED"], "relative FETCH"
            )
            return
        if msg.fetch_type not in (2, 3):
            raise ProtocolViolation(f"unknown fetch type {msg.fetch_type}")
        sub = self._requests.get(msg.joining_request_id)
        if sub is None or sub.local or sub.kind is not m.Subscribe or not sub.answered:
            self.reject(
                req.request_id,
                self.profile.request_errors["INVALID_JOINING_REQUEST_ID"],
                "no such subscription",
            )
            return
        joining = sub.largest
        if joining is None:
            self.reject(req.request_id, self.profile.request_errors["INVALID_RANGE"], "no objects")
            return
        start_group = (
            max(joining.group - msg.joining_start, 0) if msg.fetch_type == 2 else msg.joining_start
        )
        req.namespace, req.track_name = sub.namespace, sub.track_name
        self._events.append(
            ev.FetchRequested(
                req.request_id,
                sub.namespace,
                sub.track_name,
                Location(start_group, 0),
                Location(joining.group, joining.object + 1),
                msg.fetch_type,
                msg.joining_request_id,
                msg.joining_start,
                msg.params,
            )
        )

    def _drain_request(self, req: Request) -> None:
        pos = 0
        while (found := split_message(req.buffer, pos)) is not None:
            mtype, start, stop = found
            msg = decode_message(mtype, req.buffer, start, stop, self.profile)
            pos = stop
            self._request_message(req, msg)
            if req.request_id not in self._requests:
                break
        del req.buffer[:pos]

    def _request_message(self, req: Request, msg: Any) -> None:
        if req.local and not req.answered:
            allowed = _FIRST_RESPONSES.get(req.kind, _DEFAULT_FIRST)
            if not isinstance(msg, allowed):
                raise ProtocolViolation(f"{type(msg).__name__} cannot answer {req.kind.__name__}")
            req.answered = True
            self._first_response(req, msg)
            return
        if req.local:
            allowed = _LATER_FROM_RESPONDER.get(req.kind, ())
        else:
            allowed = _LATER_FROM_REQUESTER.get(req.kind, _DEFAULT_LATER_FROM_REQUESTER)
        if not isinstance(msg, allowed):
            raise ProtocolViolation(
                f"{type(msg).__name__} not allowed on a {req.kind.__name__} stream"
            )
        self._later_message(req, msg)

    def _first_response(self, req: Request, msg: Any) -> None:
        rid = req.request_id
        if isinstance(msg, m.RequestErrorMsg):
            self._forget(req)
            self._events.append(
                ev.RequestRejected(rid, msg.error_code, msg.retry_interval, msg.reason)
            )
        elif isinstance(msg, m.SubscribeOk):
            req.track_alias = msg.track_alias
            self._bind_alias(msg.track_alias, rid)
            self._events.append(
                ev.SubscribeAccepted(rid, msg.track_alias, msg.params, msg.track_properties)
            )
            self._flush_pending_events_after_publish(rid)
        elif isinstance(msg, m.FetchOk):
            self._events.append(
                ev.FetchAccepted(
                    rid, bool(msg.end_of_track), msg.end_location, msg.params, msg.track_properties
                )
            )
        else:
            if req.kind is m.Publish:
                req.forward = bool(msg.params.get("forward", 1))
            self._events.append(ev.RequestAccepted(rid, msg.params, msg.track_properties))

    def _later_message(self, req: Request, msg: Any) -> None:
        rid = req.request_id
        if isinstance(msg, m.PublishDone):
            self._events.append(
                ev.PublishDoneReceived(rid, msg.status_code, msg.stream_count, msg.reason)
            )
        elif isinstance(msg, m.NamespaceMsg):
            self._events.append(ev.NamespaceAnnounced(rid, req.namespace + msg.suffix))
        elif isinstance(msg, m.NamespaceDone):
            self._events.append(ev.NamespaceWithdrawn(rid, req.namespace + msg.suffix))
        elif isinstance(msg, m.PublishBlocked):
            self._events.append(
                ev.PublishBlockedReceived(rid, req.namespace + msg.suffix, msg.track_name)
            )
        elif isinstance(msg, m.Goaway):
            self._events.append(ev.GoawayReceived(msg.new_session_uri, msg.timeout, rid))
        elif isinstance(msg, m.RequestUpdate):
            self._check_peer_request_id(msg.request_id)
            if "forward" in msg.params:
                req.forward = bool(msg.params["forward"])
            flt = msg.params.get("subscription_filter")
            if flt is not None:
                self._apply_filter(req, flt, req.largest)
            self._write(req.stream_id, encode_message(m.RequestOk({}, ()), self.profile))
            self._events.append(ev.RequestUpdated(rid, msg.params))
        elif isinstance(msg, m.RequestOk):
            self._events.append(ev.RequestAccepted(rid, msg.params, msg.track_properties))
        elif isinstance(msg, m.PublishStateNotify):
            self._events.append(ev.PublishStateNotified(rid, msg.params))
        elif isinstance(msg, m.RequestErrorMsg):
            self._events.append(
                ev.RequestRejected(rid, msg.error_code, msg.retry_interval, msg.reason)
            )


def namespace_matches(prefix: Namespace, namespace: Namespace) -> bool:
    """Namespace Prefix Matching (§8.5): every field of `prefix` equals `namespace`'s."""
    return len(prefix) <= len(namespace) and namespace[: len(prefix)] == prefix


def in_fetch_range(loc: Location, start: Location, end: Location) -> bool:
    """Whether `loc` is in a FETCH range (§9.14.1): End is last + 1; Object 0 = whole group."""
    if loc < start:
        return False
    return loc.group <= end.group if end.object == 0 else loc < end


def fetch_ok_end(end: Location, largest: Location, objects: Sequence[ObjectData]) -> Location:
    """FETCH_OK End Location (§9.15) of a response carrying `objects` (ascending).

    A whole-group end ({g, 0}) is answered with the last object sent plus one: draft-20's
    inclusive End Location has no whole-group form, and moq-rs reads {g, 0} as empty.
    """
    clipped = clip_fetch_end(end, largest)
    if clipped.object == 0 and objects:
        last = objects[-1]
        return Location(last.group_id, last.object_id + 1)
    return clipped


def clip_fetch_end(end: Location, largest: Location) -> Location:
    """FETCH_OK End Location (§9.15): the request's, or {Largest.Group, Largest.Object+1}."""
    past_largest = Location(largest.group, largest.object + 1)
    if end.object == 0:
        return past_largest if largest.group < end.group else end
    return past_largest if past_largest < end else end
