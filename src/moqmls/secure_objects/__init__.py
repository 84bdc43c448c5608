"""MoQ Secure Objects (draft-ietf-moq-secure-objects): sans-I/O end-to-end object encryption.

Implements the editor's copy (``shared/specs/moq-secure-objects.md``): the key schedule (§3.7),
nonce (§3.6), AAD (§3.5), payload with Encrypted Properties List and Padding (§3.3, §4), and
cipher suites 0x0001-0x0005 (§7.2), whose AES-CTR-HMAC follows RFC 9605 §4.5.1 exactly.

Objects are plain values: `PlainObject` (what the application sends and receives) and
`SecureObject` (what travels: ids, immutable properties including the Key ID, sorted by
type as MoQT carries them, and the ciphertext).
A `KeyRing` holds the track_base_keys per (namespace, Key ID); per-track keys are derived once
and cached. Nothing here reads a clock: pass ``now`` (seconds, monotonic).

Usage, one MLS epoch after another (Key ID = epoch, as DESIGN.md decides)::

    from moqmls.secure_objects import KeyRing, PlainObject

    ns, track = (b"group-1", b"media"), b"camera"
    sender, receiver = KeyRing(), KeyRing()          # suite 0x0004, 10 s retention
    for ring in (sender, receiver):
        ring.install(ns, key_id=5, base_key=epoch5_key, now=t)
    sender.set_current(ns, 5, now=t)

    sealed = sender.protect(ns, track, PlainObject(group_id=0, object_id=0, payload=b"..."))
    plain = receiver.unprotect(ns, track, sealed, now=t)      # == the PlainObject sent

    receiver.install(ns, 6, epoch6_key, now=t2)       # epoch 5 now decrypts until t2 + 10 s,
    receiver.unprotect(ns, track, sealed, now=t2 + 11)  # then: ExpiredKeyIdError

Every failure is a `SecureObjectError`: `AuthenticationError` (wrong key, tampered metadata or
ciphertext), `UnknownKeyIdError`, `ExpiredKeyIdError`, `TruncatedError`, `IdOutOfRangeError`,
`BadPropertiesError` / `MissingKeyIdError`, and the rest below.
"""

from moqmls.secure_objects.codec import Property, decode_properties, encode_properties
from moqmls.secure_objects.errors import (
    AuthenticationError,
    BadPropertiesError,
    DecodeError,
    ExpiredKeyIdError,
    IdOutOfRangeError,
    KeyIdConflictError,
    KeyRingError,
    KeyUsageLimitError,
    MissingKeyIdError,
    NoCurrentKeyError,
    SecureObjectError,
    TruncatedError,
    UnknownKeyIdError,
    UnsupportedCipherSuiteError,
)
from moqmls.secure_objects.keyring import KeyRing
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
    "KeyRing",
    "KeyRingError",
    "KeyUsageLimitError",
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
    "decode_properties",
    "encode_properties",
]
