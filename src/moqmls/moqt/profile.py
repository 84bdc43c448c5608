"""Per-draft MoQT code points and wire layouts, chosen by ALPN (draft-ietf-moq-transport-18).

Everything that differs between drafts lives in one `Profile` row: message type codes and
layouts (§9), parameter codes, kinds and scopes (§9.2, §13.5), setup options (§9.3.1),
error codes (§13.8) and data-stream type bits (§10). The session never branches on a
version; a later draft is a new `Profile` value registered in `PROFILES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from moqmls.moqt import messages as m
from moqmls.moqt.codec import (
    BYTES,
    LOCATION,
    NAMESPACE,
    PARAMS,
    REASON,
    TRACK_PROPERTIES,
    U8,
    URI,
    VI,
    Field,
    Kind,
    Location,
    MessageSpec,
    Reader,
)
from moqmls.moqt.errors import EncodeError


@dataclass(frozen=True)
class ParamSpec:
    """A Message Parameter: code, value kind, messages allowed in, allowed values."""

    name: str
    code: int
    kind: str | Kind
    scope: frozenset[str] = frozenset()
    allowed: frozenset[int] | None = None
    #: May appear several times in one message; the value is then a tuple.
    repeatable: bool = False


@dataclass(frozen=True)
class DataStreamBits:
    """Type codes and flag bits of data streams and datagrams (§10)."""

    fetch_header: int = 0x05
    padding_stream: int = 0x132B3E28
    subgroup_base: int = 0x10
    subgroup_valid_mask: int = 0x90  # bits that must be 0b0XX1XXXX
    subgroup_properties: int = 0x01
    subgroup_id_mode_mask: int = 0x06
    subgroup_end_of_group: int = 0x08
    subgroup_default_priority: int = 0x20
    subgroup_first_object: int = 0x40
    fetch_end_nonexistent: int = 0x8C
    fetch_end_unknown: int = 0x10C
    #: End of Timed-Out Range (new in -20); None: the draft has no such marker.
    fetch_end_timed_out: int | None = None
    status_normal: int = 0x0
    status_end_of_group: int = 0x3
    status_end_of_track: int = 0x4


class _RedirectKind:
    def encode(self, value: Any, profile: Profile, message: str) -> bytes:
        return (
            URI.encode(value.connect_uri, profile, message)
            + NAMESPACE.encode(value.track_namespace, profile, message)
            + BYTES.encode(value.track_name, profile, message)
        )

    def decode(self, r: Reader, profile: Profile, message: str) -> Any:
        return m.Redirect(
            URI.decode(r, profile, message),
            NAMESPACE.decode(r, profile, message),
            BYTES.decode(r, profile, message),
        )


@dataclass(frozen=True)
class Profile:
    """All code points of one MoQT draft."""

    alpn: str
    messages: tuple[MessageSpec, ...]
    params: tuple[ParamSpec, ...]
    setup_type: int
    setup_options: dict[str, int]
    session_errors: dict[str, int]
    request_errors: dict[str, int]
    publish_done: dict[str, int]
    reset_codes: dict[str, int]
    token_alias_types: dict[str, int]
    data: DataStreamBits = DataStreamBits()
    #: The FILL_PARAMETERS value asking for the range [start, end) (draft-18 FETCH
    #: semantics) on a subscription's fill stream; None: the draft has no FILL_PARAMETERS.
    fill_parameters: Callable[[Location, Location], dict[str, Any]] | None = None
    #: Whether a requester's FIN cancels its request (-18 §8.1); from -19 on a FIN only
    #: half-closes ("Graceful Request Stream Closure") and cancelling needs a reset.
    fin_cancels_request: bool = True
    spec_by_code: dict[int, MessageSpec] = field(init=False, repr=False)
    spec_by_cls: dict[type[Any], MessageSpec] = field(init=False, repr=False)
    param_by_code: dict[int, ParamSpec] = field(init=False, repr=False)
    param_by_name: dict[str, ParamSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec_by_code", {s.code: s for s in self.messages})
        by_cls: dict[type[Any], MessageSpec] = {}
        for s in self.messages:
            by_cls.setdefault(s.cls, s)
        object.__setattr__(self, "spec_by_cls", by_cls)
        object.__setattr__(self, "param_by_code", {p.code: p for p in self.params})
        object.__setattr__(self, "param_by_name", {p.name: p for p in self.params})

    def spec_for(self, message: Any) -> MessageSpec:
        """The layout used to send `message` in this draft."""
        spec = self.spec_by_cls.get(type(message))
        if spec is None:
            raise EncodeError(f"{type(message).__name__} does not exist in {self.alpn}")
        return spec


def _is(field_name: str, values: Iterable[int]) -> Callable[[dict[str, Any]], bool]:
    allowed = frozenset(values)
    return lambda v: v.get(field_name) in allowed


def _spec(code: int, cls: type[Any], name: str, *layout: Field) -> MessageSpec:
    return MessageSpec(code, cls, tuple(layout), name)


_REDIRECT: Kind = _RedirectKind()
_SETUP_KVP = TRACK_PROPERTIES

_D18_MESSAGES = (
    _spec(0x2F00, m.Setup, "SETUP", Field("options", _SETUP_KVP)),
    _spec(
        0x10,
        m.Goaway,
        "GOAWAY",
        Field("new_session_uri", URI),
        Field("timeout", VI),
        Field("request_id", VI, optional_tail=True),
    ),
    _spec(
        0x3,
        m.Subscribe,
        "SUBSCRIBE",
        Field("request_id", VI),
        Field("track_namespace", NAMESPACE),
        Field("track_name", BYTES),
        Field("params", PARAMS),
    ),
    _spec(
        0x4,
        m.SubscribeOk,
        "SUBSCRIBE_OK",
        Field("track_alias", VI),
        Field("params", PARAMS),
        Field("track_properties", TRACK_PROPERTIES),
    ),
    _spec(
        0x1D,
        m.Publish,
        "PUBLISH",
        Field("request_id", VI),
        Field("track_namespace", NAMESPACE),
        Field("track_name", BYTES),
        Field("track_alias", VI),
        Field("params", PARAMS),
        Field("track_properties", TRACK_PROPERTIES),
    ),
    _spec(
        0x1E,
        m.PublishOk,
        "PUBLISH_OK",
        Field("params", PARAMS),
        Field("track_properties", TRACK_PROPERTIES),
    ),
    _spec(
        0xB,
        m.PublishDone,
        "PUBLISH_DONE",
        Field("status_code", VI),
        Field("stream_count", VI),
        Field("reason", REASON),
    ),
    _spec(
        0x16,
        m.Fetch,
        "FETCH",
        Field("request_id", VI),
        Field("fetch_type", VI),
        Field("track_namespace", NAMESPACE, when=_is("fetch_type", [1])),
        Field("track_name", BYTES, when=_is("fetch_type", [1])),
        Field("start", LOCATION, when=_is("fetch_type", [1])),
        Field("end", LOCATION, when=_is("fetch_type", [1])),
        Field("joining_request_id", VI, when=_is("fetch_type", [2, 3])),
        Field("joining_start", VI, when=_is("fetch_type", [2, 3])),
        Field("params", PARAMS),
    ),
    _spec(
        0x18,
        m.FetchOk,
        "FETCH_OK",
        Field("end_of_track", U8),
        Field("end_location", LOCATION),
        Field("params", PARAMS),
        Field("track_properties", TRACK_PROPERTIES),
    ),
    _spec(
        0xD,
        m.TrackStatus,
        "TRACK_STATUS",
        Field("request_id", VI),
        Field("track_namespace", NAMESPACE),
        Field("track_name", BYTES),
        Field("params", PARAMS),
    ),
    _spec(
        0x6,
        m.PublishNamespace,
        "PUBLISH_NAMESPACE",
        Field("request_id", VI),
        Field("track_namespace", NAMESPACE),
        Field("params", PARAMS),
    ),
    _spec(0x8, m.NamespaceMsg, "NAMESPACE", Field("suffix", NAMESPACE)),
    _spec(0xE, m.NamespaceDone, "NAMESPACE_DONE", Field("suffix", NAMESPACE)),
    _spec(
        0x50,
        m.SubscribeNamespace,
        "SUBSCRIBE_NAMESPACE",
        Field("request_id", VI),
        Field("prefix", NAMESPACE),
        Field("params", PARAMS),
    ),
    _spec(
        0x51,
        m.SubscribeTracks,
        "SUBSCRIBE_TRACKS",
        Field("request_id", VI),
        Field("prefix", NAMESPACE),
        Field("params", PARAMS),
    ),
    _spec(
        0xF,
        m.PublishBlocked,
        "PUBLISH_BLOCKED",
        Field("suffix", NAMESPACE),
        Field("track_name", BYTES),
    ),
    _spec(
        0x2,
        m.RequestUpdate,
        "REQUEST_UPDATE",
        Field("request_id", VI),
        Field("params", PARAMS),
    ),
    _spec(
        0x7,
        m.RequestOk,
        "REQUEST_OK",
        Field("params", PARAMS),
        Field("track_properties", TRACK_PROPERTIES),
    ),
    _spec(
        0x5,
        m.RequestErrorMsg,
        "REQUEST_ERROR",
        Field("error_code", VI),
        Field("retry_interval", VI),
        Field("reason", REASON),
        Field("redirect", _REDIRECT, when=_is("error_code", [0x34])),
    ),
)


def _scope(*names: str) -> frozenset[str]:
    return frozenset(names)


_SUB_UPD = ("SUBSCRIBE", "PUBLISH_OK", "REQUEST_UPDATE", "REQUEST_OK")
_D18_PARAMS = (
    ParamSpec("object_delivery_timeout", 0x02, "vi", _scope(*_SUB_UPD)),
    ParamSpec(
        "authorization_token",
        0x03,
        "bytes",
        _scope(
            "PUBLISH",
            "SUBSCRIBE",
            "REQUEST_UPDATE",
            "SUBSCRIBE_NAMESPACE",
            "SUBSCRIBE_TRACKS",
            "PUBLISH_NAMESPACE",
            "TRACK_STATUS",
            "FETCH",
        ),
    ),
    ParamSpec("rendezvous_timeout", 0x04, "vi", _scope("SUBSCRIBE")),
    ParamSpec("subgroup_delivery_timeout", 0x06, "vi", _scope(*_SUB_UPD)),
    ParamSpec(
        "expires",
        0x08,
        "vi",
        _scope("SUBSCRIBE_OK", "PUBLISH", "PUBLISH_OK", "REQUEST_OK", "REQUEST_UPDATE"),
    ),
    ParamSpec(
        "largest_object",
        0x09,
        "loc",
        _scope("SUBSCRIBE_OK", "PUBLISH", "REQUEST_OK", "PUBLISH_OK"),
    ),
    ParamSpec("fill_timeout", 0x0A, "vi", _scope("FETCH")),
    ParamSpec(
        "forward",
        0x10,
        "u8",
        _scope(
            "SUBSCRIBE", "REQUEST_UPDATE", "PUBLISH", "PUBLISH_OK", "REQUEST_OK", "SUBSCRIBE_TRACKS"
        ),
        frozenset({0, 1}),
    ),
    ParamSpec(
        "subscriber_priority",
        0x20,
        "u8",
        _scope("SUBSCRIBE", "FETCH", "REQUEST_UPDATE", "PUBLISH_OK", "REQUEST_OK"),
    ),
    ParamSpec(
        "subscription_filter",
        0x21,
        "filter",
        _scope("SUBSCRIBE", "PUBLISH_OK", "REQUEST_OK", "REQUEST_UPDATE"),
    ),
    ParamSpec(
        "group_order",
        0x22,
        "u8",
        _scope("SUBSCRIBE", "PUBLISH_OK", "REQUEST_OK", "FETCH"),
        frozenset({1, 2}),
    ),
    ParamSpec(
        "new_group_request",
        0x32,
        "vi",
        _scope("PUBLISH_OK", "REQUEST_OK", "SUBSCRIBE", "REQUEST_UPDATE"),
    ),
    ParamSpec("track_namespace_prefix", 0x34, "ns", _scope("REQUEST_UPDATE")),
)

DRAFT_18 = Profile(
    alpn="moqt-18",
    messages=_D18_MESSAGES,
    params=_D18_PARAMS,
    setup_type=0x2F00,
    setup_options={
        "PATH": 0x01,
        "AUTHORIZATION_TOKEN": 0x03,
        "MAX_AUTH_TOKEN_CACHE_SIZE": 0x04,
        "AUTHORITY": 0x05,
        "MOQT_IMPLEMENTATION": 0x07,
    },
    session_errors={
        "NO_ERROR": 0x0,
        "INTERNAL_ERROR": 0x1,
        "UNAUTHORIZED": 0x2,
        "PROTOCOL_VIOLATION": 0x3,
        "INVALID_REQUEST_ID": 0x4,
        "DUPLICATE_TRACK_ALIAS": 0x5,
        "KEY_VALUE_FORMATTING_ERROR": 0x6,
        "INVALID_PATH": 0x8,
        "MALFORMED_PATH": 0x9,
        "GOAWAY_TIMEOUT": 0x10,
        "CONTROL_MESSAGE_TIMEOUT": 0x11,
        "DATA_STREAM_TIMEOUT": 0x12,
        "VERSION_NEGOTIATION_FAILED": 0x15,
        "MALFORMED_AUTH_TOKEN": 0x16,
    },
    request_errors={
        "INTERNAL_ERROR": 0x0,
        "UNAUTHORIZED": 0x1,
        "TIMEOUT": 0x2,
        "NOT_SUPPORTED": 0x3,
        "MALFORMED_AUTH_TOKEN": 0x4,
        "EXPIRED_AUTH_TOKEN": 0x5,
        "GOING_AWAY": 0x6,
        "EXCESSIVE_LOAD": 0x9,
        "DOES_NOT_EXIST": 0x10,
        "INVALID_RANGE": 0x11,
        "MALFORMED_TRACK": 0x12,
        "DUPLICATE_SUBSCRIPTION": 0x19,
        "UNINTERESTED": 0x20,
        "PREFIX_OVERLAP": 0x30,
        "NAMESPACE_TOO_LARGE": 0x31,
        "INVALID_JOINING_REQUEST_ID": 0x32,
        "UNSUPPORTED_EXTENSION": 0x33,
        "REDIRECT": 0x34,
    },
    publish_done={
        "INTERNAL_ERROR": 0x0,
        "UNAUTHORIZED": 0x1,
        "TRACK_ENDED": 0x2,
        "SUBSCRIPTION_ENDED": 0x3,
        "GOING_AWAY": 0x4,
        "TOO_FAR_BEHIND": 0x5,
        "EXPIRED": 0x6,
        "UPDATE_FAILED": 0x8,
        "EXCESSIVE_LOAD": 0x9,
        "MALFORMED_TRACK": 0x12,
    },
    reset_codes={
        "INTERNAL_ERROR": 0x0,
        "CANCELLED": 0x1,
        "DELIVERY_TIMEOUT": 0x2,
        "SESSION_CLOSED": 0x3,
        "GOING_AWAY": 0x4,
        "TOO_FAR_BEHIND": 0x5,
        "UNKNOWN_OBJECT_STATUS": 0x6,
        "EXPIRED_AUTH_TOKEN": 0x7,
        "EXCESSIVE_LOAD": 0x9,
        "MALFORMED_TRACK": 0x12,
    },
    token_alias_types={"DELETE": 0x0, "REGISTER": 0x1, "USE_ALIAS": 0x2, "USE_VALUE": 0x3},
)

#: Profiles by ALPN, in our order of preference; `profile22` adds ``moqt-22``.
PROFILES: dict[str, Profile] = {DRAFT_18.alpn: DRAFT_18}


def profile_for_alpn(alpn: str | None) -> Profile:
    """The profile negotiated by ALPN; raises `VersionNegotiationError` when unknown."""
    from moqmls.moqt.errors import VersionNegotiationError

    if alpn is None or alpn not in PROFILES:
        raise VersionNegotiationError(f"unsupported ALPN {alpn!r}")
    return PROFILES[alpn]


import moqmls.moqt.profile22  # noqa: E402, F401  (registers moqt-22 in PROFILES)
