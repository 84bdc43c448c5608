"""Protecting and unprotecting one object (draft-ietf-moq-secure-objects §3.3, §3.8, §3.9).

`TrackKeys` holds what §3.7 derives for one (track, Key ID) pair, derived once and reused for
every object of that track and epoch; `TrackKeys.protect` / `TrackKeys.unprotect` do the
per-object work. Objects are plain values; nothing here knows about MoQT sessions.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag

from moqmls.secure_objects.codec import (
    ENCRYPTED_PROPERTIES_LIST,
    KEY_ID_PROPERTY,
    PADDING_PROPERTY,
    SHORT_VI64,
    Property,
    decode_key_id,
    decode_plaintext,
    encode_plaintext,
    encode_properties,
)
from moqmls.secure_objects.errors import (
    AuthenticationError,
    BadPropertiesError,
    KeyUsageLimitError,
    MissingKeyIdError,
    TruncatedError,
    UnknownKeyIdError,
)
from moqmls.secure_objects.schedule import (
    aad_struct,
    derive_key_salt,
    make_aad,
    pack_ctr,
    salt_halves,
    serialize_full_track_name,
)
from moqmls.secure_objects.suites import CipherSuite

_U16 = struct.Struct(">H").pack
_RESERVED_IMMUTABLE = (KEY_ID_PROPERTY, ENCRYPTED_PROPERTIES_LIST, PADDING_PROPERTY)


def _property_type(p: Property) -> int:
    return p.type


@dataclass(frozen=True, slots=True)
class PlainObject:
    """An object as the application sees it, before protection or after unprotection.

    ``immutable_properties`` are end-to-end authenticated but readable by relays; they never
    include the Key ID property, which protection adds (unprotect returns them sorted by type,
    the order they travel in). ``encrypted_properties`` and the
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
    """An object as it travels: ids and immutable properties in the clear, the payload
    replaced by the AEAD ciphertext (§3.8).

    `TrackKeys.protect` lists the immutable properties sorted by type, the Key ID property
    among them; unprotect authenticates them in the order given.
    """

    group_id: int
    object_id: int
    publisher_priority: int
    immutable_properties: tuple[Property, ...]
    payload: bytes

    @property
    def key_id(self) -> int:
        return find_key_id(self.immutable_properties)


class _PlainObjectBuilder:
    """PlainObject's slots, writable: see `new_plain_object`."""

    __slots__ = (
        "encrypted_properties",
        "group_id",
        "immutable_properties",
        "object_id",
        "padding",
        "payload",
        "publisher_priority",
    )
    group_id: int
    object_id: int
    payload: bytes
    publisher_priority: int
    immutable_properties: tuple[Property, ...]
    encrypted_properties: tuple[Property, ...]
    padding: int


class _SecureObjectBuilder:
    """SecureObject's slots, writable: see `new_secure_object`."""

    __slots__ = ("group_id", "immutable_properties", "object_id", "payload", "publisher_priority")
    group_id: int
    object_id: int
    publisher_priority: int
    immutable_properties: tuple[Property, ...]
    payload: bytes


# The builders' instance layout must be their value class's, slot for slot, for the
# __class__ assignment below (CPython checks it and raises TypeError otherwise; it lays slots
# out in sorted order).
for _value, _builder in ((PlainObject, _PlainObjectBuilder), (SecureObject, _SecureObjectBuilder)):
    if sorted(_value.__slots__) != sorted(_builder.__slots__):
        raise RuntimeError(f"{_builder.__name__} does not have {_value.__name__}'s slots")


def new_plain_object(
    group_id: int,
    object_id: int,
    payload: bytes,
    publisher_priority: int,
    immutable_properties: tuple[Property, ...],
    encrypted_properties: tuple[Property, ...],
    padding: int,
) -> PlainObject:
    """``PlainObject(...)`` for the per-object path, about 4x faster than its constructor.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; filling
    a writable twin with the same slots and then giving it PlainObject's class yields the same
    frozen value (equal, hashable, immutable) at a fraction of the cost.
    """
    b = _PlainObjectBuilder()
    b.group_id = group_id
    b.object_id = object_id
    b.payload = payload
    b.publisher_priority = publisher_priority
    b.immutable_properties = immutable_properties
    b.encrypted_properties = encrypted_properties
    b.padding = padding
    b.__class__ = PlainObject  # type: ignore[assignment]
    return b  # type: ignore[return-value]  # typing.cast would cost a call


