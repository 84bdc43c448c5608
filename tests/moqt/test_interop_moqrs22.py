"""Interop with moq-rs (PyPI `moq-rs`, `import moq`, an independent Rust MoQT stack) at
draft-22 over raw QUIC, both directions, as `test_interop_moqrs` does at draft-18.

(a) moq-rs clients publish and subscribe through our relay, which prefers ``moqt-22``
    (moq-rs offers every draft it speaks; the server picks). A -18 client of ours on the
    same relay exchanges objects with them: the relay bridges the two drafts.
(b) Our clients, offering only ``moqt-22``, publish, subscribe and FETCH through
    `moq.Server`. moq-rs supports neither PUBLISH nor SUBSCRIBE_TRACKS and keeps one
    publisher per namespace, so each sender has its own namespace and the subscriber
    uses the SUBSCRIBE_NAMESPACE fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from moqmls.moqt.client import MoQTClient, connect
from moqmls.moqt.profile22 import LocationFilter
from moqmls.moqt.relay import Relay, RelayConfig

from .test_interop_moqrs import KP, read_payloads, rs_client

moq = pytest.importorskip("moq")

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    r = Relay(RelayConfig(alpns=("moqt-22", "moqt-18")))
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


def _alpns_of(relay: Relay) -> list[str]:
    return sorted(p.session.profile.alpn for p in relay.peers if p.alive())


async def test_moqrs_clients_through_our_relay_at_draft22(relay: Relay) -> None:
    url = f"moqt://127.0.0.1:{relay.port}"
    ours18 = await connect(url, verify=False, alpns=("moqt-18",))
    ours22 = await connect(url, verify=False, alpns=("moqt-22",))
    try:
        async with rs_client(url) as rs_pub, rs_client(url) as rs_sub:
            # both moq-rs sessions were negotiated at -22
            assert _alpns_of(relay) == ["moqt-18", "moqt-22", "moqt-22", "moqt-22"]
            broadcast = rs_pub.create_broadcast("grp-c/rsalice")
            track = broadcast.publish_track("kp")
            broadcast.announce()
            s18 = await ours18.subscribe_tracks(("grp-c",), discovery="namespace", track_names=KP)
            s22 = await ours22.subscribe_tracks(("grp-c",), discovery="namespace", track_names=KP)
            consumer = await asyncio.wait_for(rs_sub.announced_broadcast("grp-c/rsalice"), 5)
            rs_track = await consumer.subscribe_track("kp")
            key = ((b"grp-c", b"rsalice"), b"kp")
            for _ in range(60):
                if key in relay.tracks and len(relay.tracks[key].subscribers) >= 3:
                    break
                await asyncio.sleep(0.05)
            group = track.append_group()
            group.write_frame(b"rs22-frame-0")
            group.finish()
            for stream in (s18, s22):  # a -22 publisher reaches -18 and -22 subscribers
                got = await stream.get(5)
                assert (got.namespace, got.track_name, got.payload) == (
                    (b"grp-c", b"rsalice"),
                    b"kp",
                    b"rs22-frame-0",
                )
            assert await read_payloads(rs_track, 1) == {b"rs22-frame-0"}
            # our -18 publisher reaches the -22 moq-rs subscriber through the relay
            pub = await ours18.publish(("grp-c", "usbob"), "kp", announce="namespace")
            consumer2 = await asyncio.wait_for(rs_sub.announced_broadcast("grp-c/usbob"), 5)
            rs_track2 = await consumer2.subscribe_track("kp")
            await asyncio.sleep(0.3)
            await pub.write(0, 0, b"from-moqmls-18")
            assert await read_payloads(rs_track2, 1) == {b"from-moqmls-18"}
    finally:
        await ours18.close()
        await ours22.close()


async def test_our_draft22_clients_through_moqrs_server() -> None:
    async with moq.Server("127.0.0.1:0", tls_generate=["localhost"]) as server:
        serving = asyncio.ensure_future(server.serve())
        port = int(str(server.local_addr).rsplit(":", 1)[1])
        url = f"moqt://127.0.0.1:{port}"
        alice, bob, carol = [await connect(url, verify=False, alpns=("moqt-22",)) for _ in "abc"]
        try:
            assert {c.alpn for c in (alice, bob, carol)} == {"moqt-22"}
            pa = await alice.publish(("grp-d", "alice"), "kp", announce="namespace")
            pb = await bob.publish(("grp-d", "bob"), "kp", announce="namespace")
            stream = await carol.subscribe_tracks(("grp-d",), track_names=KP)
            assert stream.mode == "namespace"  # moq-rs refused SUBSCRIBE_TRACKS
            want = {(b"grp-d", b"alice"), (b"grp-d", b"bob")}
            for _ in range(60):
                if stream.namespaces == want:
                    break
                await asyncio.sleep(0.05)
            assert stream.namespaces == want
            await asyncio.sleep(0.3)
            await pa.write(0, 0, b"kp-alice-22", end_of_group=True)
            await pb.write(0, 0, b"kp-bob-22", end_of_group=True)
            got = {(o.namespace[1], o.payload) for o in [await stream.get(5), await stream.get(5)]}
            assert got == {(b"alice", b"kp-alice-22"), (b"bob", b"kp-bob-22")}
            # FETCH of one whole group: at -22 a LOCATION_FILTER {0, 0} + EndGroupDelta 0
            fetched = await carol.fetch(("grp-d", "alice"), "kp", (0, 0), (0, 0))
            assert [o.payload for o in fetched] == [b"kp-alice-22"]
        finally:
            for c in (alice, bob, carol):
                await c.close()
            serving.cancel()


@pytest.mark.parametrize(
    "flt",
    # the two cases where -20's length-prefixed and -22's typed encodings differ:
    # next object (-22: 05; -20: 02 00 00) and a field >= 128 (-22: 02 80 C8 00; -20: 03 ...)
    [LocationFilter(5), LocationFilter(2, 200, 0)],
    ids=["next-object", "absolute-start-200"],
)
async def test_moqrs_reads_typed_location_filters(
    flt: LocationFilter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def with_filter(self: MoQTClient, stream: Any) -> dict[str, Any]:
        return {"forward": 1, "subscription_filter": flt}

    monkeypatch.setattr(MoQTClient, "_subscribe_params", with_filter)
    async with moq.Server("127.0.0.1:0", tls_generate=["localhost"]) as server:
        serving = asyncio.ensure_future(server.serve())
        port = int(str(server.local_addr).rsplit(":", 1)[1])
        url = f"moqt://127.0.0.1:{port}"
        alice, carol = [await connect(url, verify=False, alpns=("moqt-22",)) for _ in "ac"]
        try:
            pa = await alice.publish(("grp-e", "alice"), "kp", announce="namespace")
            await asyncio.sleep(0.2)
            stream = await carol.subscribe(("grp-e", "alice"), "kp")
            await asyncio.sleep(0.2)
            # a mis-parsed filter would have closed the session; group 200 passes both
            await pa.write(200, 0, b"g200", end_of_group=True)
            got = await stream.get(5)
            assert (got.group_id, got.payload) == (200, b"g200")
            assert carol.connected.is_set()
        finally:
            for c in (alice, carol):
                await c.close()
            serving.cancel()


@pytest.mark.parametrize("draft", ["moqt-22", "moqt-18"])
async def test_moqrs_client_fetches_a_group_through_our_relay(draft: str) -> None:
    # moq-rs FETCHes whole groups (-22: LOCATION_FILTER type 3; -18: End {g, 0}); the relay
    # fetches upstream from our publisher and answers with a precise End Location
    r = Relay(RelayConfig(alpns=(draft,)))
    await r.start("127.0.0.1", 0)
    url = f"moqt://127.0.0.1:{r.port}"
    ours = await connect(url, verify=False, alpns=(draft,))
    try:
        pub = await ours.publish(("grp-h", "usbob"), "kp", announce="namespace")
        await pub.write(0, 0, b"g0-a")
        await pub.write(0, 1, b"g0-b", end_of_group=True)
        await pub.write(1, 0, b"g1-a", end_of_group=True)
        async with rs_client(url) as rs:
            assert _alpns_of(r) == [draft, draft]
            consumer = await asyncio.wait_for(rs.announced_broadcast("grp-h/usbob"), 5)
            for seq, want in ((0, [b"g0-a", b"g0-b"]), (1, [b"g1-a"])):
                group = await asyncio.wait_for(consumer.fetch_group("kp", seq), 5)
                frames = []
                while (frame := await asyncio.wait_for(group.read_frame(), 5)) is not None:
                    frames.append(frame.payload)
                assert frames == want
    finally:
        await ours.close()
        await r.close(grace=0.05)


async def test_history_subscriber_through_moqrs_which_ignores_fill_parameters() -> None:
    # moq-rs accepts a SUBSCRIBE carrying FILL_PARAMETERS but opens no fill stream, reports
    # no Largest Object and FETCHes one group at a time: the client waits fill_wait, takes
    # the first live object as the end of the history, and FETCHes the groups before it
    async with moq.Server("127.0.0.1:0", tls_generate=["localhost"]) as server:
        serving = asyncio.ensure_future(server.serve())
        port = int(str(server.local_addr).rsplit(":", 1)[1])
        url = f"moqt://127.0.0.1:{port}"
        alice, carol = [await connect(url, verify=False, alpns=("moqt-22",)) for _ in "ac"]
        carol.fill_wait = 0.3
        try:
            pa = await alice.publish(("grp-h", "alice"), "kp", announce="namespace")
            await asyncio.sleep(0.3)
            await pa.write(0, 0, b"kp-old-0", end_of_group=True)
            await pa.write(1, 0, b"kp-old-1", end_of_group=True)
            await asyncio.sleep(0.3)
            stream = await carol.subscribe(("grp-h", "alice"), "kp", history=True)
            await asyncio.sleep(0.5)
            await pa.write(2, 0, b"kp-live", end_of_group=True)
            got = [await stream.get(5) for _ in range(3)]
            assert sorted((o.group_id, o.payload) for o in got) == [
                (0, b"kp-old-0"),
                (1, b"kp-old-1"),
                (2, b"kp-live"),
            ]
            with pytest.raises(TimeoutError):
                await stream.get(0.3)  # nothing twice
        finally:
            for c in (alice, carol):
                await c.close()
            serving.cancel()
