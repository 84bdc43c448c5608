"""Authentication, malformed requests and fuzzed bodies against the real HTTP service."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqmls.lock import (
    Acquired,
    AuthTable,
    Created,
    ForbiddenError,
    LockClient,
    MemoryStore,
    Store,
    UnauthorizedError,
    serve,
)
from tests.lock.lock_helpers import committed, create_group

AUTH_FILE = """\
# token   holders
tok-alice alice
tok-bc    bob carol   # two sender-ids
tok-admin *
"""


@pytest.fixture
async def auth_url(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "auth"
    path.write_text(AUTH_FILE)
    async with serve(store, auth=AuthTable.load(path)) as bound:
        yield bound


async def test_auth_binds_tokens_to_holders(auth_url: str) -> None:
    async with (
        LockClient(auth_url, attempts=1) as anonymous,
        LockClient(auth_url, auth_token="wrong", attempts=1) as stranger,
        LockClient(auth_url, auth_token="tok-alice") as alice,
        LockClient(auth_url, auth_token="tok-bc") as bob,
        LockClient(auth_url, auth_token="tok-admin") as admin,
    ):
        for unknown in (anonymous, stranger):
            with pytest.raises(UnauthorizedError):
                await unknown.create_or_join("g", "alice")
            with pytest.raises(UnauthorizedError):
                await unknown.status("g")
        with pytest.raises(ForbiddenError):
            await alice.create_or_join("g", "bob")
        await create_group(alice, "g", "alice")
        with pytest.raises(ForbiddenError):
            await alice.lock("g", 0, "carol")
        got = await bob.lock("g", 0, "carol")
        assert isinstance(got, Acquired)
        with pytest.raises(ForbiddenError):
            await alice.complete(got.token, commit=b"c")
        with pytest.raises(ForbiddenError):
            await alice.release(got.token)
        assert (await alice.status("g")).holder == "carol", "any valid token may read"
        assert committed(await admin.complete(got.token, commit=b"c"), 1)


async def test_unauthorized_answer_names_the_scheme(auth_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{auth_url}/v1/groups/g") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert (await r.json())["error"] == "unauthorized"


def test_auth_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "auth"
    path.write_text("lonely-token\n")
    with pytest.raises(ValueError, match="at least one holder"):
        AuthTable.load(path)


GOOD_TOKEN = "0.1." + "ab" * 16 + ".g"

BAD_REQUESTS: list[tuple[str, str, bytes]] = [
    ("POST", "/v1/groups/g/create-or-join", b"{"),
    ("POST", "/v1/groups/g/create-or-join", b"[1, 2]"),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": 7}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": ""}'),
    ("POST", "/v1/groups/g/create-or-join", b"{}"),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "extra": 1}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "ttl_ms": 0}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "ttl_ms": 1e9}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "ttl_ms": 99999999999}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "ttl_ms": true}'),
    ("POST", "/v1/groups/g/create-or-join", b'{"holder": "a", "ttl_ms": "100"}'),
    ("POST", "/v1/groups/g/create-or-join", b"\xff\xfe"),
    ("POST", "/v1/groups/g/create-or-join", b"[" * 100_000),
    ("POST", "/v1/groups/a%20b/create-or-join", b'{"holder": "a"}'),
    ("POST", "/v1/groups/.hidden/create-or-join", b'{"holder": "a"}'),
    ("POST", "/v1/groups/" + "x" * 129 + "/create-or-join", b'{"holder": "a"}'),
    ("POST", "/v1/groups/g/epochs/99999999999999999999/lock", b'{"holder": "a"}'),
    ("POST", "/v1/groups/g/epochs/-1/lock", b'{"holder": "a"}'),
    ("POST", "/v1/groups/g/epochs/0/lock", b'{"holder": "a", "request_id": 5}'),
    ("POST", "/v1/locks/garbage/complete", b"{}"),
    ("POST", f"/v1/locks/{GOOD_TOKEN}/complete", b'{"commit_hash": "' + b"AB" * 32 + b'"}'),
    ("POST", f"/v1/locks/{GOOD_TOKEN}/complete", b'{"commit_hash": "ab", "commit": "eA=="}'),
    ("POST", f"/v1/locks/{GOOD_TOKEN}/complete", b'{"commit": "not base64!"}'),
    ("POST", f"/v1/locks/{GOOD_TOKEN}/complete", b'{"welcome": "eA=="}'),
    ("DELETE", "/v1/locks/garbage", b""),
    ("GET", "/v1/groups/g/epochs/1e3", b""),
    ("GET", "/v1/groups/g/epochs/%D9%A3", b""),  # a non-ASCII digit
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
async def test_malformed_requests_are_400(url: str, method: str, path: str, body: bytes) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + path, data=body) as response,
    ):
        assert response.status == 400
        answer = await response.json()
        assert answer["result"] == "error" and answer["error"] == "bad_request"
        assert isinstance(answer["reason"], str) and answer["reason"]


async def test_hash_mismatch_is_400_and_keeps_the_lease(url: str, client: LockClient) -> None:
    await create_group(client, "g")
    got = await client.lock("g", 0, "m")
    assert isinstance(got, Acquired)
    body = {"commit_hash": "00" * 32, "commit": base64.b64encode(b"c").decode()}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/locks/{got.token}/complete", json=body) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"] == "hash_mismatch"
    assert committed(await client.complete(got.token, commit=b"c"), 1)


async def test_oversized_body_is_refused(store: Store) -> None:
    async with serve(store, max_body=1024) as bound, aiohttp.ClientSession() as http:
        payload = {"commit": base64.b64encode(b"x" * 4096).decode()}
        async with http.post(f"{bound}/v1/locks/{GOOD_TOKEN}/complete", json=payload) as r:
            assert r.status == 413


# ---------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module")
def threaded_service() -> Iterator[str]:
    """A memory-store service on its own thread and loop, for synchronous fuzzing."""
    ready: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with MemoryStore() as store, serve(store) as bound:
            creator = await store.create_or_join("g", "founder")
            assert await store.complete(creator.token) == Created(0)  # type: ignore[union-attr]
            ready.append(bound)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["holder", "ttl_ms", "request_id", "commit_hash", "commit", "welcome", "x"]
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(field_names, json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
)
paths = st.sampled_from(
    [
        "/v1/groups/{s}/create-or-join",
        "/v1/groups/g/epochs/{s}/lock",
        "/v1/groups/{s}/epochs/0/lock",
        "/v1/locks/{s}/complete",
        "/v1/locks/{s}",
        "/v1/groups/{s}",
        "/v1/groups/g/epochs/{s}",
    ]
)
segments = st.one_of(
    st.text(alphabet="0123456789abcdefgc.-_~", min_size=1, max_size=40),
    st.just("0.1." + "ab" * 16 + ".g"),
    st.just("g"),
    st.just("0"),
)


def _request(base: str, method: str, path: str, body: bytes) -> int:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["POST", "GET", "DELETE"]),
    path=paths,
    segment=segments,
    body=bodies,
)
def test_fuzzed_requests_never_500(
    threaded_service: str, method: str, path: str, segment: str, body: bytes
) -> None:
    status = _request(threaded_service, method, path.format(s=segment), body)
    assert status < 500, (method, path, segment, body)


def test_service_still_answers_after_fuzzing(threaded_service: str) -> None:
    body: Any = json.dumps({"holder": "after"}).encode()
    assert _request(threaded_service, "POST", "/v1/groups/g/epochs/0/lock", body) in (200, 409)
