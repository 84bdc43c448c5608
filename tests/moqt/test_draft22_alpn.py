"""Draft negotiation by ALPN (moqt-18 / moqt-22): the server's order decides among the
drafts both sides offer; a client with no draft in common is refused."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from moqmls.moqt.client import connect
from moqmls.moqt.errors import VersionNegotiationError
from moqmls.moqt.quic import DEFAULT_ALPNS
from moqmls.moqt.relay import Relay, RelayConfig

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def prefers22() -> AsyncIterator[Relay]:
    r = Relay(RelayConfig(alpns=("moqt-22", "moqt-18")))
    await r.start("127.0.0.1", 0)
    yield r
    await r.close(grace=0.05)


async def test_both_drafts_are_offered_by_default() -> None:
    assert set(DEFAULT_ALPNS) == {"moqt-18", "moqt-22"}


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (("moqt-18", "moqt-22"), "moqt-22"),  # the server's preference wins
        (("moqt-22", "moqt-18"), "moqt-22"),
        (("moqt-18",), "moqt-18"),
        (("moqt-22",), "moqt-22"),
    ],
)
async def test_negotiated_draft(prefers22: Relay, offer: tuple[str, ...], expected: str) -> None:
    client = await connect(f"moqt://127.0.0.1:{prefers22.port}", verify=False, alpns=offer)
    try:
        assert client.alpn == expected
        assert client.session.profile.alpn == expected
    finally:
        await client.close()


async def test_default_relay_prefers_draft18_and_accepts_22() -> None:
    r = Relay()
    await r.start("127.0.0.1", 0)
    try:
        url = f"moqt://127.0.0.1:{r.port}"
        both = await connect(url, verify=False)
        only22 = await connect(url, verify=False, alpns=("moqt-22",))
        assert (both.alpn, only22.alpn) == ("moqt-18", "moqt-22")
        await both.close()
        await only22.close()
    finally:
        await r.close(grace=0.05)


async def test_no_common_draft_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    r = Relay(RelayConfig(alpns=("moqt-22",)))
    await r.start("127.0.0.1", 0)
    try:
        # TLS no_application_protocol alert (0x100 + 120) from the server
        with pytest.raises(VersionNegotiationError) as info:
            await connect(f"moqt://127.0.0.1:{r.port}", verify=False, alpns=("moqt-18",), timeout=3)
        assert info.value.code == 0x15  # VERSION_NEGOTIATION_FAILED
        assert "moqt-18" in str(info.value)
        del info  # its traceback holds the client's protocol
    finally:
        await r.close(grace=0.05)
    # neither side's failed `ready` future may be left for asyncio to complain about
    gc.collect()
    assert not [rec for rec in caplog.records if "never retrieved" in rec.getMessage()]


async def test_package_exports_both_profiles() -> None:
    import moqmls.moqt as moqt
    from moqmls.moqt.profile import profile_for_alpn

    assert moqt.DRAFT_22 is profile_for_alpn("moqt-22")
    assert moqt.DRAFT_18 is profile_for_alpn("moqt-18")
    assert {"DRAFT_18", "DRAFT_22", "VersionNegotiationError"} <= set(moqt.__all__)
