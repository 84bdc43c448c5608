"""The relay integration tests of `test_integration` again, at draft-22 and with sessions of
both drafts on one relay (a -18 publisher's objects reach a -22 subscriber and back).

Each scenario of `test_integration` is run as written; only the ALPN each client (and each
relay's upstream link) offers is forced, so every session speaks the draft chosen here.
"""

from __future__ import annotations

import inspect
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


#: every scenario of `test_integration`, found by name so new ones are run here too
SCENARIOS = sorted(
    name
    for name, fn in vars(base).items()
    if name.startswith("test_") and inspect.iscoroutinefunction(fn)
)


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_scenario(
    scenario: str, relay: Relay, request: pytest.FixtureRequest, drafts: list[str]
) -> None:
    fn = getattr(base, scenario)
    if "relay" in inspect.signature(fn).parameters:
        await fn(relay)
    else:
        await fn()  # a scenario that starts its own relays
    assert set(drafts) <= {"moqt-18", "moqt-22"} and drafts
    if request.node.callspec.params["drafts"] == "all-22":
        assert set(drafts) == {"moqt-22"}
    elif len(drafts) > 1:
        assert set(drafts) == {"moqt-18", "moqt-22"}  # -18 and -22 sessions on one relay
