"""Real loopback UDP: a subscriber holding 300 idle PUBLISH streams still gets new objects.

SUBSCRIBE_TRACKS offers each track as a PUBLISH request on its own bidirectional stream for
the track's lifetime (draft-18 §9.5); `moqmls.moqt.quic` runs every connection, client and
server side, on `ParkingQuicConnection`, which must neither lose nor stall what the few
active streams carry.
"""

from __future__ import annotations

import asyncio

from moqmls.moqt.client import MoQTObject, ObjectStream, connect
from moqmls.moqt.quic import certificate_pem
from moqmls.moqt.quic_streams import ParkingQuicConnection
from moqmls.moqt.relay import Relay, RelayConfig

PUBLISHERS = 3
TRACKS_PER_PUBLISHER = 100  # 300 request streams towards the subscriber; each publisher < 128


async def _collect(stream: ObjectStream, count: int, wait: float) -> list[MoQTObject]:
    got: list[MoQTObject] = []
    async with asyncio.timeout(wait):
        while len(got) < count:
            got.append(await stream.get())
    return got


async def test_objects_on_a_few_of_300_idle_tracks_arrive_over_udp() -> None:
    relay = Relay(RelayConfig())
    await relay.start("127.0.0.1", 0)
    url = f"moqt://127.0.0.1:{relay.port}"
    trust = certificate_pem(relay.certificate)
    ns = ("big-group", "media")
    publishers = [await connect(url, verify=trust) for _ in range(PUBLISHERS)]
    subscriber = await connect(url, verify=trust, max_streams=512)
    try:
        stream = await subscriber.subscribe_tracks(ns)
        tracks = []
        for p, client in enumerate(publishers):
            for t in range(TRACKS_PER_PUBLISHER):
                track = await client.publish(ns, f"member-{p}-{t}")
                await track.write(0, 0, b"first", end_of_group=True)
                tracks.append(track)
        first = await _collect(stream, len(tracks), 30.0)
        assert len({o.track_name for o in first}) == len(tracks)
        protocol = subscriber.protocol
        assert protocol is not None
        quic = protocol._quic
        assert isinstance(quic, ParkingQuicConnection)
        assert len(quic._streams) >= len(tracks)  # every PUBLISH stream is still open

        chosen = [tracks[i] for i in (7, 150, 299)]
        payloads: dict[bytes, bytes] = {}
        for i, track in enumerate(chosen):
            payloads[track.track_name] = bytes([i]) * 3000
            await track.write(1, 0, payloads[track.track_name], end_of_group=True)
        later = await _collect(stream, len(chosen), 10.0)
        assert {o.track_name: o.payload for o in later} == payloads
        assert all(o.location.group == 1 for o in later)
        assert len(quic._streams_queue) < 20  # the idle PUBLISH streams are parked
    finally:
        for c in [*publishers, subscriber]:
            await c.close()
        await relay.close(grace=0.05)


async def test_the_relay_side_runs_parking_connections_too() -> None:
    relay = Relay(RelayConfig())
    await relay.start("127.0.0.1", 0)
    seen: list[object] = []
    try:
        client = await connect(
            f"moqt://127.0.0.1:{relay.port}", verify=certificate_pem(relay.certificate)
        )
        seen.extend(type(peer.proto._quic) for peer in relay.peers)
        await client.close()
    finally:
        await relay.close(grace=0.05)
    assert seen == [ParkingQuicConnection]
