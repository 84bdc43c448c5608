"""The relay integration tests of `test_integration` again, at draft-22 and with sessions of
both drafts on one relay (a -18 publisher's objects reach a -22 subscriber and back).

Each scenario of `test_integration` is run as written; only the ALPN each client (and each
relay's upstream link) offers is forced, so every session speaks the draft chosen here.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from moqmls.moqt import client as client_mod
from moqmls.moqt import quic as quic_mod
from moqmls.moqt import relay as relay_mod
from moqmls.moqt.cache import RetentionRule
from moqmls.moqt.relay import Relay, RelayConfig

from . import test_integration as base

pytestmark = pytest.mark.asyncio(loop_scope="module")

D18, D22 = ("moqt-18",), ("moqt-22",)
# which draft the n-th session of a scenario speaks
PATTERNS = {
    "all-22": [D22],
    "mixed-22-first": [D22, D18],
    "mixed-18-first": [D18, D22],
}


@pytest_asyncio.fixture(loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    # a fresh relay per run: the scenarios reuse track names, and a relay's cache drops
    # objects it has already seen (§8.3)
    r = Relay(RelayConfig(retention=[RetentionRule((b"keypackage",), 6 * 3600)]))
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


@pytest.fixture(params=list(PATTERNS))
def drafts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Force the ALPN of every client and relay-upstream session, cycling through a pattern."""
    cycle = itertools.cycle(PATTERNS[request.param])
    used: list[str] = []
    real_connect = client_mod.connect
    real_open = quic_mod.open_connection

    async def connect(url: str, **kw: Any) -> client_mod.MoQTClient:
        alpns = next(cycle)
        used.append(alpns[0])
        c = await real_connect(url, **{**kw, "alpns": alpns})
        assert c.alpn == alpns[0]
        return c

    async def open_connection(*args: Any, **kw: Any) -> Any:
        alpns = next(cycle)
        used.append(alpns[0])
        return await real_open(*args, **{**kw, "alpns": alpns})

    monkeypatch.setattr(base, "connect", connect)
    monkeypatch.setattr(relay_mod, "open_connection", open_connection)
    yield used


def _both_or_22(used: list[str]) -> None:
    """Every scenario ran with -22 sessions, and mixed patterns with both drafts."""
    assert "moqt-22" in used and set(used) <= {"moqt-18", "moqt-22"}


async def test_several_publishers_and_subscribers(relay: Relay, drafts: list[str]) -> None:
    await base.test_several_publishers_and_subscribers(relay)
    _both_or_22(drafts)


async def test_late_subscriber_fetches_what_it_missed(relay: Relay, drafts: list[str]) -> None:
    await base.test_late_subscriber_fetches_what_it_missed(relay)
    _both_or_22(drafts)


@pytest.mark.parametrize("drafts", ["all-22"], indirect=True)  # a single session
async def test_fetch_of_unknown_track_is_rejected(relay: Relay, drafts: list[str]) -> None:
    await base.test_fetch_of_unknown_track_is_rejected(relay)
    _both_or_22(drafts)


async def test_subscribe_namespace_discovery(relay: Relay, drafts: list[str]) -> None:
    await base.test_subscribe_namespace_discovery(relay)
    _both_or_22(drafts)


async def test_chained_relays(drafts: list[str]) -> None:
    await base.test_chained_relays()
    _both_or_22(drafts)


async def test_relay_restart_clients_reconnect(drafts: list[str]) -> None:
    await base.test_relay_restart_clients_reconnect()
    _both_or_22(drafts)


async def test_auth_token_limits_published_track_names(drafts: list[str]) -> None:
    await base.test_auth_token_limits_published_track_names()
    _both_or_22(drafts)
