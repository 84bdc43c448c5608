"""MoQ Transport, drafts -18 and -22 (draft-ietf-moq-transport-18; the -19 to -22 changes
as ``moq-transport-deltas-19-22.md`` lists them): sans-I/O core, aioquic adapter, client
API and caching relay.

The draft is negotiated by ALPN (``moqt-18``, ``moqt-22``; `PROFILES`, `DRAFT_18`,
`DRAFT_22`): clients offer both by default (``connect(..., alpns=...)`` sets the order);
the relay accepts both (``RelayConfig.alpns``, ``moqmls relay --alpn``) and bridges
sessions of either draft. A server that accepts none of the offered drafts is reported
as `VersionNegotiationError`.

Layout: ``codec``/``messages``/``objects`` (wire formats, data-driven from the per-draft
tables in ``profile`` and ``profile22``), ``session`` (the sans-I/O state machine),
``quic`` (aioquic adapter), ``client`` (the application API), ``cache`` and ``relay``.

Usage::

    from moqmls.moqt import Location, connect

    client = await connect("moqt://127.0.0.1:4443", verify=False)

    # publish a track (PUBLISH; PUBLISH_NAMESPACE where the relay lacks PUBLISH) and
    # write objects: group, object id, payload, properties; end_of_group FINs the stream
    kp = await client.publish(("group-1", "keypackage"), "alice")
    await kp.write(0, 0, b"<KeyPackage>", {0x38: 1}, end_of_group=True)

    # every track under a namespace prefix (SUBSCRIBE_TRACKS, or the SUBSCRIBE_NAMESPACE
    # fallback), as an async iterator of MoQTObject; history=True also FETCHes what each
    # track published before we subscribed
    stream = await client.subscribe_tracks(("group-1", "keypackage"), history=True)
    # or fill in one range by hand; duplicates across SUBSCRIBE and FETCH are dropped
    await stream.fetch(("group-1", "keypackage"), "bob", Location(0, 0), Location(0, 0))
    async for obj in stream:
        print(obj.namespace, obj.track_name, obj.group_id, obj.object_id,
              obj.properties, obj.payload)

    # an absolute range of one track (End Location = last object + 1, or (g, 0) = group g)
    commits = await client.fetch(("group-1", "commit"), "bob", (5, 0), (5, 0))
    await client.close()
"""

from moqmls.moqt.cache import RetentionRule
from moqmls.moqt.client import MoQTClient, MoQTObject, ObjectStream, TrackPublisher, connect
from moqmls.moqt.codec import Location
from moqmls.moqt.errors import (
    MoQTError,
    ProtocolViolation,
    RequestCancelledError,
    RequestError,
    SessionClosedError,
    VersionNegotiationError,
)
from moqmls.moqt.profile import DRAFT_18, PROFILES, Profile
from moqmls.moqt.profile22 import DRAFT_22
from moqmls.moqt.relay import Relay, RelayConfig
from moqmls.moqt.session import MoQTSession

__all__ = [
    "DRAFT_18",
    "DRAFT_22",
    "PROFILES",
    "Location",
    "MoQTClient",
    "MoQTError",
    "MoQTObject",
    "MoQTSession",
    "ObjectStream",
    "Profile",
    "ProtocolViolation",
    "Relay",
    "RelayConfig",
    "RequestCancelledError",
    "RequestError",
    "RetentionRule",
    "SessionClosedError",
    "TrackPublisher",
    "VersionNegotiationError",
    "connect",
]
