"""The lock service's one error hierarchy (DESIGN.md "Lock service").

Each subclass names one way a request can fail and carries the HTTP status the service
answers with, so the server maps errors to responses in one place and the client maps
responses back to the same classes.
"""

from __future__ import annotations


class LockError(Exception):
    """Base of every error the lock service, its stores and its client raise."""

    code: str = "error"
    status: int = 500


class BadRequestError(LockError):
    """The request is malformed: bad JSON, a field of the wrong type, an absurd TTL."""

    code: str = "bad_request"
    status = 400


class HashMismatchError(BadRequestError):
    """`commit_hash` is not the lowercase hex SHA-256 of the `commit` bytes."""

    code: str = "hash_mismatch"


class UnauthorizedError(LockError):
    """No bearer token, or one the service does not know (401)."""

    code: str = "unauthorized"
    status = 401


class ForbiddenError(LockError):
    """The bearer token is not bound to the holder id the request acts as (403)."""

    code: str = "forbidden"
    status = 403


class NotFoundError(LockError):
    """The group (or the epoch record) does not exist (404)."""

    code: str = "not_found"
    status = 404


class TooManyRequestsError(LockError):
    """The service sheds load; retry after the advertised delay (429)."""

    code: str = "too_many_requests"
    status = 429


class UnavailableError(LockError):
    """The store cannot decide right now (etcd without quorum, SQLite busy) (503)."""

    code: str = "unavailable"
    status = 503


class ProtocolError(LockError):
    """The service answered something this client does not understand."""

    code: str = "protocol"
    status = 502


class ReceiptError(LockError):
    """A Committed receipt that does not prove what it is checked for (checked client-side)."""

    code: str = "bad_receipt"
    status = 502


class MalformedReceiptError(ReceiptError):
    """The receipt's bytes are not one well-formed receipt (truncated, trailing, bad field)."""

    code: str = "malformed_receipt"


class UnknownReceiptKeyError(ReceiptError):
    """The receipt names a key id that is not one of the service's published keys."""

    code: str = "unknown_receipt_key"


class BadReceiptSignatureError(ReceiptError):
    """The signature does not verify under the named key: some signed field was changed."""

    code: str = "bad_receipt_signature"


class ReceiptMismatchError(ReceiptError):
    """A genuine receipt, but for another group, epoch, commit or committer."""

    code: str = "receipt_mismatch"


ERRORS_BY_CODE: dict[str, type[LockError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        HashMismatchError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        TooManyRequestsError,
        UnavailableError,
    )
}
