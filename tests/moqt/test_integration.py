"""End to end over real QUIC on loopback: clients, the caching relay, chained relays."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from moqmls.moqt.cache import RetentionRule
from moqmls.moqt.client import MoQTClient, MoQTObject, ObjectStream, connect
from moqmls.moqt.codec import Location
from moqmls.moqt.errors import MoQTError, RequestError
from moqmls.moqt.quic import certificate_pem
from moqmls.moqt.relay import Relay, RelayConfig

pytestmark = pytest.mark.asyncio(loop_scope="module")

KP = ("grp1", "keypackage")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    r = Relay(RelayConfig(retention=[RetentionRule((b"keypackage",), 6 * 3600)]))
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


def url(relay: Relay) -> str:
    return f"moqt://127.0.0.1:{relay.port}"


@contextlib.asynccontextmanager
async def clients(relay: Relay, n: int, **kw: object) -> AsyncIterator[list[MoQTClient]]:
    trust = certificate_pem(relay.certificate)
    made = [await connect(url(relay), verify=trust, **kw) for _ in range(n)]  # type: ignore[arg-type]
    try:
        yield made
    finally:
        for c in made:
            await c.close()


async def take(stream: ObjectStream, n: int, timeout: float = 5.0) -> list[MoQTObject]:
    return [await stream.get(timeout) for _ in range(n)]


async def test_several_publishers_and_subscribers(relay: Relay) -> None:
    ns = ("grp-multi", "media")
    async with clients(relay, 5) as (p1, p2, p3, s1, s2):
        subs = [await s.subscribe_tracks(ns) for s in (s1, s2, p1)]
        pubs = [
            await p.publish(ns, name) for p, name in ((p1, "alice"), (p2, "bob"), (p3, "carol"))
        ]
        for g in range(3):
            for pub in pubs:
                await pub.write(g, 0, pub.track_name + b"/%d" % g, {0x38: g})
        for sub in subs[:2]:
            got = await take(sub, 9)
            assert sorted((o.track_name, o.group_id, o.payload) for o in got) == sorted(
                (n, g, n + b"/%d" % g) for n in (b"alice", b"bob", b"carol") for g in range(3)
            )
            assert all(o.property(0x38) == o.group_id for o in got)
        # p1 subscribed too: it gets bob's and carol's tracks, never its own (§6.1).
        got = await take(subs[2], 6)
        assert {o.track_name for o in got} == {b"bob", b"carol"}
        with pytest.raises(TimeoutError):
            await subs[2].get(0.3)


async def test_late_subscriber_fetches_what_it_missed(relay: Relay) -> None:
    async with clients(relay, 2) as (pub_c, late):
        pub = await pub_c.publish(KP, "dave")
        for i in range(5):
            await pub.write(0, i, b"early-%d" % i)
        await asyncio.sleep(0.2)
        stream = await late.subscribe(KP, "dave")
        await pub.write(1, 0, b"live")
        first = await stream.get(5)
        assert first.payload == b"live"
        # FETCH everything up to and including group 1: only the 5 missed objects are new.
        assert await stream.fetch(KP, "dave", Location(0, 0), Location(1, 0)) == 5
        rest = await take(stream, 5)
        assert [o.payload for o in rest] == [b"early-%d" % i for i in range(5)]
        # FETCH of a sub-range: End Location = last object + 1 (§9.14.1)
        part = await late.fetch(KP, "dave", (0, 1), (0, 3))
        assert [o.object_id for o in part] == [1, 2]


async def test_fetch_of_unknown_track_is_rejected(relay: Relay) -> None:
    async with clients(relay, 1) as (c,):
        with pytest.raises(RequestError) as info:
            await c.fetch(("nobody",), "nothing", (0, 0), (1, 0))
        assert info.value.code == 0x11  # INVALID_RANGE


async def test_subscribe_namespace_discovery(relay: Relay) -> None:
    async with clients(relay, 3) as (watcher, a, b):
        stream = await watcher.subscribe_tracks(("grp-disc",), discovery="namespace")
        assert stream.mode == "namespace"
        # Each sender announces its own namespace (PUBLISH_NAMESPACE) and answers SUBSCRIBE.
        pa = await a.publish(("grp-disc", "erin"), "erin", announce="namespace")
        pb = await b.publish(("grp-disc", "frank"), "frank", announce="namespace")
        for _ in range(50):
            if len(stream.namespaces) == 2 and len(relay_subscribers(relay, "grp-disc")) == 2:
                break
            await asyncio.sleep(0.05)
        assert stream.namespaces == {(b"grp-disc", b"erin"), (b"grp-disc", b"frank")}
        await pa.write(0, 0, b"from-erin")
        await pb.write(0, 0, b"from-frank")
        got = await take(stream, 2)
        assert {o.payload for o in got} == {b"from-erin", b"from-frank"}


def relay_subscribers(relay: Relay, first: str) -> list[object]:
    return [t for k, t in relay.tracks.items() if k[0][:1] == (first.encode(),) and t.subscribers]


async def test_auth_token_limits_published_track_names() -> None:
    cfg = RelayConfig(auth_tokens={b"tok-alice": frozenset({b"alice"})})
    r = Relay(cfg)
    await r.start("127.0.0.1", 0)
    try:
        async with clients(r, 1, auth_token=b"tok-alice") as (alice,):
            await alice.publish(KP, "alice")
            with pytest.raises(RequestError) as info:
                await alice.publish(KP, "bob")
            assert info.value.code == 0x1  # UNAUTHORIZED
        with pytest.raises(MoQTError):
            bad = await connect(url(r), verify=False, auth_token=b"forged")
            await bad.publish(KP, "mallory")
    finally:
        await r.close(grace=0.05)


async def test_chained_relays() -> None:
    a = Relay()
    await a.start("127.0.0.1", 0)
    b = Relay(RelayConfig(upstream=url(a)))
    await b.start("127.0.0.1", 0)
    ns = ("grp-chain", "commit")
    try:
        async with clients(a, 2) as (pub_a, sub_a), clients(b, 2) as (pub_b, sub_b):
            early = await pub_a.publish(ns, "gina")
            await early.write(0, 0, b"before-b-knew")
            stream_b = await sub_b.subscribe_tracks(ns)
            stream_a = await sub_a.subscribe_tracks(ns)
            await asyncio.sleep(0.2)
            await early.write(1, 0, b"a-to-b")
            got = await stream_b.get(5)
            assert (got.track_name, got.payload) == (b"gina", b"a-to-b")
            # a publisher on B reaches a subscriber on A
            pb = await pub_b.publish(ns, "hank")
            await asyncio.sleep(0.2)
            await pb.write(0, 0, b"b-to-a")
            got = await stream_a.get(5)
            while got.track_name != b"hank":
                got = await stream_a.get(5)
            assert got.payload == b"b-to-a"
            # FETCH at B of an object B never saw is served through A's cache
            fetched = await sub_b.fetch(ns, "gina", (0, 0), (1, 0))
            assert [o.payload for o in fetched] == [b"before-b-knew", b"a-to-b"]
    finally:
        await b.close(grace=0.05)
        await a.close(grace=0.05)


async def test_relay_restart_clients_reconnect() -> None:
    first = Relay()
    port = await first.start("127.0.0.1", 0)
    target = f"moqt://127.0.0.1:{port}"
    ns = ("grp-restart", "proposal")
    pub_c = await connect(target, verify=False, reconnect=True, timeout=3)
    sub_c = await connect(target, verify=False, reconnect=True, timeout=3)
    second: Relay | None = None
    try:
        pub = await pub_c.publish(ns, "ivy")
        stream = await sub_c.subscribe_tracks(ns)
        await pub.write(0, 0, b"before")
        assert (await stream.get(5)).payload == b"before"
        goaway_seen = asyncio.ensure_future(sub_c.goaway.wait())
        await first.close(grace=0.1)
        await asyncio.wait_for(goaway_seen, 2)  # GOAWAY on shutdown (§3.6)
        second = Relay()
        await second.start("127.0.0.1", port)
        for _ in range(100):
            if pub_c.reconnects and sub_c.reconnects and pub_c.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert pub_c.reconnects >= 1 and sub_c.reconnects >= 1
        await asyncio.sleep(0.3)
        await pub.write(1, 0, b"after")
        got = await stream.get(5)
        assert got.payload == b"after"  # "before" was replayed but de-duplicated
    finally:
        await pub_c.close()
        await sub_c.close()
        if second is not None:
            await second.close(grace=0.05)


async def test_track_status(relay: Relay) -> None:
    async with clients(relay, 2) as (pub_c, asker):
        pub = await pub_c.publish(("grp-status", "commit"), "jack")
        await pub.write(4, 2, b"x")
        await asyncio.sleep(0.1)
        assert await asker.track_status(("grp-status", "commit"), "jack") == Location(4, 2)
        with pytest.raises(RequestError) as info:
            await asker.track_status(("grp-status", "commit"), "nobody")
        assert info.value.code == 0x10  # DOES_NOT_EXIST


async def test_auth_limits_routing_to_namespace_publishers() -> None:
    cfg = RelayConfig(auth_tokens={b"t-kim": frozenset({b"kim"}), b"t-sub": frozenset()})
    r = Relay(cfg)
    await r.start("127.0.0.1", 0)
    try:
        async with (
            clients(r, 1, auth_token=b"t-kim") as (kim,),
            clients(r, 1, auth_token=b"t-sub") as (sub,),
        ):
            await kim.publish(("grp-auth", "kp"), "kim", announce="namespace")
            stream = await sub.subscribe(("grp-auth", "kp"), "kim")
            assert stream.track_name == b"kim"
            # kim announced the namespace, but may not serve a track named "lee"
            with pytest.raises(RequestError) as info:
                await sub.subscribe(("grp-auth", "kp"), "lee")
            assert info.value.code == 0x10
            # a session whose token lists no names may not publish at all
            with pytest.raises(RequestError):
                await sub.publish(("grp-auth", "kp"), "sub")
    finally:
        await r.close(grace=0.05)


async def test_history_backfills_each_track(relay: Relay) -> None:
    ns = ("grp-hist", "keypackage")
    async with clients(relay, 3) as (a, b, late):
        pa = await a.publish(ns, "kai")
        pb = await b.publish(ns, "lou")
        await pa.write(0, 0, b"kai-kp0")
        await pa.write(0, 1, b"kai-kp1")
        await pb.write(0, 0, b"lou-kp0")
        await asyncio.sleep(0.2)
        stream = await late.subscribe_tracks(ns, history=True)
        got = await take(stream, 3)
        assert {(o.track_name, o.object_id, o.payload) for o in got} == {
            (b"kai", 0, b"kai-kp0"),
            (b"kai", 1, b"kai-kp1"),
            (b"lou", 0, b"lou-kp0"),
        }
        await pb.write(1, 0, b"lou-kp-update")
        assert (await stream.get(5)).payload == b"lou-kp-update"
        one = await late.subscribe(ns, "kai", history=True)
        assert {o.payload for o in await take(one, 2)} == {b"kai-kp0", b"kai-kp1"}


async def test_request_flood_is_refused_with_excessive_load() -> None:
    r = Relay(RelayConfig(max_requests_per_session=5))
    await r.start("127.0.0.1", 0)
    try:
        async with clients(r, 3) as (flooder, good_pub, good_sub):
            codes = []
            for i in range(8):
                try:
                    await flooder.publish(("grp-flood",), f"t{i}")
                except RequestError as exc:
                    codes.append(exc.code)
            assert codes == [0x9, 0x9, 0x9]  # EXCESSIVE_LOAD once past the limit
            # the other sessions are unaffected
            stream = await good_sub.subscribe_tracks(("grp-calm",))
            pub = await good_pub.publish(("grp-calm",), "ok")
            await pub.write(0, 0, b"still fine")
            assert (await stream.get(5)).payload == b"still fine"
            assert flooder.connected.is_set()
    finally:
        await r.close(grace=0.05)


async def test_goaway_with_new_uri_moves_clients_to_another_relay() -> None:
    old, new = Relay(), Relay()
    await old.start("127.0.0.1", 0)
    await new.start("127.0.0.1", 0)
    ns = ("grp-move", "commit")
    pub_c = await connect(url(old), verify=False, reconnect=True, timeout=3)
    sub_c = await connect(url(old), verify=False, reconnect=True, timeout=3)
    try:
        pub = await pub_c.publish(ns, "mo")
        stream = await sub_c.subscribe_tracks(ns)
        await old.close(grace=0.3, new_session_uri=url(new).encode())
        for _ in range(100):
            if pub_c.reconnects and sub_c.reconnects and len(new.peers) >= 2:
                break
            await asyncio.sleep(0.05)
        assert pub_c.port == new.port and sub_c.port == new.port
        await asyncio.sleep(0.3)
        await pub.write(0, 0, b"on the new relay")
        assert (await stream.get(5)).payload == b"on the new relay"
    finally:
        await pub_c.close()
        await sub_c.close()
        await new.close(grace=0.05)


async def test_namespace_published_track_reaches_subscribe_tracks_once_known(relay: Relay) -> None:
    ns = ("grp-mixed", "kp")
    async with clients(relay, 3) as (pub_c, direct, watcher):
        pub = await pub_c.publish(ns, "nia", announce="namespace")
        stream = await watcher.subscribe_tracks(ns)
        assert stream.mode == "tracks"
        # the relay learns the track name when someone SUBSCRIBEs by name ...
        one = await direct.subscribe(ns, "nia")
        await asyncio.sleep(0.2)
        await pub.write(0, 0, b"hello")
        assert (await one.get(5)).payload == b"hello"
        # ... and from then on offers it to SUBSCRIBE_TRACKS subscribers as well
        got = await stream.get(5)
        assert (got.track_name, got.payload) == (b"nia", b"hello")
