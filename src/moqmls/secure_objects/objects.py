"""Protecting and unprotecting one object (draft-ietf-moq-secure-objects §3.3, §3.8, §3.9).

`TrackKeys` holds what §3.7 derives for one (track, Key ID) pair, derived once and reused for
every object of that track and epoch; `TrackKeys.protect` / `TrackKeys.unprotect` do the
per-object work. Objects are plain values; nothing here knows about MoQT sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag

from moqmls.secure_objects.codec import (
    ENCRYPTED_PROPERTIES_LIST,
    KEY_ID_PROPERTY,
    PADDING_PROPERTY,
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
    derive_key_salt,
    make_aad,
    salted_ctr,
    serialize_full_track_name,
)
from moqmls.secure_objects.suites import CipherSuite

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

    Derived once per track and epoch; `protect` and `unprotect` are the per-object path, so
    they precompute what every object shares (the Key ID property and its encoding).
    ``uses`` counts AEAD invocations against ``usage_limit`` (§6.3): encryptions for every
    suite, decryptions too for the CTR-HMAC suites.
    """

    __slots__ = (
        "_aead",
        "_count_decryptions",
        "_key_id_bytes",
        "_key_id_only",
        "_key_id_property",
        "_key_id_value",
        "_nn",
        "_salt",
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
        self._salt = int.from_bytes(self.salt, "big")
        self._nn = suite.nn
        self._aead = suite.aead(derived.moq_key)
        self._key_id_property = Property.key_id(key_id)
        self._key_id_value = self._key_id_property.value
        self._key_id_only = (self._key_id_property,)
        self._key_id_bytes = encode_properties(self._key_id_only)
        self._count_decryptions = suite.nka is not None
        self.usage_limit = usage_limit
        self.uses = 0

    def _use(self) -> None:
        if self.uses >= self.usage_limit:
            raise KeyUsageLimitError(
                f"moq_key of Key ID {self.key_id} reached {self.usage_limit} uses; rotate keys"
            )
        self.uses += 1

    def protect(self, obj: PlainObject) -> SecureObject:
        """§3.8: encrypt payload and Encrypted Properties List, authenticate the metadata."""
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        extra = obj.immutable_properties
        if extra:
            for p in extra:
                if p.type in _RESERVED_IMMUTABLE:
                    raise BadPropertiesError(f"property type {p.type:#x} is not the caller's")
            # Sorted by type: MoQT carries Key-Value-Pairs delta-coded, hence in this order,
            # so the AAD the receiver rebuilds from the wire matches (sorted() is stable).
            immutable = tuple(sorted((self._key_id_property, *extra), key=_property_type))
            serialized = encode_properties(immutable)
        else:
            immutable = self._key_id_only
            serialized = self._key_id_bytes
        aad = make_aad(group_id, object_id, priority, serialized)
        nonce = salted_ctr(self._salt, self._nn, group_id, object_id)
        pt = encode_plaintext(obj.payload, obj.encrypted_properties, obj.padding)
        self._use()
        ct = self._aead.encrypt(nonce, pt, aad)
        return SecureObject(group_id, object_id, priority, immutable, ct)

    def unprotect(self, obj: ObjectFields) -> PlainObject:
        """§3.9: check and decrypt; any failure raises and nothing is returned."""
        group_id, object_id, priority = obj.group_id, obj.object_id, obj.publisher_priority
        props = obj.immutable_properties
        if (
            len(props) == 1
            and props[0].value == self._key_id_value
            and props[0].type == KEY_ID_PROPERTY
        ):
            serialized = self._key_id_bytes
            extra: tuple[Property, ...] = ()
        else:
            if find_key_id(props) != self.key_id:
                raise UnknownKeyIdError(f"object is not under Key ID {self.key_id}")
            serialized = encode_properties(props)
            extra = tuple(p for p in props if p.type != KEY_ID_PROPERTY)
        ct = obj.payload
        if len(ct) < self.suite.nt:
            raise TruncatedError(f"ciphertext of {len(ct)} bytes is shorter than the tag")
        aad = make_aad(group_id, object_id, priority, serialized)
        nonce = salted_ctr(self._salt, self._nn, group_id, object_id)
        if self._count_decryptions:
            self._use()
        try:
            pt = self._aead.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise AuthenticationError("AEAD authentication failed") from None
        payload, encrypted, padding = decode_plaintext(pt)
        return PlainObject(group_id, object_id, payload, priority, extra, encrypted, padding)
