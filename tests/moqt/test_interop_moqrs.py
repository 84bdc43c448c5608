"""Interop with moq-rs (PyPI `moq-rs`, `import moq`, an independent Rust MoQT stack) at
draft-18 over raw QUIC: the ALPN offered/accepted is `moqt-18` only.

moq-rs maps a broadcast path "a/b" to the Track Namespace (a, b); it supports neither
PUBLISH nor SUBSCRIBE_TRACKS, so its peers use PUBLISH_NAMESPACE and the
SUBSCRIBE_NAMESPACE fallback, one namespace per sender.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from moqmls.moqt.client import connect
from moqmls.moqt.relay import Relay

moq = pytest.importorskip("moq")

pytestmark = pytest.mark.asyncio(loop_scope="module")


def KP(namespace: tuple[bytes, ...]) -> list[bytes]:
    """Track names under a moq-rs broadcast namespace: its one track is "kp"."""
    return [b"kp"]


def rs_client(url: str) -> object:
    return moq.Client(url, tls_verify=False, reconnect=False, websocket_enabled=False)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def read_payloads(track: object, n: int) -> set[bytes]:
    got = set()
    for _ in range(n):
        group = await asyncio.wait_for(track.next_group(), 5)  # type: ignore[attr-defined]
        frame = await asyncio.wait_for(group.read_frame(), 5)
        got.add(frame.payload)
    return got


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


async def test_moqrs_clients_publish_and_subscribe_through_our_relay(relay: Relay) -> None:
    url = f"moqt://127.0.0.1:{relay.port}"
    ours = await connect(url, verify=False)
    try:
        async with rs_client(url) as rs_pub, rs_client(url) as rs_sub:  # type: ignore[attr-defined]
            broadcast = rs_pub.create_broadcast("grp-a/rsalice")
            track = broadcast.publish_track("kp")
            broadcast.announce()
            stream = await ours.subscribe_tracks(("grp-a",), discovery="namespace", track_names=KP)
            consumer = await asyncio.wait_for(rs_sub.announced_broadcast("grp-a/rsalice"), 5)
            rs_track = await consumer.subscribe_track("kp")
            for _ in range(50):
                if (
                    relay.tracks.get(((b"grp-a", b"rsalice"), b"kp")) is not None
                    and len(relay.tracks[((b"grp-a", b"rsalice"), b"kp")].subscribers) >= 2
                ):
                    break
                await asyncio.sleep(0.05)
            group = track.append_group()
            group.write_frame(b"rs-frame-0")
            group.finish()
            got = await stream.get(5)
            assert (got.namespace, got.track_name, got.payload) == (
                (b"grp-a", b"rsalice"),
                b"kp",
                b"rs-frame-0",
            )
            assert await read_payloads(rs_track, 1) == {b"rs-frame-0"}
            # and the other way: our publisher, a moq-rs subscriber, through our relay
            pub = await ours.publish(("grp-a", "usbob"), "kp", announce="namespace")
            consumer2 = await asyncio.wait_for(rs_sub.announced_broadcast("grp-a/usbob"), 5)
            rs_track2 = await consumer2.subscribe_track("kp")
            await until(lambda: bool(pub.subscriptions))  # the relay subscribed upstream
            await pub.write(0, 0, b"from-moqmls")
            assert await read_payloads(rs_track2, 1) == {b"from-moqmls"}
    finally:
        await ours.close()


async def test_our_clients_through_moqrs_server() -> None:
    async with moq.Server("127.0.0.1:0", tls_generate=["localhost"]) as server:
        serving = asyncio.ensure_future(server.serve())
        port = int(str(server.local_addr).rsplit(":", 1)[1])
        url = f"moqt://127.0.0.1:{port}"
        alice = await connect(url, verify=False, alpns=("moqt-18",))
        bob = await connect(url, verify=False, alpns=("moqt-18",))
        carol = await connect(url, verify=False, alpns=("moqt-18",))
        try:
            assert alice.alpn == "moqt-18"
            # moq-rs answers PUBLISH with NOT_SUPPORTED; "auto" falls back to PUBLISH_NAMESPACE
            pa = await alice.publish(("grp-b", "alice"), "kp")
            assert pa.announce == "namespace"
            pb = await bob.publish(("grp-b", "bob"), "kp", announce="namespace")
            # moq-rs refuses SUBSCRIBE_TRACKS; "auto" falls back to SUBSCRIBE_NAMESPACE
            stream = await carol.subscribe_tracks(("grp-b",), track_names=KP)
            assert stream.mode == "namespace"
            for _ in range(60):
                if stream.namespaces == {(b"grp-b", b"alice"), (b"grp-b", b"bob")}:
                    break
                await asyncio.sleep(0.05)
            assert stream.namespaces == {(b"grp-b", b"alice"), (b"grp-b", b"bob")}
            # moq-rs subscribed to both publishers on carol's behalf
            await until(lambda: bool(pa.subscriptions) and bool(pb.subscriptions))
            # end_of_group FINs the subgroup: moq-rs serves FETCH only for complete groups
            await pa.write(0, 0, b"kp-alice", end_of_group=True)
            await pb.write(0, 0, b"kp-bob", end_of_group=True)
            got = {(o.namespace[1], o.payload) for o in [await stream.get(5), await stream.get(5)]}
            assert got == {(b"alice", b"kp-alice"), (b"bob", b"kp-bob")}
            # FETCH one whole group (moq-rs serves single-group fetches)
            fetched = await carol.fetch(("grp-b", "alice"), "kp", (0, 0), (0, 0))
            assert [o.payload for o in fetched] == [b"kp-alice"]
        finally:
            for c in (alice, bob, carol):
                await c.close()
            serving.cancel()
