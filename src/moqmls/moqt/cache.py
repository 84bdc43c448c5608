"""A relay's per-track object cache (draft-ietf-moq-transport-18 §8.1 Caching Relays).

Sans-I/O: time is passed in. Retention is chosen per namespace suffix (the longest
matching rule wins): an age limit, a limit on the number of newest groups kept, or both.
Duplicates (same track, group and object) are ignored, as §8.1 allows. A byte budget
bounds the whole cache: a track that pushes it over gives up its own oldest objects first,
so one flooding publisher cannot evict everyone else's.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from moqmls.moqt.codec import Location, Namespace
from moqmls.moqt.errors import MoQTError
from moqmls.moqt.objects import ObjectData
from moqmls.moqt.session import in_fetch_range

TrackKey = tuple[Namespace, bytes]


@dataclass(frozen=True)
class RetentionRule:
    """Keep objects of namespaces ending in `suffix` for `max_age` s and/or `max_groups`."""

    suffix: Namespace
    max_age: float | None = None
    max_groups: int | None = None

    def matches(self, namespace: Namespace) -> bool:
        n = len(self.suffix)
        return n <= len(namespace) and (n == 0 or namespace[-n:] == self.suffix)


def parse_retention(spec: str) -> RetentionRule:
    """Parse `SUFFIX=AGE[,groups:N]` with AGE like 90s, 10m, 6h or `-`; SUFFIX is a/b/c."""
    try:
        suffix_text, _, rest = spec.partition("=")
        suffix = tuple(p.encode() for p in suffix_text.split("/") if p)
        max_age: float | None = None
        max_groups: int | None = None
        for part in rest.split(","):
            part = part.strip()
            if part.startswith("groups:"):
                max_groups = int(part[7:])
            elif part and part != "-":
                unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(part[-1])
                max_age = float(part[:-1]) * unit if unit else float(part)
    except ValueError as exc:
        raise MoQTError(f"bad retention rule {spec!r}: {exc}") from exc
    return RetentionRule(suffix, max_age, max_groups)


@dataclass
class TrackCache:
    """Cached objects of one track in Location order."""

    locations: list[Location] = field(default_factory=list)
    objects: dict[Location, tuple[ObjectData, float]] = field(default_factory=dict)
    largest: Location | None = None


class ObjectCache:
    """Objects by Full Track Name, Group ID and Object ID (§8.1)."""

    def __init__(
        self,
        rules: Sequence[RetentionRule] = (),
        default_max_age: float | None = 600.0,
        max_objects_per_track: int = 10000,
        max_bytes: int = 256 << 20,
    ) -> None:
        self.rules = sorted(rules, key=lambda r: len(r.suffix), reverse=True)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.default = RetentionRule((), default_max_age, None)
        self.max_objects = max_objects_per_track
        self.tracks: dict[TrackKey, TrackCache] = {}

    def rule_for(self, namespace: Namespace) -> RetentionRule:
        """The retention rule of the longest matching suffix, else the default."""
        for rule in self.rules:
            if rule.matches(namespace):
                return rule
        return self.default

    def put(self, key: TrackKey, obj: ObjectData, now: float) -> bool:
        """Store `obj`; False when the object was already cached (a duplicate)."""
        track = self.tracks.setdefault(key, TrackCache())
        loc = Location(obj.group_id, obj.object_id)
        if loc in track.objects:
            return False
        size = _size(obj)
        if size > self.max_bytes:
            return True  # forwarded but never cached
        track.objects[loc] = (obj, now)
        self.bytes += size
        if not track.locations or track.locations[-1] < loc:
            track.locations.append(loc)
        else:
            bisect.insort(track.locations, loc)
        if track.largest is None or loc > track.largest:
            track.largest = loc
        self._trim(key, track, now)
        return True

    def largest(self, key: TrackKey) -> Location | None:
        """The largest Location ever cached for the track (§9.2.11)."""
        track = self.tracks.get(key)
        return None if track is None else track.largest

    def earliest(self, key: TrackKey, now: float) -> Location | None:
        """The smallest Location still cached."""
        track = self.tracks.get(key)
        if track is None:
            return None
        self._trim(key, track, now)
        return track.locations[0] if track.locations else None

    def range(self, key: TrackKey, start: Location, end: Location, now: float) -> list[ObjectData]:
        """Cached objects in a FETCH range (§9.14.1), in ascending order."""
        track = self.tracks.get(key)
        if track is None:
            return []
        self._trim(key, track, now)
        i = bisect.bisect_left(track.locations, start)
        out = []
        for loc in track.locations[i:]:
            if not in_fetch_range(loc, start, end):
                break
            out.append(track.objects[loc][0])
        return out

    def _trim(self, key: TrackKey, track: TrackCache, now: float) -> None:
        rule = self.rule_for(key[0])
        drop = max(0, len(track.locations) - self.max_objects)
        if rule.max_age is not None:
            while drop < len(track.locations) and (
                now - track.objects[track.locations[drop]][1] > rule.max_age
            ):
                drop += 1
        if rule.max_groups is not None and track.largest is not None:
            oldest_group = track.largest.group - rule.max_groups + 1
            while drop < len(track.locations) and track.locations[drop].group < oldest_group:
                drop += 1
        freed = sum(_size(track.objects[loc][0]) for loc in track.locations[:drop])
        while self.bytes - freed > self.max_bytes and drop < len(track.locations) - 1:
            freed += _size(track.objects[track.locations[drop]][0])
            drop += 1
        for loc in track.locations[:drop]:
            self.bytes -= _size(track.objects.pop(loc)[0])
        del track.locations[:drop]


def _size(obj: ObjectData) -> int:
    """Bytes an object holds in the cache (payload and properties, roughly)."""
    return len(obj.payload) + 16 * len(obj.properties) + 64
