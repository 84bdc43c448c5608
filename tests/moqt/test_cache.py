"""The relay object cache (§8.1) with retention per namespace suffix; time is passed in."""

from __future__ import annotations

import pytest

from moqmls.moqt.cache import ObjectCache, RetentionRule, parse_retention
from moqmls.moqt.codec import Location
from moqmls.moqt.errors import MoQTError
from moqmls.moqt.objects import ObjectData

KP = ((b"g", b"keypackage"), b"alice")
COMMIT = ((b"g", b"commit"), b"bob")
MEDIA = ((b"g", b"media"), b"cam")


def obj(group: int, oid: int = 0) -> ObjectData:
    return ObjectData(group, oid, b"%d.%d" % (group, oid))


def test_parse_retention() -> None:
    assert parse_retention("keypackage=6h") == RetentionRule((b"keypackage",), 21600.0, None)
    assert parse_retention("g/commit=90s,groups:8") == RetentionRule((b"g", b"commit"), 90.0, 8)
    assert parse_retention("welcome=-") == RetentionRule((b"welcome",), None, None)
    with pytest.raises(MoQTError):
        parse_retention("x=groups:many")


def test_longest_suffix_wins_and_default_applies() -> None:
    cache = ObjectCache(
        [RetentionRule((b"keypackage",), 3600.0), RetentionRule((b"g", b"keypackage"), 7200.0)],
        default_max_age=60.0,
    )
    assert cache.rule_for(KP[0]).max_age == 7200.0
    assert cache.rule_for((b"other", b"keypackage")).max_age == 3600.0
    assert cache.rule_for(MEDIA[0]).max_age == 60.0


def test_age_retention_per_suffix() -> None:
    cache = ObjectCache([RetentionRule((b"keypackage",), 6 * 3600.0)], default_max_age=600.0)
    cache.put(KP, obj(0), now=0.0)
    cache.put(MEDIA, obj(0), now=0.0)
    # after 10 minutes + 1 s the media object is gone, the KeyPackage stays for hours
    assert cache.range(MEDIA, Location(0, 0), Location(0, 0), now=601.0) == []
    assert cache.range(KP, Location(0, 0), Location(0, 0), now=601.0) == [obj(0)]
    assert cache.range(KP, Location(0, 0), Location(0, 0), now=6 * 3600.0 + 1) == []
    # the largest location survives expiry (§9.2.11 LARGEST_OBJECT)
    assert cache.largest(KP) == Location(0, 0)


def test_group_count_retention_keeps_newest_epochs() -> None:
    cache = ObjectCache([RetentionRule((b"commit",), None, 3)], default_max_age=None)
    for epoch in range(10):
        cache.put(COMMIT, obj(epoch), now=float(epoch))
    kept = cache.range(COMMIT, Location(0, 0), Location(100, 0), now=100.0)
    assert [o.group_id for o in kept] == [7, 8, 9]
    assert cache.earliest(COMMIT, now=100.0) == Location(7, 0)


def test_duplicates_are_ignored_and_order_is_by_location() -> None:
    cache = ObjectCache(default_max_age=None)
    assert cache.put(MEDIA, obj(2, 1), 0.0)
    assert cache.put(MEDIA, obj(1, 5), 0.0)
    assert cache.put(MEDIA, obj(2, 0), 0.0)
    assert not cache.put(MEDIA, ObjectData(2, 0, b"different"), 0.0)
    got = cache.range(MEDIA, Location(0, 0), Location(3, 0), 0.0)
    assert [(o.group_id, o.object_id) for o in got] == [(1, 5), (2, 0), (2, 1)]
    assert got[1].payload == b"2.0"  # the first copy stays


def test_fetch_range_end_semantics() -> None:
    cache = ObjectCache(default_max_age=None)
    for g in range(3):
        for o in range(3):
            cache.put(MEDIA, obj(g, o), 0.0)
    # End Location {1, 2} = up to object 1 of group 1; {1, 0} = all of group 1 (§9.14.1)
    assert [
        (o.group_id, o.object_id) for o in cache.range(MEDIA, Location(0, 2), Location(1, 2), 0.0)
    ] == [(0, 2), (1, 0), (1, 1)]
    assert [
        (o.group_id, o.object_id) for o in cache.range(MEDIA, Location(1, 0), Location(1, 0), 0.0)
    ] == [(1, 0), (1, 1), (1, 2)]


def test_max_objects_per_track() -> None:
    cache = ObjectCache(default_max_age=None, max_objects_per_track=5)
    for g in range(8):
        cache.put(MEDIA, obj(g), 0.0)
    assert [o.group_id for o in cache.range(MEDIA, Location(0, 0), Location(9, 0), 0.0)] == [
        3,
        4,
        5,
        6,
        7,
    ]


def test_byte_budget_evicts_the_growing_tracks_own_objects() -> None:
    big = 1000
    cache = ObjectCache(default_max_age=None, max_bytes=10 * (big + 64))
    for g in range(4):
        cache.put(KP, ObjectData(g, 0, b"k" * big), 0.0)
    for g in range(20):  # a flooding track
        cache.put(MEDIA, ObjectData(g, 0, b"m" * big), 0.0)
    assert cache.bytes <= cache.max_bytes
    # the KeyPackages survive; the flood keeps only its newest objects
    assert len(cache.range(KP, Location(0, 0), Location(9, 0), 0.0)) == 4
    assert [o.group_id for o in cache.range(MEDIA, Location(0, 0), Location(99, 0), 0.0)] == [
        14,
        15,
        16,
        17,
        18,
        19,
    ]
