"""A fuzzed client (mutated control messages and stream headers) is closed with a precise
session error code while a well-behaved client on the same relay keeps receiving."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqmls.moqt import messages as m
from moqmls.moqt.client import connect
from moqmls.moqt.codec import Location, encode_message
from moqmls.moqt.objects import SubgroupHeader, encode_subgroup_header, encode_subgroup_object
from moqmls.moqt.profile import DRAFT_18
from moqmls.moqt.quic import open_connection
from moqmls.moqt.relay import Relay

P = DRAFT_18
NS = (b"fuzz", b"media")

SEEDS_REQUEST = [
    encode_message(m.Subscribe(0, NS, b"good", {"forward": 1}), P),
    encode_message(m.Publish(0, NS, b"evil", 3, {"forward": 1}, ()), P),
    encode_message(m.Fetch(0, 1, NS, b"good", Location(0, 0), Location(9, 0)), P),
    encode_message(m.SubscribeTracks(0, (b"fuzz",), {}), P),
    encode_message(m.PublishNamespace(0, NS, {}), P),
]
_h = SubgroupHeader(0, 1, 0, 5)
SEEDS_DATA = [encode_subgroup_header(_h, P) + encode_subgroup_object(_h, None, 0, b"payload")]
SESSION_CODES = {0x2, 0x3, 0x4, 0x5, 0x6}


def mutate(data: st.DataObject, seed: bytes) -> bytes:
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(1, len(raw)))]
    return bytes(raw)


async def attack(port: int, kind: str, payload: bytes, wait: float = 0.3) -> tuple[int, str] | None:
    proto, stack = await open_connection("127.0.0.1", port, verify=False)
    try:
        quic = proto._quic
        sid = quic.get_next_available_stream_id(is_unidirectional=(kind == "data"))
        quic.send_stream_data(sid, payload, end_stream=True)
        proto.transmit()
        try:
            return await asyncio.wait_for(asyncio.shield(proto.terminated), wait)
        except TimeoutError:
            return None
    finally:
        proto.close_session(0, "")
        await stack.aclose()


async def scenario(attacks: list[tuple[str, bytes]]) -> None:
    relay = Relay()
    port = await relay.start("127.0.0.1", 0)
    url = f"moqt://127.0.0.1:{port}"
    pub_c = await connect(url, verify=False)
    sub_c = await connect(url, verify=False)
    try:
        stream = await sub_c.subscribe_tracks((b"fuzz",))
        pub = await pub_c.publish(NS, "good")
        written = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal written
            while not stop.is_set():
                await pub.write(written, 0, b"obj-%d" % written)
                written += 1
                await asyncio.sleep(0.01)

        task = asyncio.ensure_future(writer())
        # One attack that is wrong by construction: a SUBSCRIBE with an odd (server) request ID.
        bad = encode_message(m.Subscribe(1, NS, b"good"), P)
        result = await attack(port, "request", bad, wait=10.0)
        assert result is not None and result[0] == 0x4  # INVALID_REQUEST_ID
        for kind, payload in attacks:
            result = await attack(port, kind, payload)
            if result is not None:
                code, reason = result
                # closed with a precise code, never the catch-all of an implementation bug
                assert code in SESSION_CODES | {0x0}, (code, reason, payload.hex())
                assert "internal" not in reason
        stop.set()
        await task
        got = [await stream.get(5) for _ in range(written)]
        assert [o.group_id for o in got] == list(range(written))  # nothing lost, in order
        assert sub_c.connected.is_set() and pub_c.connected.is_set()
    finally:
        await pub_c.close()
        await sub_c.close()
        await relay.close(grace=0.01)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_fuzzed_client_closed_good_client_keeps_receiving(data: st.DataObject) -> None:
    attacks = []
    for _ in range(4):
        if data.draw(st.booleans()):
            attacks.append(("request", mutate(data, data.draw(st.sampled_from(SEEDS_REQUEST)))))
        else:
            attacks.append(("data", mutate(data, data.draw(st.sampled_from(SEEDS_DATA)))))
    asyncio.run(scenario(attacks))
