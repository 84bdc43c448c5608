"""A key ring of track_base_keys per (namespace, Key ID) (draft-ietf-moq-secure-objects §3.2).

§3.2 leaves key provisioning and lifetimes to the application. Ours (DESIGN.md "Media keys"):
one track_base_key per media namespace and MLS epoch, Key ID = epoch. Key IDs are therefore
ordered: installing a Key ID supersedes every lower Key ID of the namespace; a superseded key
still decrypts for ``retention`` seconds, then it is forgotten and objects under it fail with
`ExpiredKeyIdError`. The sender's current key is never forgotten while it is current. Per-track
keys and salts (§3.7) are derived on first use and cached per (namespace, Key ID, track).

Sans-I/O: the ring reads no clock; every time-dependent call takes ``now`` (seconds, any
monotonic origin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from moqmls.secure_objects.codec import KEY_ID_PROPERTY, MAX_U64, encode_vi64
from moqmls.secure_objects.errors import (
    ExpiredKeyIdError,
    IdOutOfRangeError,
    KeyIdConflictError,
    NoCurrentKeyError,
    UnknownKeyIdError,
)
from moqmls.secure_objects.objects import (
    DEFAULT_USAGE_LIMIT,
    ObjectFields,
    PlainObject,
    SecureObject,
    TrackKeys,
    find_key_id,
)
from moqmls.secure_objects.suites import AES_128_GCM_SHA256_128, CipherSuite
from moqmls.secure_objects.suites import cipher_suite as _suite

Namespace = tuple[bytes, ...]

#: Bounds on what the network can make us remember: per-track keys derived for track names
#: no object has yet authenticated under, and Key IDs kept only to say "expired".
MAX_UNPROVEN_TRACKS_PER_KEY = 1024
MAX_FORGOTTEN_PER_NAMESPACE = 4096


@dataclass
class _Entry:
    """One (namespace, Key ID). Per-track keys live in ``tracks`` once the sender used them or
    an object authenticated under them; until then in ``unproven``, which is bounded, so a relay
    inventing track names can neither grow the ring nor evict (and so reset the usage count
    of) the keys of real tracks."""

    suite: CipherSuite
    base_key: bytes
    superseded_at: float | None = None
    tracks: dict[bytes, TrackKeys] = field(default_factory=dict)
    unproven: dict[bytes, TrackKeys] = field(default_factory=dict)


class KeyRing:
    """Keys by (namespace, Key ID); protects with the current key, unprotects with any live one."""

    def __init__(
        self,
        cipher_suite: int | CipherSuite = AES_128_GCM_SHA256_128,
        retention: float = 10.0,
        usage_limit: int = DEFAULT_USAGE_LIMIT,
    ) -> None:
        if retention < 0:
            raise ValueError("retention must be >= 0 seconds")
        if usage_limit < 1:
            raise ValueError("usage_limit must be >= 1")
        self.cipher_suite = _suite(cipher_suite)
        self.retention = retention
        self.usage_limit = usage_limit
        self._keys: dict[Namespace, dict[int, _Entry]] = {}
        self._current: dict[Namespace, int] = {}
        self._forgotten: dict[Namespace, dict[int, None]] = {}
        # Per-object shortcuts, rebuilt whenever keys or the current key change: the current
        # key's tracks per namespace, and the tracks of every key no other key supersedes
        # (which needs no clock check), by the encoded value of its Key ID property.
        self._sending: dict[Namespace, dict[bytes, TrackKeys]] = {}
        self._live: dict[Namespace, dict[bytes, dict[bytes, TrackKeys]]] = {}

    # -- keys -------------------------------------------------------------------------------

    def install(
        self,
        namespace: Sequence[bytes],
        key_id: int,
        base_key: bytes,
        now: float,
        *,
        cipher_suite: int | CipherSuite | None = None,
    ) -> None:
        """Add the track_base_key for ``key_id``; lower Key IDs become superseded at ``now``.

        Installing the same key again is a no-op; the same Key ID with another key or suite
        raises `KeyIdConflictError` (it would reuse nonces), and a forgotten one
        `ExpiredKeyIdError`.
        """
        ns = _namespace(namespace)
        _check_key_id(key_id)
        if not base_key:
            raise ValueError("track_base_key must not be empty")
        suite = self.cipher_suite if cipher_suite is None else _suite(cipher_suite)
        self.expire(now)
        entries = self._keys.setdefault(ns, {})
        old = entries.get(key_id)
        if old is not None:
            if old.base_key != base_key or old.suite != suite:
                raise KeyIdConflictError(f"Key ID {key_id} is already installed with another key")
            return
        if key_id in self._forgotten.get(ns, {}):
            raise ExpiredKeyIdError(f"Key ID {key_id} has expired and cannot be reinstalled")
        entry = _Entry(suite, bytes(base_key))
        for other_id, other in entries.items():
            if other.superseded_at is not None:
                continue
            if other_id < key_id:
                other.superseded_at = now
            else:
                entry.superseded_at = now
        entries[key_id] = entry
        self._index(ns)

    def set_current(self, namespace: Sequence[bytes], key_id: int, now: float) -> None:
        """Choose the key this sender protects with in ``namespace``."""
        ns = _namespace(namespace)
        self._entry(ns, key_id, now)
        self._current[ns] = key_id
        self.expire(now)
        self._index(ns)

    def current_key_id(self, namespace: Sequence[bytes]) -> int | None:
        """The Key ID the sender protects with, if one was chosen."""
        return self._current.get(_namespace(namespace))

    def key_ids(self, namespace: Sequence[bytes], now: float) -> tuple[int, ...]:
        """The Key IDs that still decrypt at ``now``, in order."""
        ns = _namespace(namespace)
        self.expire(now)
        return tuple(sorted(self._keys.get(ns, {})))

    def expire(self, now: float) -> list[tuple[Namespace, int]]:
        """Forget every superseded key whose window has passed; returns what was forgotten."""
        gone: list[tuple[Namespace, int]] = []
        for ns, entries in self._keys.items():
            current = self._current.get(ns)
            for key_id, entry in list(entries.items()):
                if key_id != current and self._expired(entry, now):
                    del entries[key_id]
                    self._remember_forgotten(ns, key_id)
                    gone.append((ns, key_id))
        for ns in {ns for ns, _ in gone}:
            self._index(ns)
        return gone

    def remove_namespace(self, namespace: Sequence[bytes]) -> None:
        """Forget every key of ``namespace`` at once (e.g. on leaving the group)."""
        ns = _namespace(namespace)
        for key_id in self._keys.pop(ns, {}):
            self._remember_forgotten(ns, key_id)
        self._current.pop(ns, None)
        self._index(ns)

    def track_keys(
        self, namespace: Sequence[bytes], track_name: bytes, key_id: int, now: float
    ) -> TrackKeys:
        """The per-track keys (§3.7) for ``key_id``, derived once and cached."""
        ns = _namespace(namespace)
        return self._track_keys(ns, self._entry(ns, key_id, now), key_id, track_name)

    # -- objects ----------------------------------------------------------------------------

    def protect(
        self, namespace: Sequence[bytes], track_name: bytes, obj: PlainObject
    ) -> SecureObject:
        """Protect ``obj`` with the current key of ``namespace`` (§3.8)."""
        ns = namespace if type(namespace) is tuple else _namespace(namespace)
        try:
            keys = self._sending[ns][track_name]
        except KeyError:
            key_id = self._current.get(ns)
            if key_id is None:
                raise NoCurrentKeyError(f"no current key for namespace {ns!r}") from None
            keys = self._track_keys(ns, self._keys[ns][key_id], key_id, track_name)
        return keys.protect(obj)

    def unprotect(
        self, namespace: Sequence[bytes], track_name: bytes, obj: ObjectFields, now: float
    ) -> PlainObject:
        """Unprotect ``obj`` with the key its Key ID property names (§3.9)."""
        ns = namespace if type(namespace) is tuple else _namespace(namespace)
        props = obj.immutable_properties
        if len(props) == 1 and props[0].type == KEY_ID_PROPERTY:
            try:
                keys = self._live[ns][props[0].value][track_name]
            except (KeyError, TypeError):
                pass  # not a live key's proven track: the general path below decides
            else:
                return keys.unprotect_key_id_only(obj)
        key_id = find_key_id(props)
        entries = self._keys.get(ns)
        entry = entries.get(key_id) if entries else None
        if entry is None or entry.superseded_at is not None:
            entry = self._entry(ns, key_id, now)  # the checks a superseded key needs
        proven = entry.tracks.get(track_name)
        if proven is not None:
            return proven.unprotect(obj)
        return self._unprotect_on_probation(ns, entry, key_id, bytes(track_name), obj)

    # -- internals --------------------------------------------------------------------------

    def _index(self, ns: Namespace) -> None:
        """Rebuild the per-object shortcuts of ``ns`` after its keys changed."""
        entries = self._keys.get(ns, {})
        current = self._current.get(ns)
        if current is None or current not in entries:
            self._sending.pop(ns, None)
        else:
            self._sending[ns] = entries[current].tracks
        live = {
            encode_vi64(key_id): entry.tracks
            for key_id, entry in entries.items()
            if entry.superseded_at is None
        }
        if live:
            self._live[ns] = live
        else:
            self._live.pop(ns, None)

    def _expired(self, entry: _Entry, now: float) -> bool:
        return entry.superseded_at is not None and now >= entry.superseded_at + self.retention

    def _entry(self, ns: Namespace, key_id: int, now: float) -> _Entry:
        entry = self._keys.get(ns, {}).get(key_id)
        if entry is not None:
            if self._current.get(ns) == key_id or not self._expired(entry, now):
                return entry
            self.expire(now)
        if key_id in self._forgotten.get(ns, {}):
            raise ExpiredKeyIdError(f"Key ID {key_id} of {ns!r} expired")
        raise UnknownKeyIdError(f"no key for Key ID {key_id} of {ns!r}")

    def _track_keys(self, ns: Namespace, entry: _Entry, key_id: int, name: bytes) -> TrackKeys:
        """Keys of a track this side chose itself (to send on, or asked for by name)."""
        name = bytes(name)
        keys = entry.tracks.get(name) or entry.unproven.pop(name, None)
        if keys is None:
            keys = TrackKeys(entry.suite, key_id, entry.base_key, ns, name, self.usage_limit)
        entry.tracks[name] = keys
        return keys

    def _unprotect_on_probation(
        self, ns: Namespace, entry: _Entry, key_id: int, name: bytes, obj: ObjectFields
    ) -> PlainObject:
        """First objects of a track: its keys stay in the bounded ``unproven`` cache until
        one of them authenticates."""
        keys = entry.unproven.get(name)
        if keys is None:
            keys = TrackKeys(entry.suite, key_id, entry.base_key, ns, name, self.usage_limit)
            if len(entry.unproven) >= MAX_UNPROVEN_TRACKS_PER_KEY:
                del entry.unproven[next(iter(entry.unproven))]
            entry.unproven[name] = keys
        plain = keys.unprotect(obj)
        entry.tracks[name] = entry.unproven.pop(name)
        return plain

    def _remember_forgotten(self, ns: Namespace, key_id: int) -> None:
        forgotten = self._forgotten.setdefault(ns, {})
        forgotten[key_id] = None
        if len(forgotten) > MAX_FORGOTTEN_PER_NAMESPACE:
            del forgotten[next(iter(forgotten))]


def _namespace(namespace: Sequence[bytes]) -> Namespace:
    if type(namespace) is tuple:
        return namespace
    return tuple(bytes(f) for f in namespace)


def _check_key_id(key_id: int) -> None:
    if not isinstance(key_id, int) or not 0 <= key_id <= MAX_U64:
        raise IdOutOfRangeError(f"Key ID {key_id!r} is not a 64-bit value")
