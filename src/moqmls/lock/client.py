"""An async client of the lock service (DESIGN.md "Lock service").

Every operation of the service is idempotent (a lock carries a request_id, generated here
when the caller gives none), so the client retries a request whose outcome it did not learn:
connection failures and timeouts with a short backoff, 429 and 503 after their
``Retry-After``. Answers come back as the typed results of `moqmls.lock.model`; errors as
the `LockError` subclasses the service named.

Receipts (`moqmls.lock.receipt`): `service_keys()` fetches the service's public keys once
and keeps them; `verify_receipt(...)` checks a receipt against them, raising a precise
`ReceiptError` subclass when it does not prove what it is checked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from moqmls.lock.errors import (
    ERRORS_BY_CODE,
    BadRequestError,
    ForbiddenError,
    LockError,
    NotFoundError,
    ProtocolError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
)
from moqmls.lock.model import (
    Acquired,
    Committed,
    CompleteResult,
    Create,
    Created,
    CreateOrJoinResult,
    EpochRecord,
    Fenced,
    GroupStatus,
    Join,
    Locked,
    LockResult,
    Stale,
)
from moqmls.lock.receipt import Receipt, ServiceKey, key_table, verify_receipt
from moqmls.lock.wire import (
    decode_keys,
    decode_record,
    decode_result,
    decode_status,
    request_body,
)

_ERRORS: dict[int, type[LockError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    429: TooManyRequestsError,
    413: BadRequestError,
    503: UnavailableError,
}
_RETRY_STATUSES = (429, 503)


class LockClient:
    """A connection pool to one lock service, used as ``async with LockClient(url) as c``.

    `auth_token` is the bearer token (if the service has an auth file); `timeout_s` bounds
    one HTTP attempt, `attempts` the attempts per operation, `max_delay_s` any one wait
    between them (Retry-After included).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth_token: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 8,
        max_delay_s: float = 2.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.max_delay_s = max_delay_s
        self._headers = {} if auth_token is None else {"Authorization": f"Bearer {auth_token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._keys: tuple[ServiceKey, ...] | None = None

    async def __aenter__(self) -> LockClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ operations

    async def create_or_join(
        self, group: str, holder: str, ttl_ms: int | None = None
    ) -> CreateOrJoinResult:
        """Create (make the group, then complete(token)) | Join (await a Welcome) | Locked."""
        status, body = await self._call(
            "POST",
            f"/v1/groups/{_q(group)}/create-or-join",
            request_body(holder=holder, ttl_ms=ttl_ms),
        )
        result = decode_result(status, body, (Create, Join, Locked))
        assert isinstance(result, Create | Join | Locked)
        return result

    async def lock(
        self,
        group: str,
        epoch: int,
        holder: str,
        ttl_ms: int | None = None,
        request_id: str | None = None,
    ) -> LockResult:
        """Acquired (commit within ttl_ms) | Locked (retry later) | Stale (catch up first).

        Without a `request_id` the client draws one, so its own retries are idempotent;
        pass one to settle an earlier call whose outcome was lost. NotFoundError: no group.
        """
        body = request_body(holder=holder, ttl_ms=ttl_ms, request_id=request_id or uuid.uuid4().hex)
        status, answer = await self._call(
            "POST", f"/v1/groups/{_q(group)}/epochs/{int(epoch)}/lock", body
        )
        result = decode_result(status, answer, (Acquired, Locked, Stale))
        assert isinstance(result, Acquired | Locked | Stale)
        return result

    async def complete(
        self,
        token: str,
        commit_hash: str | None = None,
        commit: bytes | None = None,
        welcome: bytes | None = None,
    ) -> CompleteResult:
        """Committed (publish now) | Created (group exists at 0) | Fenced (discard the commit).

        Given `commit` bytes without `commit_hash`, the hash is their SHA-256.
        """
        if commit is not None and commit_hash is None:
            commit_hash = hashlib.sha256(commit).hexdigest()
        body = request_body(commit_hash=commit_hash, commit=commit, welcome=welcome)
        status, answer = await self._call("POST", f"/v1/locks/{_q(token)}/complete", body)
        result = decode_result(status, answer, (Committed, Created, Fenced))
        assert isinstance(result, Committed | Created | Fenced)
        return result

    async def release(self, token: str) -> None:
        """Give the lease up (abort); idempotent."""
        status, _ = await self._call("DELETE", f"/v1/locks/{_q(token)}", None)
        if status != 204:
            raise ProtocolError(f"release answered HTTP {status}")

    async def status(self, group: str) -> GroupStatus:
        """The group's epoch, lease holder and winners; exists=False if it is unknown."""
        try:
            _, body = await self._call("GET", f"/v1/groups/{_q(group)}", None)
        except NotFoundError:
            return GroupStatus(False, None, None, ())
        return decode_status(body)

    async def epoch(self, group: str, epoch: int) -> EpochRecord | None:
        """The stored Commit and Welcome sent in `epoch`, or None if not stored."""
        try:
            _, body = await self._call("GET", f"/v1/groups/{_q(group)}/epochs/{int(epoch)}", None)
        except NotFoundError:
            return None
        return decode_record(body)

    async def service_keys(self, refresh: bool = False) -> tuple[ServiceKey, ...]:
        """The keys the service signs receipts with: one GET, then cached (unless `refresh`)."""
        if self._keys is None or refresh:
            _, body = await self._call("GET", "/v1/keys", None)
            self._keys = decode_keys(body)
        return self._keys

    async def verify_receipt(
        self,
        receipt: bytes,
        *,
        group: str,
        epoch: int,
        committer: str,
        commit_hash: bytes | None,
    ) -> Receipt:
        """Check a receipt for (group, epoch, committer, commit_hash) with the service's keys.

        `commit_hash` is the raw SHA-256 of the Commit (None: any). A key id not among the
        cached keys is looked up once more (the service may have been given a new key).
        """
        keys = key_table(await self.service_keys())
        if Receipt.decode(receipt).key_id not in keys:
            keys = key_table(await self.service_keys(refresh=True))
        return verify_receipt(
            receipt, keys, group=group, epoch=epoch, committer=committer, commit_hash=commit_hash
        )

    # ------------------------------------------------------------ transport

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),  # the service sets no cookies
            )
        return self._session

    async def _call(
        self, method: str, path: str, body: dict[str, object] | None
    ) -> tuple[int, Any]:
        """One request, retried while its outcome is unknown or the service asks to wait."""
        data = None if body is None else json.dumps(body).encode()
        headers = None if data is None else {"Content-Type": "application/json"}
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                async with self._session_now().request(
                    method, self.base_url + path, data=data, headers=headers
                ) as response:
                    status = response.status
                    raw = await response.read()
                    retry_header = response.headers.get("Retry-After")
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = exc
                await asyncio.sleep(min(self.max_delay_s, 0.02 * 2**attempt))
                continue
            answer = _parse_json(raw) if raw else None
            if status in _RETRY_STATUSES:
                last = _error(status, answer)
                await asyncio.sleep(self._retry_delay(answer, retry_header))
                continue
            if status in _ERRORS:
                raise _error(status, answer)
            return status, answer
        if isinstance(last, LockError):
            raise last
        raise UnavailableError(f"lock service unreachable: {last!r}") from last

    def _retry_delay(self, answer: object, header: str | None) -> float:
        if isinstance(answer, dict):
            ms = answer.get("retry_after_ms")
            if isinstance(ms, int) and not isinstance(ms, bool) and ms >= 0:
                return min(self.max_delay_s, ms / 1000)
        if header is not None and header.isdigit():
            return min(self.max_delay_s, float(header))
        return min(self.max_delay_s, 1.0)


def _q(text: str) -> str:
    return quote(text, safe="")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None  # an error page from aiohttp itself (404 route, 413); decided by status


def _error(status: int, answer: object) -> LockError:
    """The LockError an error answer names (by its code, else by its status)."""
    fields = answer if isinstance(answer, dict) else {}
    reason, code = fields.get("reason"), fields.get("error")
    text = reason if isinstance(reason, str) else f"HTTP {status}"
    cls = ERRORS_BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None or cls.status != status:
        cls = _ERRORS.get(status, ProtocolError)
    return cls(text)
