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
from moqmls.moqt.relay import Relay

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
