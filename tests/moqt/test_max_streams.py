"""`max_streams`: a subscriber may let the relay open more than aioquic's default 128 streams.

SUBSCRIBE_TRACKS offers every track under the prefix as a PUBLISH request on its own
bidirectional stream for the track's lifetime (draft-18 §9.5), so a member of a large group
needs a higher limit than QUIC's initial_max_streams_bidi of 128 (RFC 9000 §4.6).
"""

from __future__ import annotations

import asyncio

from moqmls.moqt.client import connect
from moqmls.moqt.quic import certificate_pem
from moqmls.moqt.relay import Relay, RelayConfig

TRACKS_PER_PUBLISHER = 50
PUBLISHERS = 3  # 150 tracks: more than 128, and each publisher stays under the relay's limit


async def _tracks_received(max_streams: int | None, wait: float) -> set[bytes]:
    relay = Relay(RelayConfig())
    await relay.start("127.0.0.1", 0)
    url = f"moqt://127.0.0.1:{relay.port}"
    trust = certificate_pem(relay.certificate)
    ns = ("big-group", "keypackage")
    publishers = [await connect(url, verify=trust) for _ in range(PUBLISHERS)]
    subscriber = await connect(url, verify=trust, max_streams=max_streams)
    try:
        stream = await subscriber.subscribe_tracks(ns)
        for p, client in enumerate(publishers):
            for t in range(TRACKS_PER_PUBLISHER):
                track = await client.publish(ns, f"member-{p}-{t}")
                await track.write(0, 0, b"kp", end_of_group=True)
        names: set[bytes] = set()
        deadline = asyncio.get_running_loop().time() + wait
        while len(names) < PUBLISHERS * TRACKS_PER_PUBLISHER:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                names.add((await stream.get(remaining)).track_name)
            except TimeoutError:
                break
        return names
    finally:
        for c in [*publishers, subscriber]:
            await c.close()
        await relay.close(grace=0.05)


async def test_a_raised_limit_receives_every_track() -> None:
    names = await _tracks_received(max_streams=512, wait=20.0)
    assert len(names) == PUBLISHERS * TRACKS_PER_PUBLISHER
