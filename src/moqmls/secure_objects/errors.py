"""The Secure Objects error hierarchy: every failure of `moqmls.secure_objects` is a
`SecureObjectError` subclass (draft-ietf-moq-secure-objects §3.9 "Decryption": an object that
fails any check is dropped, never half-processed).
"""

from __future__ import annotations


class SecureObjectError(Exception):
    """Base of every error raised by `moqmls.secure_objects`."""


class DecodeError(SecureObjectError):
    """Bytes that are not a valid encoding."""


class TruncatedError(DecodeError):
    """The input ended before the value it announced (or is shorter than the AEAD tag)."""


class BadPropertiesError(DecodeError):
    """Properties that are malformed, misplaced or not allowed where they appear (§4)."""


class MissingKeyIdError(BadPropertiesError):
    """No (or more than one) Secure Object Key ID property among the immutable properties (§4.1)."""


class IdOutOfRangeError(SecureObjectError):
    """A Group ID above 2^64-1, Object ID above 2^32-1, or priority / Key ID out of range (§3.6)."""


class UnsupportedCipherSuiteError(SecureObjectError):
    """A cipher suite outside 0x0001-0x0005 (§7.2)."""


class KeyRingError(SecureObjectError):
    """A key-ring operation that cannot be done with the keys held."""


class UnknownKeyIdError(KeyRingError):
    """No key is (and no key was) installed for this namespace and Key ID."""


class ExpiredKeyIdError(KeyRingError):
    """The key for this Key ID was superseded and its retention window has passed."""


class KeyIdConflictError(KeyRingError):
    """A Key ID already installed with a different base key or cipher suite (nonce reuse risk)."""


class KeyUsageLimitError(KeyRingError):
    """A moq_key reached its AEAD invocation limit (§6.3): new keying material is needed."""


class NoCurrentKeyError(KeyRingError):
    """The sender has not chosen a current key for this namespace."""


class AuthenticationError(SecureObjectError):
    """AEAD decryption failed: wrong key, or tampered metadata, AAD or ciphertext (§3.9)."""
