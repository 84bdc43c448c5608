"""The relay fuzz test of `test_fuzz_relay` at draft-22: a fuzzed -22 client (mutated -22
control messages and stream headers) is closed with a precise code while a -18 publisher
keeps reaching a -22 subscriber on the same relay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqmls.moqt import messages as m
from moqmls.moqt.client import MoQTClient
from moqmls.moqt.client import connect as real_connect
from moqmls.moqt.codec import Location, encode_message
from moqmls.moqt.profile22 import DRAFT_22, LocationFilter
from moqmls.moqt.quic import open_connection as real_open

from . import test_fuzz_relay as base

P = DRAFT_22
NS = base.NS

SEEDS_REQUEST = [
    encode_message(
        m.Subscribe(
            0, NS, b"good", {"forward": 1, "subscription_filter": LocationFilter(2, 200, 0)}
        ),
        P,
    ),
    encode_message(
        m.Subscribe(
            0, NS, b"good", {"fill_parameters": {"subscription_filter": LocationFilter(3, 0, 0, 1)}}
        ),
        P,
    ),
    encode_message(m.Publish(0, NS, b"evil", 3, {"forward": 1}, ()), P),
    encode_message(m.Fetch(0, 1, NS, b"good", Location(0, 0), Location(9, 0)), P),
    encode_message(m.SubscribeTracks(0, (b"fuzz",), {}), P),
    encode_message(m.PublishStateNotify({"forward": 0}), P),
]


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fuzzed_draft22_client_closed_mixed_clients_keep_receiving(data: st.DataObject) -> None:
    attacks = []
    for _ in range(4):
        if data.draw(st.booleans()):
            attacks.append(
                ("request", base.mutate(data, data.draw(st.sampled_from(SEEDS_REQUEST))))
            )
        else:
            attacks.append(("data", base.mutate(data, data.draw(st.sampled_from(base.SEEDS_DATA)))))
    drafts = iter(["moqt-18", "moqt-22"])  # the publisher speaks -18, the subscriber -22

    async def connect(url: str, **kw: Any) -> MoQTClient:
        return await real_connect(url, **{**kw, "alpns": (next(drafts),)})

    async def open_connection(*args: Any, **kw: Any) -> Any:
        proto, stack = await real_open(*args, **{**kw, "alpns": ("moqt-22",)})
        assert proto.session is not None and proto.session.profile is P
        return proto, stack

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base, "P", P)
        mp.setattr(base, "connect", connect)
        mp.setattr(base, "open_connection", open_connection)
        asyncio.run(base.scenario(attacks))
