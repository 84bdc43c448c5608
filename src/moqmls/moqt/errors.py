"""The MoQT error hierarchy (draft-ietf-moq-transport-18 §3.4 and §13.1 error codes).

Every failure of `moqmls.moqt` is a `MoQTError`. Errors that end a session carry the
session termination code (§3.4) the session is closed with.
"""

from __future__ import annotations


class MoQTError(Exception):
    """Base of every error raised by `moqmls.moqt`."""

    #: Session termination code (§3.4) used when this error closes a session.
    code: int = 0x1

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def reason(self) -> str:
        """The human-readable reason phrase."""
        return str(self)


class DecodeError(MoQTError):
    """Bytes that are not a valid MoQT encoding (PROTOCOL_VIOLATION)."""

    code = 0x3


class TruncatedError(DecodeError):
    """The input ended before the value it announced."""


class TrailingDataError(DecodeError):
    """Bytes were left over after a complete message."""


class KeyValueFormattingError(DecodeError):
    """A Key-Value-Pair or parameter value that does not match its type (§1.4.3)."""

    code = 0x6


class EncodeError(MoQTError):
    """A value that cannot be encoded (out of range, too long)."""


class ProtocolViolation(MoQTError):
    """A well-formed message the peer was not allowed to send (PROTOCOL_VIOLATION)."""

    code = 0x3


class InvalidRequestIdError(ProtocolViolation):
    """A Request ID with the wrong parity, or a duplicate (INVALID_REQUEST_ID, §9.1)."""

    code = 0x4


class DuplicateTrackAliasError(ProtocolViolation):
    """A Track Alias already in use for another track (DUPLICATE_TRACK_ALIAS, §10.1)."""

    code = 0x5


class UnauthorizedError(MoQTError):
    """The peer is not authorized (UNAUTHORIZED)."""

    code = 0x2


class VersionNegotiationError(MoQTError):
    """No MoQT version in common (VERSION_NEGOTIATION_FAILED)."""

    code = 0x15


class SessionClosedError(MoQTError):
    """The session is closed; no further operations are possible."""

    code = 0x0


class RequestError(MoQTError):
    """A request answered with REQUEST_ERROR (§9.8); `code` is the REQUEST_ERROR code."""

    def __init__(self, message: str, code: int, retry_interval: int = 0) -> None:
        super().__init__(message, code)
        self.retry_interval = retry_interval


class RequestCancelledError(MoQTError):
    """A request stream was reset or closed before it was answered (§3.4.2)."""


class IncompatibleAioquicError(MoQTError, ImportError):
    """The installed aioquic lacks an internal `ParkingQuicConnection` relies on."""
