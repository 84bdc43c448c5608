"""MoQ Secure Objects (draft-ietf-moq-secure-objects): sans-I/O end-to-end object encryption."""

from moqmls.secure_objects.codec import Property
from moqmls.secure_objects.errors import (
    AuthenticationError,
    BadPropertiesError,
    DecodeError,
    ExpiredKeyIdError,
    IdOutOfRangeError,
    KeyIdConflictError,
    KeyRingError,
    MissingKeyIdError,
    NoCurrentKeyError,
    SecureObjectError,
    TruncatedError,
    UnknownKeyIdError,
    UnsupportedCipherSuiteError,
)
from moqmls.secure_objects.objects import ObjectFields, PlainObject, SecureObject, TrackKeys
from moqmls.secure_objects.suites import (
    AES_128_CTR_HMAC_SHA256_32,
    AES_128_CTR_HMAC_SHA256_64,
    AES_128_CTR_HMAC_SHA256_80,
    AES_128_GCM_SHA256_128,
    AES_256_GCM_SHA512_128,
    CipherSuite,
    cipher_suite,
)

__all__ = [
    "AES_128_CTR_HMAC_SHA256_32",
    "AES_128_CTR_HMAC_SHA256_64",
    "AES_128_CTR_HMAC_SHA256_80",
    "AES_128_GCM_SHA256_128",
    "AES_256_GCM_SHA512_128",
    "AuthenticationError",
    "BadPropertiesError",
    "CipherSuite",
    "DecodeError",
    "ExpiredKeyIdError",
    "IdOutOfRangeError",
    "KeyIdConflictError",
    "KeyRingError",
    "MissingKeyIdError",
    "NoCurrentKeyError",
    "ObjectFields",
    "PlainObject",
    "Property",
    "SecureObject",
    "SecureObjectError",
    "TrackKeys",
    "TruncatedError",
    "UnknownKeyIdError",
    "UnsupportedCipherSuiteError",
    "cipher_suite",
]
