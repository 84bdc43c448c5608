"""MoQT control messages as values (draft-ietf-moq-transport-18 §9).

These dataclasses are version-neutral: which fields go on the wire, in which order and
with which type code is the business of the draft profile (`moqmls.moqt.profile`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moqmls.moqt.codec import Location, Namespace, Properties

Params = dict[str, Any]


@dataclass(frozen=True)
class Redirect:
    """Redirect structure of REQUEST_ERROR (§9.8.1)."""

    connect_uri: bytes = b""
    track_namespace: Namespace = ()
    track_name: bytes = b""


@dataclass(frozen=True)
class Setup:
    """SETUP (§9.3): Setup Options as Key-Value-Pairs."""

    options: Properties = ()


@dataclass(frozen=True)
class Goaway:
    """GOAWAY (§9.4)."""

    new_session_uri: bytes = b""
    timeout: int = 0
    request_id: int | None = None


@dataclass(frozen=True)
class Subscribe:
    """SUBSCRIBE (§9.9)."""

    request_id: int = 0
    track_namespace: Namespace = ()
    track_name: bytes = b""
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribeOk:
    """SUBSCRIBE_OK (§9.10)."""

    track_alias: int = 0
    params: Params = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class RequestUpdate:
    """REQUEST_UPDATE (§9.11)."""

    request_id: int = 0
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class Publish:
    """PUBLISH (§9.12)."""

    request_id: int = 0
    track_namespace: Namespace = ()
    track_name: bytes = b""
    track_alias: int = 0
    params: Params = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class PublishOk:
    """PUBLISH_OK (type 0x1E in the -18 table; same body as REQUEST_OK)."""

    params: Params = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class PublishStateNotify:
    """PUBLISH_STATE_NOTIFY (draft-20 on): the publisher's changed subscription parameters."""

    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class PublishDone:
    """PUBLISH_DONE (§9.13)."""

    status_code: int = 0
    stream_count: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Fetch:
    """FETCH (§9.14): standalone (type 1) or joining (types 2, 3)."""

    request_id: int = 0
    fetch_type: int = 1
    track_namespace: Namespace = ()
    track_name: bytes = b""
    start: Location = Location(0, 0)
    end: Location = Location(0, 0)
    joining_request_id: int = 0
    joining_start: int = 0
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class FetchOk:
    """FETCH_OK (§9.15)."""

    end_of_track: int = 0
    end_location: Location = Location(0, 0)
    params: Params = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class TrackStatus:
    """TRACK_STATUS (§9.16)."""

    request_id: int = 0
    track_namespace: Namespace = ()
    track_name: bytes = b""
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class PublishNamespace:
    """PUBLISH_NAMESPACE (§9.17)."""

    request_id: int = 0
    track_namespace: Namespace = ()
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class NamespaceMsg:
    """NAMESPACE (§9.18): a namespace suffix under a SUBSCRIBE_NAMESPACE prefix."""

    suffix: Namespace = ()


@dataclass(frozen=True)
class NamespaceDone:
    """NAMESPACE_DONE (§9.19)."""

    suffix: Namespace = ()


@dataclass(frozen=True)
class SubscribeNamespace:
    """SUBSCRIBE_NAMESPACE (§9.20)."""

    request_id: int = 0
    prefix: Namespace = ()
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class SubscribeTracks:
    """SUBSCRIBE_TRACKS (§9.21)."""

    request_id: int = 0
    prefix: Namespace = ()
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class PublishBlocked:
    """PUBLISH_BLOCKED (§9.22)."""

    suffix: Namespace = ()
    track_name: bytes = b""


@dataclass(frozen=True)
class RequestOk:
    """REQUEST_OK (§9.7)."""

    params: Params = field(default_factory=dict)
    track_properties: Properties = ()


@dataclass(frozen=True)
class RequestErrorMsg:
    """REQUEST_ERROR (§9.8)."""

    error_code: int = 0
    retry_interval: int = 0
    reason: str = ""
    redirect: Redirect | None = None


#: Messages that open a request stream (§3.3).
REQUEST_MESSAGES = (
    Subscribe,
    Publish,
    Fetch,
    TrackStatus,
    PublishNamespace,
    SubscribeNamespace,
    SubscribeTracks,
)
