"""Subscribe and catch up in one request (FILL_PARAMETERS, draft-20 on) over real QUIC.

A subscriber asking for history gets a track's earlier objects on the SUBSCRIBE's fill
stream at -22, with no FETCH; at -18 the same call falls back to SUBSCRIBE + FETCH. The
relay bridges both: the publisher's draft does not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from moqmls.moqt import events as ev
from moqmls.moqt import relay as relay_mod
from moqmls.moqt.client import connect
from moqmls.moqt.relay import Relay, RelayConfig

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


@pytest.mark.parametrize(
    ("pub_draft", "sub_draft", "fetches"),
    [("moqt-22", "moqt-22", 0), ("moqt-18", "moqt-22", 0), ("moqt-22", "moqt-18", 1)],
)
async def test_subscribe_with_history(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, pub_draft: str, sub_draft: str, fetches: int
) -> None:
    seen: list[ev.FetchRequested] = []
    on_fetch = relay_mod._HANDLERS[ev.FetchRequested]

    def counting(self: Relay, peer: Any, e: ev.FetchRequested) -> None:
        seen.append(e)
        on_fetch(self, peer, e)

    monkeypatch.setitem(relay_mod._HANDLERS, ev.FetchRequested, counting)
    url = f"moqt://127.0.0.1:{relay.port}"
    pub_c = await connect(url, verify=False, alpns=(pub_draft,))
    sub_c = await connect(url, verify=False, alpns=(sub_draft,))
    try:
        ns = ("grp-fill", "commit")
        pub = await pub_c.publish(ns, "mia")
        for g in range(3):
            await pub.write(g, 0, b"old-%d" % g)
        await pub.write(2, 1, b"old-2b")
        await asyncio.sleep(0.2)
        stream = await sub_c.subscribe(ns, "mia", history=True)
        got = [await stream.get(5) for _ in range(4)]
        assert sorted((o.group_id, o.object_id, o.payload) for o in got) == [
            (0, 0, b"old-0"),
            (1, 0, b"old-1"),
            (2, 0, b"old-2"),
            (2, 1, b"old-2b"),
        ]
        await pub.write(3, 0, b"live")
        assert (await stream.get(5)).payload == b"live"
        with pytest.raises(TimeoutError):
            await stream.get(0.2)  # nothing twice
        assert len(seen) == fetches  # -22: one SUBSCRIBE did it all; -18: SUBSCRIBE + FETCH
    finally:
        await pub_c.close()
        await sub_c.close()


@pytest.mark.parametrize(
    ("pub_draft", "link_draft", "sub_draft"),
    [
        ("moqt-18", "moqt-22", "moqt-22"),
        ("moqt-22", "moqt-18", "moqt-22"),
        ("moqt-22", "moqt-22", "moqt-18"),
    ],
)
async def test_history_through_chained_relays(
    monkeypatch: pytest.MonkeyPatch, pub_draft: str, link_draft: str, sub_draft: str
) -> None:
    # the publisher is on A, the late subscriber on B: B knows nothing of the track's past,
    # so it reports A's LARGEST_OBJECT and fills (or answers the FETCH) by fetching from A
    real_open = relay_mod.open_connection

    async def open_link(*args: Any, **kw: Any) -> Any:
        return await real_open(*args, **{**kw, "alpns": (link_draft,)})

    monkeypatch.setattr(relay_mod, "open_connection", open_link)
    a = Relay()
    await a.start("127.0.0.1", 0)
    b = Relay(RelayConfig(upstream=f"moqt://127.0.0.1:{a.port}"))
    await b.start("127.0.0.1", 0)
    pub_c = await connect(f"moqt://127.0.0.1:{a.port}", verify=False, alpns=(pub_draft,))
    sub_c = await connect(f"moqt://127.0.0.1:{b.port}", verify=False, alpns=(sub_draft,))
    try:
        assert b.upstream is not None and b.upstream.session.profile.alpn == link_draft
        pub = await pub_c.publish(("grp-chain-fill", "commit"), "nia")
        for g in range(3):
            await pub.write(g, 0, b"old-%d" % g)
        await asyncio.sleep(0.2)
        stream = await sub_c.subscribe(("grp-chain-fill", "commit"), "nia", history=True)
        got = sorted([(await stream.get(5)).payload for _ in range(3)])
        assert got == [b"old-0", b"old-1", b"old-2"]
        await pub.write(3, 0, b"live")
        assert (await stream.get(5)).payload == b"live"
    finally:
        await pub_c.close()
        await sub_c.close()
        await b.close(grace=0.05)
        await a.close(grace=0.05)


async def test_history_falls_back_to_fetch_when_the_fill_is_ignored(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a peer that accepts the SUBSCRIBE but ignores FILL_PARAMETERS (as moq-rs does)
    monkeypatch.setattr(Relay, "_serve_fill", lambda *args: None)
    seen: list[ev.FetchRequested] = []
    on_fetch = relay_mod._HANDLERS[ev.FetchRequested]

    def counting(self: Relay, peer: Any, e: ev.FetchRequested) -> None:
        seen.append(e)
        on_fetch(self, peer, e)

    monkeypatch.setitem(relay_mod._HANDLERS, ev.FetchRequested, counting)
    url = f"moqt://127.0.0.1:{relay.port}"
    pub_c = await connect(url, verify=False, alpns=("moqt-22",))
    sub_c = await connect(url, verify=False, alpns=("moqt-22",))
    sub_c.fill_wait = 0.3
    try:
        ns = ("grp-nofill", "commit")
        pub = await pub_c.publish(ns, "ola")
        await pub.write(0, 0, b"old-0")
        await pub.write(1, 0, b"old-1")
        await asyncio.sleep(0.2)
        stream = await sub_c.subscribe(ns, "ola", history=True)
        assert seen == []  # the SUBSCRIBE asked for a fill; no FETCH before fill_wait
        got = [await stream.get(5) for _ in range(2)]
        assert sorted((o.group_id, o.payload) for o in got) == [(0, b"old-0"), (1, b"old-1")]
        assert len(seen) == 1  # one FETCH of the history, bounded by Largest Object {1, 0}
        assert sub_c._fill_watch == {}
        await pub.write(2, 0, b"live")
        assert (await stream.get(5)).payload == b"live"
        with pytest.raises(TimeoutError):
            await stream.get(0.2)
    finally:
        await pub_c.close()
        await sub_c.close()
