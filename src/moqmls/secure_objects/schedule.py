"""Key schedule, nonce and AAD of draft-ietf-moq-secure-objects (§3.3.1, §3.5, §3.6, §3.7)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from moqmls.secure_objects.codec import MAX_U32, MAX_U64, encode_vi64
from moqmls.secure_objects.errors import IdOutOfRangeError
from moqmls.secure_objects.suites import CipherSuite

KEY_LABEL = b"MOQ 1.0 Secure Objects Secret key "
SALT_LABEL = b"MOQ 1.0 Secret salt "

#: SECURE_OBJECT_AAD's fixed head (§3.5) and CTR (§3.6): Group ID (64), Object ID (32), ...
_AAD_HEAD_FORMAT = ">QIB"
_AAD_HEAD = struct.Struct(_AAD_HEAD_FORMAT)
_CTR = struct.Struct(">QI")


def serialize_full_track_name(namespace: Sequence[bytes], track_name: bytes) -> bytes:
    """Serialize(Track Namespace) + Serialize(Track Name) (§3.3.1; moq-transport-18 §2.4.1)."""
    parts = [encode_vi64(len(namespace))]
    for field in (*namespace, track_name):
        parts.append(encode_vi64(len(field)))
        parts.append(bytes(field))
    return b"".join(parts)


def hkdf_extract(hash_alg: hashes.HashAlgorithm, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2); an empty salt acts as Nh zero bytes, as HMAC pads it."""
    mac = hmac.HMAC(salt, hash_alg)
    mac.update(ikm)
    return mac.finalize()


def hkdf_expand(hash_alg: hashes.HashAlgorithm, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    return HKDFExpand(hash_alg, length, info).derive(prk)


@dataclass(frozen=True)
class DerivedKeys:
    """The outputs (and intermediates) of derive_key_salt (§3.7)."""

    moq_secret: bytes
    moq_key_label: bytes
    moq_salt_label: bytes
    moq_key: bytes
    moq_salt: bytes


def derive_key_salt(
    suite: CipherSuite, key_id: int, track_base_key: bytes, serialized_full_track_name: bytes
) -> DerivedKeys:
    """derive_key_salt (§3.7): per-track key and salt from a track_base_key and Key ID."""
    if not 0 <= key_id <= MAX_U64:
        raise IdOutOfRangeError(f"Key ID {key_id} is not a 64-bit value")
    context = (
        serialized_full_track_name + suite.value.to_bytes(2, "big") + key_id.to_bytes(8, "big")
    )
    secret = hkdf_extract(suite.hash, b"", track_base_key)
    key_label = KEY_LABEL + context
    salt_label = SALT_LABEL + context
    return DerivedKeys(
        moq_secret=secret,
        moq_key_label=key_label,
        moq_salt_label=salt_label,
        moq_key=hkdf_expand(suite.hash, secret, key_label, suite.nk),
        moq_salt=hkdf_expand(suite.hash, secret, salt_label, suite.nn),
    )


def make_ctr(group_id: int, object_id: int) -> bytes:
    """CTR = GroupID (64) || ObjectID (32), big-endian (§3.6)."""
    try:
        return _CTR.pack(group_id, object_id)
    except struct.error:
        raise IdOutOfRangeError(
            f"group {group_id!r} / object {object_id!r} outside 2^64-1 / 2^32-1"
        ) from None


def make_nonce(salt: bytes, group_id: int, object_id: int) -> bytes:
    """nonce = moq_salt XOR CTR, as AEAD.Nn big-endian bytes (§3.6, §3.8)."""
    return salted_ctr(int.from_bytes(salt, "big"), len(salt), group_id, object_id)


def salted_ctr(salt: int, nn: int, group_id: int, object_id: int) -> bytes:
    """`make_nonce` with the salt already an integer, as `TrackKeys` keeps it."""
    if not (0 <= group_id <= MAX_U64 and 0 <= object_id <= MAX_U32):
        raise IdOutOfRangeError(f"group {group_id} / object {object_id} outside 2^64-1 / 2^32-1")
    return (salt ^ (group_id << 32 | object_id)).to_bytes(nn, "big")


def salt_halves(salt: bytes) -> tuple[int, int]:
    """moq_salt as (first 8 bytes, last 4 bytes) integers: with Nn = 12, as in every suite of
    §7.2, CTR spans the whole nonce, so ``make_nonce`` is ``pack_ctr(hi ^ group_id,
    lo ^ object_id)`` for ids already checked to be in range."""
    if len(salt) != 12:
        raise ValueError(f"moq_salt of {len(salt)} bytes, expected Nn = 12")
    hi, lo = _CTR.unpack(salt)
    return hi, lo


#: CTR's layout (§3.6) as a function: ``pack_ctr(group_id, object_id)``.
pack_ctr = _CTR.pack


def make_aad(
    group_id: int, object_id: int, publisher_priority: int, serialized_immutable_properties: bytes
) -> bytes:
    """SECURE_OBJECT_AAD (§3.5)."""
    try:
        head = _AAD_HEAD.pack(group_id, object_id, publisher_priority)
    except struct.error:
        raise IdOutOfRangeError(
            f"group {group_id!r} / object {object_id!r} / priority {publisher_priority!r}"
            " outside 2^64-1 / 2^32-1 / 255"
        ) from None
    return head + serialized_immutable_properties


def aad_struct(serialized_immutable_properties_len: int) -> struct.Struct:
    """SECURE_OBJECT_AAD (§3.5) as one `struct` layout, for immutable properties of a known
    length: ``pack(group_id, object_id, priority, props)`` == `make_aad` (out-of-range ids
    raise ``struct.error``), in one call where the per-object path needs it."""
    return struct.Struct(f"{_AAD_HEAD_FORMAT}{serialized_immutable_properties_len}s")
