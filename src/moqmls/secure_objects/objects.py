"""Protecting and unprotecting one object (draft-ietf-moq-secure-objects §3.3, §3.8, §3.9).

`TrackKeys` holds what §3.7 derives for one (track, Key ID) pair, derived once and reused for
every object of that track and epoch; `TrackKeys.protect` / `TrackKeys.unprotect` do the
per-object work. Objects are plain values; nothing here knows about MoQT sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from moqmls.secure_objects.codec import (
    ENCRYPTED_PROPERTIES_LIST,
    KEY_ID_PROPERTY,
    PADDING_PROPERTY,
    Plaintext,
    Property,
    decode_key_id,
    decode_plaintext,
    encode_plaintext,
    encode_properties,
)
from moqmls.secure_objects.errors import (
    BadPropertiesError,
    MissingKeyIdError,
    UnknownKeyIdError,
)
from moqmls.secure_objects.schedule import (
    derive_key_salt,
    make_aad,
    make_nonce,
    serialize_full_track_name,
)
from moqmls.secure_objects.suites import CipherSuite

_RESERVED_IMMUTABLE = (KEY_ID_PROPERTY, ENCRYPTED_PROPERTIES_LIST, PADDING_PROPERTY)


@dataclass(frozen=True, slots=True)
class PlainObject:
    """An object as the application sees it, before protection or after unprotection.

    ``immutable_properties`` are end-to-end authenticated but readable by relays; they never
    include the Key ID property, which protection adds. ``encrypted_properties`` and the
    payload are encrypted. ``padding`` is the size of the Padding property (§4.3), 0 for none.
    """

    group_id: int
    object_id: int
    payload: bytes
    publisher_priority: int = 128
    immutable_properties: tuple[Property, ...] = ()
    encrypted_properties: tuple[Property, ...] = ()
    padding: int = 0


@dataclass(frozen=True, slots=True)
class SecureObject:
    """An object as it travels: ids and immutable properties (Key ID first) in the clear,
    the payload replaced by the AEAD ciphertext (§3.8)."""

    group_id: int
    object_id: int
    publisher_priority: int
    immutable_properties: tuple[Property, ...]
    payload: bytes

    @property
    def key_id(self) -> int:
        return find_key_id(self.immutable_properties)


class ObjectFields(Protocol):
    """What unprotect reads from a received object; `SecureObject` is one."""

    @property
    def group_id(self) -> int: ...

    @property
    def object_id(self) -> int: ...

    @property
    def publisher_priority(self) -> int: ...

    @property
    def immutable_properties(self) -> Sequence[Property]: ...

    @property
    def payload(self) -> bytes: ...


def find_key_id(immutable_properties: Sequence[Property]) -> int:
    """The Key ID carried in the immutable properties; exactly one must be there (§3.9)."""
    found = [p for p in immutable_properties if p.type == KEY_ID_PROPERTY]
    if len(found) != 1:
        raise MissingKeyIdError(f"{len(found)} Secure Object Key ID properties, need exactly 1")
    return decode_key_id(found[0])


class TrackKeys:
    """moq_key, moq_salt and the keyed AEAD for one track and Key ID (§3.7)."""

    __slots__ = ("_aead", "_key_id_property", "key_id", "salt", "suite")

    def __init__(
        self,
        suite: CipherSuite,
        key_id: int,
        track_base_key: bytes,
        namespace: Sequence[bytes],
        track_name: bytes,
    ) -> None:
        derived = derive_key_salt(
            suite, key_id, track_base_key, serialize_full_track_name(namespace, track_name)
        )
        self.suite = suite
        self.key_id = key_id
        self.salt = derived.moq_salt
        self._aead = suite.aead(derived.moq_key)
        self._key_id_property = Property.key_id(key_id)

    def protect(self, obj: PlainObject) -> SecureObject:
        """§3.8: encrypt payload and Encrypted Properties List, authenticate the metadata."""
        for p in obj.immutable_properties:
            if p.type in _RESERVED_IMMUTABLE:
                raise BadPropertiesError(f"property type {p.type:#x} is not the caller's to set")
        immutable = (self._key_id_property, *obj.immutable_properties)
        aad = make_aad(
            obj.group_id, obj.object_id, obj.publisher_priority, encode_properties(immutable)
        )
        nonce = make_nonce(self.salt, obj.group_id, obj.object_id)
        pt = encode_plaintext(Plaintext(obj.payload, obj.encrypted_properties, obj.padding))
        return SecureObject(
            obj.group_id,
            obj.object_id,
            obj.publisher_priority,
            immutable,
            self._aead.encrypt(nonce, aad, pt),
        )

    def unprotect(self, obj: ObjectFields) -> PlainObject:
        """§3.9: check and decrypt; any failure raises and nothing is returned."""
        immutable = tuple(obj.immutable_properties)
        if find_key_id(immutable) != self.key_id:
            raise UnknownKeyIdError(f"object is not under Key ID {self.key_id}")
        aad = make_aad(
            obj.group_id, obj.object_id, obj.publisher_priority, encode_properties(immutable)
        )
        nonce = make_nonce(self.salt, obj.group_id, obj.object_id)
        pt = decode_plaintext(self._aead.decrypt(nonce, aad, obj.payload))
        return PlainObject(
            obj.group_id,
            obj.object_id,
            pt.payload,
            obj.publisher_priority,
            tuple(p for p in immutable if p.type != KEY_ID_PROPERTY),
            pt.encrypted_properties,
            pt.padding,
        )
