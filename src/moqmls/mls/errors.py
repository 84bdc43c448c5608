"""The MLS error hierarchy: every failure of `moqmls.mls` is an `MLSError` subclass."""

from __future__ import annotations


class MLSError(Exception):
    """Base of every error raised by `moqmls.mls`."""


class DecodeError(MLSError):
    """Bytes that are not a valid encoding (RFC 9420 §2.1)."""


class TruncatedError(DecodeError):
    """The input ended before the value it announced."""


class TrailingDataError(DecodeError):
    """Bytes were left over after a complete value."""


class InvalidVarintError(DecodeError):
    """A variable-size length with the reserved "11" prefix or a non-minimal encoding."""


class InvalidOptionalError(DecodeError):
    """An optional<T> presence octet other than 0 or 1."""


class InvalidEnumError(DecodeError):
    """An enumerated value that this field does not admit."""


class EncodeError(MLSError):
    """A value that cannot be encoded (out of range, wrong variant)."""


class CryptoError(MLSError):
    """A cryptographic operation failed."""


class UnsupportedCipherSuiteError(CryptoError):
    """A cipher suite this implementation does not offer."""


class SignatureError(CryptoError):
    """A signature did not verify."""


class DecryptionError(CryptoError):
    """An AEAD or HPKE decryption failed."""


class ValidationError(MLSError):
    """A well-formed message that violates a rule of RFC 9420."""
