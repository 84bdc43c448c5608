"""The lock service over HTTP/JSON (aiohttp) (DESIGN.md "Lock service").

Routes (all bodies JSON):

- ``POST /v1/groups/{group}/create-or-join`` {holder, ttl_ms?} -> 201 create | 200 join | 409
- ``POST /v1/groups/{group}/epochs/{epoch}/lock`` {holder, ttl_ms?, request_id?}
  -> 200 acquired | 409 locked | 412 stale | 404
- ``POST /v1/locks/{token}/complete`` {commit_hash?, commit?, welcome?}
  -> 200 committed / created | 410 fenced | 400 (hash mismatch)
- ``DELETE /v1/locks/{token}`` -> 204
- ``GET /v1/groups/{group}`` -> 200 status | 404
- ``GET /v1/groups/{group}/epochs/{epoch}`` -> 200 stored Commit, Welcome and receipt | 404
- ``GET /v1/keys`` -> 200 {keys: [{key_id, alg: "Ed25519", public_key}]}: the keys that
  sign the receipts of Committed answers, epoch records and status histories
  (`moqmls.lock.receipt`)

Errors answer ``{"result": "error", "reason": ...}`` with 400/401/403/404/429/503;
409/429/503 carry ``Retry-After``. With an auth table every request needs
``Authorization: Bearer T`` and T may act only as the holder ids bound to it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from moqmls.lock.core import MayActAs
from moqmls.lock.errors import (
    LockError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
)
from moqmls.lock.model import Locked, check_epoch, check_group, check_holder
from moqmls.lock.store import Store
from moqmls.lock.wire import (
    Result,
    encode_keys,
    encode_record,
    encode_result,
    encode_status,
    parse_request,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_INFLIGHT = 256
ANY_HOLDER = "*"

_STORE_KEY = web.AppKey("store", Store)
_AUTH_KEY = web.AppKey("auth", object)
_LIMIT_KEY = web.AppKey("limit", object)
_STATS_KEY = web.AppKey("stats", object)


@dataclass
class RequestStats:
    """Requests answered, per route (its path template), for tests and benchmarks."""

    by_route: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Every request counted."""
        return sum(self.by_route.values())


@dataclass(frozen=True)
class AuthTable:
    """Bearer tokens and the holder ids each may act as (``*``: any holder)."""

    by_digest: Mapping[bytes, frozenset[str]]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, Iterable[str]]]) -> AuthTable:
        """A table from (bearer token, holder ids) pairs."""
        table: dict[bytes, frozenset[str]] = {}
        for token, holders in pairs:
            if not token:
                raise ValueError("empty bearer token")
            table[_digest(token)] = frozenset(holders)
        return cls(table)

    @classmethod
    def load(cls, path: str | Path) -> AuthTable:
        """Read an auth file: one ``TOKEN HOLDER [HOLDER ...]`` per line, ``#`` comments."""
        pairs = []
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) < 2:
                raise ValueError(f"{path}:{number}: a token needs at least one holder id")
            for holder in words[1:]:
                if holder != ANY_HOLDER:
                    check_holder(holder)
            pairs.append((words[0], words[1:]))
        return cls.from_pairs(pairs)

    def holders(self, header: str | None) -> frozenset[str]:
        """The holder ids an Authorization header may act as; UnauthorizedError if none."""
        if header is None or not header.startswith("Bearer "):
            raise UnauthorizedError("missing bearer token")
        holders = self.by_digest.get(_digest(header[7:].strip()))
        if holders is None:
            raise UnauthorizedError("unknown bearer token")
        return holders


def _digest(token: str) -> bytes:
    # Looking up digests keeps the comparison's timing independent of the secret's bytes.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _may_act_as(holders: frozenset[str]) -> MayActAs:
    if ANY_HOLDER in holders:
        return lambda holder: True
    return holders.__contains__