def new_secure_object(
    group_id: int,
    object_id: int,
    publisher_priority: int,
    immutable_properties: tuple[Property, ...],
    payload: bytes,
) -> SecureObject:
    """``SecureObject(...)`` for the per-object path; see `new_plain_object`."""
    b = _SecureObjectBuilder()
    b.group_id = group_id
    b.object_id = object_id
    b.publisher_priority = publisher_priority
    b.immutable_properties = immutable_properties
    b.payload = payload
    b.__class__ = SecureObject  # type: ignore[assignment]
    return b  # type: ignore[return-value]


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
    found = None
    for p in immutable_properties:
        if p.type == KEY_ID_PROPERTY:
            if found is not None:
                raise MissingKeyIdError("more than one Secure Object Key ID property")
            found = p
    if found is None:
        raise MissingKeyIdError("no Secure Object Key ID property")
    return decode_key_id(found)


#: AEAD invocations allowed per moq_key (§6.3): RFC 8446 §5.5's figure for AES-GCM (2^24.5
#: records of up to 16 kB keep the attacker's advantage near 2^-57), rounded down. One MLS
#: epoch of one track would need 6 days of 30 objects/s to reach it.
DEFAULT_USAGE_LIMIT = 1 << 24


class TrackKeys:
    """moq_key, moq_salt and the keyed AEAD for one track and Key ID (§3.7).

    Derived once per track and epoch, with everything every object of the track shares
    precomputed: the salt as the two integers the nonce XORs with, the Key ID property, its
    encoding and the AAD layout around it. `protect` and `unprotect` are the per-object path.
    ``uses`` counts AEAD invocations against ``usage_limit`` (§6.3): encryptions for every
    suite, decryptions too for the CTR-HMAC suites.
    """

    __slots__ = (
        "_aad_key_id_only",
        "_aead",
        "_count_decryptions",
        "_key_id_bytes",
        "_key_id_only",
        "_key_id_property",
        "_key_id_value",
        "_nt",
        "_salt_hi",
        "_salt_lo",
        "key_id",
        "salt",
        "suite",
        "usage_limit",
        "uses",
    )

    def __init__(
        self,
        suite: CipherSuite,
        key_id: int,
        track_base_key: bytes,
        namespace: Sequence[bytes],
        track_name: bytes,
        usage_limit: int = DEFAULT_USAGE_LIMIT,
    ) -> None:
        derived = derive_key_salt(
            suite, key_id, track_base_key, serialize_full_track_name(namespace, track_name)
        )
        self.suite = suite
        self.key_id = key_id
        self.salt = derived.moq_salt
        self._salt_hi, self._salt_lo = salt_halves(self.salt)
        self._nt = suite.nt
        self._aead = suite.aead(derived.moq_key)
        self._key_id_property = Property.key_id(key_id)
        self._key_id_value = self._key_id_property.value
        self._key_id_only = (self._key_id_property,)
        self._key_id_bytes = encode_properties(self._key_id_only)
        self._aad_key_id_only = aad_struct(len(self._key_id_bytes)).pack
        self._count_decryptions = suite.nka is not None
        self.usage_limit = usage_limit
        self.uses = 0

    def _count_use(self) -> None:
        if self.uses >= self.usage_limit:
            raise KeyUsageLimitError(
                f"moq_key of Key ID {self.key_id} reached {self.usage_limit} uses; rotate keys"
            )
        self.uses += 1

    def protect(self, obj: PlainObject) -> SecureObject:
        """§3.8: encrypt payload and Encrypted Properties List, authenticate the metadata."""
        payload = obj.payload
        n = len(payload)
        if (
            n >= 0x4000
            or obj.immutable_properties
            or obj.encrypted_properties
            or obj.padding
            or type(payload) is not bytes
        ):
            return self._protect_general(obj)
        # The common object (Key ID property only, nothing encrypted besides a payload of
        # < 16 kB): the same steps as _protect_general with what the track shares precomputed.
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        try:  # packing the AAD checks the ids' ranges, which the nonce relies on
            aad = self._aad_key_id_only(group_id, object_id, priority, self._key_id_bytes)
        except struct.error:
            make_aad(group_id, object_id, priority, b"")  # raises the precise error
            raise
        nonce = pack_ctr(self._salt_hi ^ group_id, self._salt_lo ^ object_id)
        pt = (SHORT_VI64[n] if n < 0x80 else _U16(0x8000 | n)) + payload
        uses = self.uses
        if uses >= self.usage_limit:
            self._count_use()  # raises
        self.uses = uses + 1
        sealed = _SecureObjectBuilder()  # new_secure_object, inline
        sealed.payload = self._aead.encrypt(nonce, pt, aad)
        sealed.group_id = group_id
        sealed.object_id = object_id
        sealed.publisher_priority = priority
        sealed.immutable_properties = self._key_id_only
        sealed.__class__ = SecureObject  # type: ignore[assignment]
        return sealed  # type: ignore[return-value]

    def _protect_general(self, obj: PlainObject) -> SecureObject:
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        extra = obj.immutable_properties
        if extra:
            immutable = self._with_key_id(extra)
            serialized = encode_properties(immutable)
        else:
            immutable = self._key_id_only
            serialized = self._key_id_bytes
        aad = make_aad(group_id, object_id, priority, serialized)  # checks the ids' ranges
        nonce = pack_ctr(self._salt_hi ^ group_id, self._salt_lo ^ object_id)
        pt = encode_plaintext(obj.payload, obj.encrypted_properties, obj.padding)
        self._count_use()
        ct = self._aead.encrypt(nonce, pt, aad)
        return new_secure_object(group_id, object_id, priority, immutable, ct)

    def _with_key_id(self, extra: Sequence[Property]) -> tuple[Property, ...]:
        for p in extra:
            if p.type in _RESERVED_IMMUTABLE:
                raise BadPropertiesError(f"property type {p.type:#x} is not the caller's")
        # Sorted by type: MoQT carries Key-Value-Pairs delta-coded, hence in this order,
        # so the AAD the receiver rebuilds from the wire matches (sorted() is stable).
        return tuple(sorted((self._key_id_property, *extra), key=_property_type))

    def unprotect(self, obj: ObjectFields) -> PlainObject:
        """§3.9: check and decrypt; any failure raises and nothing is returned."""
        props = obj.immutable_properties
        if (
            len(props) == 1
            and props[0].value == self._key_id_value
            and props[0].type == KEY_ID_PROPERTY
        ):
            return self.unprotect_key_id_only(obj)
        if find_key_id(props) != self.key_id:
            raise UnknownKeyIdError(f"object is not under Key ID {self.key_id}")
        extra = tuple(p for p in props if p.type != KEY_ID_PROPERTY)
        return self._open(obj, encode_properties(props), extra)

    def unprotect_key_id_only(self, obj: ObjectFields) -> PlainObject:
        """`unprotect` of an object whose immutable properties the caller has checked to be
        exactly this Key ID's property (the common case, which the key ring recognises)."""
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        ct = obj.payload
        if len(ct) < self._nt:
            raise TruncatedError(f"ciphertext of {len(ct)} bytes is shorter than the tag")
        try:  # packing the AAD checks the ids' ranges, which the nonce relies on
            aad = self._aad_key_id_only(group_id, object_id, priority, self._key_id_bytes)
        except struct.error:
            make_aad(group_id, object_id, priority, b"")  # raises the precise error
            raise
        nonce = pack_ctr(self._salt_hi ^ group_id, self._salt_lo ^ object_id)
        if self._count_decryptions:
            self._count_use()
        try:
            pt = self._aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise AuthenticationError("AEAD authentication failed") from None
        # §3.3.3 for the common plaintext, a payload alone (its vi64 length says it fills
        # the plaintext, in one or two bytes); anything else takes decode_plaintext.
        n = len(pt)
        first = pt[0] if n else 0xFF
        if first < 0x80 and first == n - 1:
            payload = pt[1:]
        elif 0x80 <= first < 0xC0 and n >= 2 and ((first & 0x3F) << 8 | pt[1]) == n - 2:
            payload = pt[2:]
        else:
            payload, encrypted, padding = decode_plaintext(pt)
            return new_plain_object(group_id, object_id, payload, priority, (), encrypted, padding)
        plain = _PlainObjectBuilder()
        plain.payload = payload
        plain.group_id = group_id
        plain.object_id = object_id
        plain.publisher_priority = priority
        plain.immutable_properties = ()
        plain.encrypted_properties = ()
        plain.padding = 0
        plain.__class__ = PlainObject  # type: ignore[assignment]
        return plain  # type: ignore[return-value]

    def _open(
        self, obj: ObjectFields, serialized: bytes, extra: tuple[Property, ...]
    ) -> PlainObject:
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        ct = obj.payload
        if len(ct) < self._nt:
            raise TruncatedError(f"ciphertext of {len(ct)} bytes is shorter than the tag")
        aad = make_aad(group_id, object_id, priority, serialized)  # checks the ids' ranges
        nonce = pack_ctr(self._salt_hi ^ group_id, self._salt_lo ^ object_id)
        if self._count_decryptions:
            self._count_use()
        try:
            pt = self._aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise AuthenticationError("AEAD authentication failed") from None
        payload, encrypted, padding = decode_plaintext(pt)
        return new_plain_object(group_id, object_id, payload, priority, extra, encrypted, padding)
