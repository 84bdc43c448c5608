"""Events emitted by the sans-I/O MoQT session (draft-ietf-moq-transport-18 §3, §5, §9, §10).

Each event is a small frozen dataclass; request events carry the Request ID (§9.1) that
the application uses to answer through `MoQTSession`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moqmls.moqt.codec import Location, Namespace, Properties


@dataclass(frozen=True)
class Event:
    """Base of all session events."""


@dataclass(frozen=True)
class SessionReady(Event):
    """The peer's SETUP arrived (§3.3)."""

    options: Properties


@dataclass(frozen=True)
class SessionTerminated(Event):
    """The session ended: by us on a protocol error, or by the transport."""

    code: int
    reason: str
    by_peer: bool = False


@dataclass(frozen=True)
class GoawayReceived(Event):
    """GOAWAY (§9.4) on the control stream or on a request stream (`request_id`)."""

    new_session_uri: bytes
    timeout: int
    request_id: int | None = None


@dataclass(frozen=True)
class SubscribeRequested(Event):
    """The peer sent SUBSCRIBE (§9.9)."""

    request_id: int
    namespace: Namespace
    track_name: bytes
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishRequested(Event):
    """The peer sent PUBLISH (§9.12); objects may already flow under `track_alias`."""

    request_id: int
    namespace: Namespace
    track_name: bytes
    track_alias: int
    params: dict[str, Any] = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class FetchRequested(Event):
    """The peer sent FETCH (§9.14); joining fetches are resolved to their track here."""

    request_id: int
    namespace: Namespace
    track_name: bytes
    start: Location
    end: Location
    fetch_type: int = 1
    joining_request_id: int | None = None
    joining_start: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackStatusRequested(Event):
    """The peer sent TRACK_STATUS (§9.16)."""

    request_id: int
    namespace: Namespace
    track_name: bytes
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishNamespaceRequested(Event):
    """The peer sent PUBLISH_NAMESPACE (§9.17)."""

    request_id: int
    namespace: Namespace
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribeNamespaceRequested(Event):
    """The peer sent SUBSCRIBE_NAMESPACE (§9.20)."""

    request_id: int
    prefix: Namespace
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribeTracksRequested(Event):
    """The peer sent SUBSCRIBE_TRACKS (§9.21)."""

    request_id: int
    prefix: Namespace
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribeAccepted(Event):
    """SUBSCRIBE_OK (§9.10) answered our SUBSCRIBE."""

    request_id: int
    track_alias: int
    params: dict[str, Any] = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class FetchAccepted(Event):
    """FETCH_OK (§9.15) answered our FETCH."""

    request_id: int
    end_of_track: bool
    end_location: Location
    params: dict[str, Any] = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class RequestAccepted(Event):
    """REQUEST_OK (§9.7) or PUBLISH_OK answered one of our requests or updates."""

    request_id: int
    params: dict[str, Any] = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class RequestRejected(Event):
    """REQUEST_ERROR (§9.8) answered one of our requests."""

    request_id: int
    error_code: int
    retry_interval: int
    reason: str


@dataclass(frozen=True)
class RequestUpdated(Event):
    """The peer sent REQUEST_UPDATE (§9.11) for a request; already answered REQUEST_OK."""

    request_id: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestClosed(Event):
    """The peer closed (FIN, `error_code` None) or reset a request stream (§3.4.2)."""

    request_id: int
    error_code: int | None = None


@dataclass(frozen=True)
class NamespaceAnnounced(Event):
    """NAMESPACE (§9.18) under our SUBSCRIBE_NAMESPACE; `namespace` is prefix + suffix."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True)
class NamespaceWithdrawn(Event):
    """NAMESPACE_DONE (§9.19) under our SUBSCRIBE_NAMESPACE."""

    request_id: int
    namespace: Namespace


@dataclass(frozen=True)
class PublishBlockedReceived(Event):
    """PUBLISH_BLOCKED (§9.22) under our SUBSCRIBE_TRACKS."""

    request_id: int
    namespace: Namespace
    track_name: bytes


@dataclass(frozen=True)
class PublishDoneReceived(Event):
    """PUBLISH_DONE (§9.13) ended a subscription."""

    request_id: int
    status_code: int
    stream_count: int
    reason: str


@dataclass(frozen=True)
class ObjectReceived(Event):
    """One object of a subscription or of a fetch (§10.2)."""

    request_id: int
    group_id: int
    object_id: int
    payload: bytes
    properties: Properties = ()
    subgroup_id: int | None = 0
    priority: int | None = None
    status: int = 0
    via_fetch: bool = False


@dataclass(frozen=True)
class PublishStateNotified(Event):
    """PUBLISH_STATE_NOTIFY (draft-20 on): the publisher's changed subscription parameters."""

    request_id: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubgroupFinished(Event):
    """A subgroup stream of a subscription ended with FIN: all its objects arrived."""

    request_id: int
    group_id: int
    subgroup_id: int
    end_of_group: bool = False


@dataclass(frozen=True)
class FetchFinished(Event):
    """The data stream of one of our fetches ended with FIN (§9.14)."""

    request_id: int