class _Inflight:
    """A cap on concurrent requests; beyond it the service answers 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


def _json(status: int, body: dict[str, Any], retry_after_ms: int | None = None) -> web.Response:
    headers = {}
    if retry_after_ms is not None:
        headers["Retry-After"] = str(max(0, math.ceil(retry_after_ms / 1000)))
    return web.json_response(body, status=status, headers=headers)


def _result_response(result: Result) -> web.Response:
    status, body = encode_result(result)
    retry = result.retry_after_ms if isinstance(result, Locked) else None
    return _json(status, body, retry)


def _error_response(exc: LockError) -> web.Response:
    retry = 1000 if isinstance(exc, TooManyRequestsError | UnavailableError) else None
    body: dict[str, Any] = {
        "result": "error",
        "error": exc.code,
        "reason": str(exc) or type(exc).__name__,
    }
    if retry is not None:
        body["retry_after_ms"] = retry
    response = _json(exc.status, body, retry)
    if isinstance(exc, UnauthorizedError):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load shedding, authentication and the mapping of LockErrors to answers."""
    limit = request.app[_LIMIT_KEY]
    assert isinstance(limit, _Inflight)
    if limit.count >= limit.limit:
        return _error_response(TooManyRequestsError("too many requests in flight"))
    limit.count += 1
    stats = request.app[_STATS_KEY]
    if isinstance(stats, RequestStats):
        resource = request.match_info.route.resource
        stats.by_route[resource.canonical if resource is not None else "?"] += 1
    try:
        _may(request)  # every request, reads too, must authenticate
        return await handler(request)
    except LockError as exc:
        return _error_response(exc)
    finally:
        limit.count -= 1


def _store(request: web.Request) -> Store:
    return request.app[_STORE_KEY]


def _may(request: web.Request) -> MayActAs | None:
    """Which holder ids the request may act as (None: no auth configured)."""
    auth = request.app[_AUTH_KEY]
    if not isinstance(auth, AuthTable):
        return None
    return _may_act_as(auth.holders(request.headers.get("Authorization")))


def _path_epoch(request: web.Request) -> int:
    text = request.match_info["epoch"]
    ok = text.isascii() and text.isdigit() and len(text) <= 19
    return check_epoch(int(text) if ok else -1)


async def _create_or_join(request: web.Request) -> web.Response:
    group = check_group(request.match_info["group"])
    body = parse_request("create_or_join", await request.read())
    result = await _store(request).create_or_join(
        group, body["holder"], ttl_ms=body["ttl_ms"], may_act_as=_may(request)
    )
    return _result_response(result)


async def _lock(request: web.Request) -> web.Response:
    group = check_group(request.match_info["group"])
    epoch = _path_epoch(request)
    body = parse_request("lock", await request.read())
    result = await _store(request).lock(
        group,
        epoch,
        body["holder"],
        ttl_ms=body["ttl_ms"],
        request_id=body["request_id"],
        may_act_as=_may(request),
    )
    return _result_response(result)


async def _complete(request: web.Request) -> web.Response:
    body = parse_request("complete", await request.read())
    result = await _store(request).complete(
        request.match_info["token"],
        commit_hash=body["commit_hash"],
        commit=body["commit"],
        welcome=body["welcome"],
        may_act_as=_may(request),
    )
    return _result_response(result)


async def _release(request: web.Request) -> web.Response:
    await _store(request).release(request.match_info["token"], may_act_as=_may(request))
    return web.Response(status=204)


async def _status(request: web.Request) -> web.Response:
    status = await _store(request).status(request.match_info["group"])
    return _json(200, encode_status(status))


async def _epoch(request: web.Request) -> web.Response:
    record = await _store(request).epoch(request.match_info["group"], _path_epoch(request))
    return _json(200, encode_record(record))


async def _keys(request: web.Request) -> web.Response:
    return _json(200, encode_keys(await _store(request).service_keys()))


def make_app(
    store: Store,
    *,
    auth: AuthTable | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    stats: RequestStats | None = None,
) -> web.Application:
    """The aiohttp application serving `store`; `stats`, if given, counts its requests."""
    app = web.Application(client_max_size=max_body, middlewares=[_guard])
    app[_STORE_KEY] = store
    app[_AUTH_KEY] = auth
    app[_LIMIT_KEY] = _Inflight(max_inflight)
    app[_STATS_KEY] = stats
    app.router.add_post("/v1/groups/{group}/create-or-join", _create_or_join)
    app.router.add_post("/v1/groups/{group}/epochs/{epoch}/lock", _lock)
    app.router.add_post("/v1/locks/{token}/complete", _complete)
    app.router.add_delete("/v1/locks/{token}", _release)
    app.router.add_get("/v1/groups/{group}", _status)
    app.router.add_get("/v1/groups/{group}/epochs/{epoch}", _epoch)
    app.router.add_get("/v1/keys", _keys)
    return app


@asynccontextmanager
async def serve(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    auth: AuthTable | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    stats: RequestStats | None = None,
) -> AsyncIterator[str]:
    """Serve a started `store` on host:port (0: an ephemeral port), yielding the base URL.

    The store's lifecycle stays the caller's: ``async with store, serve(store) as url``.
    The receipt signing key is loaded (or created in the store) before the first request.
    """
    await store.signer()
    app = make_app(store, auth=auth, max_body=max_body, max_inflight=max_inflight, stats=stats)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        yield f"http://{shown}:{bound[1]}"
    finally:
        await runner.cleanup()
