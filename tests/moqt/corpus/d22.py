"""draft-ietf-moq-transport-22 control messages, by hand.

Layouts: the -18 text for what did not change; the deltas file
(``moq-transport-deltas-19-22.md``) and the 2026-08 main text for what did:
- GOAWAY has no Request ID (-19);
- 0xF is PUBLISH_SKIPPED, same body as PUBLISH_BLOCKED (-19); 0x1E is reserved (-19);
- PUBLISH_STATE_NOTIFY = 0x22: Number of Parameters, Parameters (-20);
- FETCH = Request ID, Track Namespace, Track Name, Parameters; the range is LOCATION_FILTER
  with an inclusive end, no filter = {0, 0} to Largest Object (-20);
- FETCH_OK keeps its layout, End Location inclusive (-20);
- LOCATION_FILTER (0x21) value = Filter Type (vi64) + exactly that type's fields, no
  Length (-22): 0 none, 1 relative {StartGroup}, 2 absolute start {G, O}, 3 + EndGroupDelta,
  4 + EndObject, 5 next object;
- FILL_PARAMETERS (0x23) = Length, then a nested Number of Parameters + Parameters (-20);
- Range Filters 0x25-0x29 = Length, SetID (8), [Property Type (vi64) for 0x28/0x29],
  Start/End pairs: Start a delta from the previous End, End a delta from its Start (-19);
- INCLUDE_PROPERTIES (0x35) uint8 (-20); Setup Options 0x06 MAX_FILTER_RANGES and 0x08
  MAX_REQUEST_UPDATES (-19).
Varints, framing, parameters and namespaces are encoded as in -18 (see ``d18.py``).

FETCH and FETCH_OK values are moqmls's version-neutral ones: a FETCH range [start, end) with
draft-18's "end = last + 1, Object 0 = whole group" and `OPEN_END` for "up to Largest".
"""

from __future__ import annotations

from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location
from moqmls.moqt.objects import EndOfRange, FetchHeader, ObjectData
from moqmls.moqt.profile22 import OPEN_END, LocationFilter, RangeFilter

from . import Case

MESSAGES = [
    Case(
        "SETUP with MAX_FILTER_RANGES and MAX_REQUEST_UPDATES",
        m.Setup(((0x05, b"h:1"), (0x06, 4), (0x08, 0))),
        """
        AF 00 00 09 | Type 0x2F00, Length 9
        05 03 68 3A 31 | Delta 5 -> AUTHORITY (odd), "h:1"
        01 04      | Delta 1 -> 0x06 MAX_FILTER_RANGES (even) 4
        02 00      | Delta 2 -> 0x08 MAX_REQUEST_UPDATES 0 (no limit)
        """,
    ),
    Case(
        "GOAWAY: no Request ID from -19 on",
        m.Goaway(b"moqt://b", 2000),
        """
        10 00 0B   | Type 0x10, Length 11
        08 6D 6F 71 74 3A 2F 2F 62 | New Session URI "moqt://b"
        87 D0      | Timeout 2000
        """,
    ),
    Case(
        "SUBSCRIBE with an absolute-start LOCATION_FILTER {10, 0} and INCLUDE_PROPERTIES",
        m.Subscribe(
            0,
            (b"moq",),
            b"a",
            {
                "forward": 1,
                "subscription_filter": LocationFilter(2, 10, 0),
                "group_order": 1,
                "include_properties": 0,
            },
        ),
        """
        03 00 13   | Type 0x3, Length 19
        00         | Request ID 0
        01 03 6D 6F 71 | ("moq")
        01 61      | Track Name "a"
        04         | 4 parameters
        10 01      | 0x10 FORWARD 1
        11 02 0A 00 | Delta 0x11 -> 0x21 LOCATION_FILTER: Type 2 absolute start, {10, 0}
                   | (the -20 bytes are the same here: Length 2 = two one-byte fields)
        01 01      | Delta 1 -> 0x22 GROUP_ORDER 1
        13 00      | Delta 0x13 -> 0x35 INCLUDE_PROPERTIES 0
        """,
    ),
    Case(
        "SUBSCRIBE with absolute start {200, 0}: where -20 and -22 differ",
        m.Subscribe(2, (), b"", {"subscription_filter": LocationFilter(2, 200, 0)}),
        """
        03 00 09   | Type 0x3, Length 9
        02 00 00   | Request ID 2, empty namespace, empty name
        01         | 1 parameter
        21         | 0x21 LOCATION_FILTER
        02         | Type 2 absolute start (-20 would write Length 3 here)
        80 C8 00   | StartGroup 200, StartObject 0
        """,
    ),
    Case(
        "SUBSCRIBE with the next-object filter (type 5, no fields)",
        m.Subscribe(4, (), b"", {"subscription_filter": LocationFilter(5)}),
        """
        03 00 06   | Type 0x3, Length 6
        04 00 00   | Request ID 4, empty namespace, empty name
        01 21 05   | 1 parameter: 0x21 Type 5 next object (-20 wrote 02 00 00)
        """,
    ),
    Case(
        "SUBSCRIBE from the current group with FILL_PARAMETERS (subscribe and catch up)",
        m.Subscribe(
            6,
            (b"m",),
            b"t",
            {
                "subscription_filter": LocationFilter(1, 1),
                "fill_parameters": {
                    "fill_timeout": 100,
                    "subscription_filter": LocationFilter(3, 0, 0, 2),
                },
            },
        ),
        """
        03 00 14   | Type 0x3, Length 20
        06         | Request ID 6
        01 01 6D   | ("m")
        01 74      | Track Name "t"
        02         | 2 parameters
        21 01 01   | 0x21 LOCATION_FILTER Type 1 relative, StartGroup 1 = the current group
        02         | Delta 2 -> 0x23 FILL_PARAMETERS
        08         | Length 8
        02         | nested: 2 parameters
        0A 64      | 0x0A FILL_TIMEOUT 100
        17 03 00 00 02 | Delta 0x17 -> 0x21: Type 3, {0, 0}, EndGroupDelta 2 (groups 0..2)
        """,
    ),
    Case(
        "SUBSCRIBE with Range Filters, one of them repeated with another SetID",
        m.Subscribe(
            8,
            (),
            b"",
            {
                "subgroup_filter": (
                    RangeFilter(0, ((3, 5), (10, 15))),
                    RangeFilter(1, ((7, None),)),
                ),
                "object_property_filter": (RangeFilter(0, ((1, 1),), 0x3C),),
            },
        ),
        """
        03 00 15   | Type 0x3, Length 21
        08 00 00   | Request ID 8, empty namespace, empty name
        03         | 3 parameters
        25 05 00 03 02 05 05 | 0x25 SUBGROUP_FILTER, Length 5, SetID 0, 3-5 (3, +2), 10-15 (+5, +5)
        00 02 01 07 | Delta 0 -> 0x25 again, Length 2, SetID 1, from 7 with no End
        03 04 00 3C 01 00 | Delta 3 -> 0x28 OBJECT_PROPERTY_FILTER, Length 4, SetID 0,
                   | Property Type 0x3C, range 1-1
        """,
    ),
    Case(
        "SUBSCRIBE_OK",
        m.SubscribeOk(1, {"largest_object": Location(2, 3)}),
        """
        04 00 05   | Type 0x4, Length 5
        01         | Track Alias 1
        01 09 02 03 | 1 parameter: 0x09 LARGEST_OBJECT {2, 3}; no Track Properties
        """,
    ),
    Case(
        "PUBLISH_STATE_NOTIFY",
        m.PublishStateNotify(
            {
                "largest_object": Location(4, 1),
                "forward": 0,
                "subscription_filter": LocationFilter(2, 5, 0),
            }
        ),
        """
        22 00 0A   | Type 0x22 (one byte), Length 10
        03         | 3 parameters
        09 04 01   | 0x09 LARGEST_OBJECT {4, 1}
        07 00      | Delta 7 -> 0x10 FORWARD 0
        11 02 05 00 | Delta 0x11 -> 0x21 LOCATION_FILTER Type 2, {5, 0}
        """,
    ),
    Case(
        "PUBLISH with an absolute-range LOCATION_FILTER",
        m.Publish(
            1,
            (b"n",),
            b"t",
            5,
            {"forward": 1, "subscription_filter": LocationFilter(4, 1, 0, 0, 9)},
        ),
        """
        1D 00 10   | Type 0x1D, Length 16
        01         | Request ID 1
        01 01 6E   | ("n")
        01 74      | Track Name "t"
        05         | Track Alias 5
        02         | 2 parameters
        10 01      | 0x10 FORWARD 1
        11 04 01 00 00 09 | 0x21 Type 4: {1, 0} to {1 + 0, 9} inclusive
        """,
    ),
    Case(
        "PUBLISH_DONE (unchanged)",
        m.PublishDone(0x2, 3, "bye"),
        """
        0B 00 06 02 03 03 62 79 65 | Type 0xB, Length 6, TRACK_ENDED, 3 streams, "bye"
        """,
    ),
    Case(
        "FETCH of {0, 1} through the whole of group 2",
        m.Fetch(
            4,
            1,
            (b"a", b"b"),
            b"c",
            Location(0, 1),
            Location(2, 0),
            params={"subscriber_priority": 7},
        ),
        """
        16 00 10   | Type 0x16, Length 16
        04         | Request ID 4 (no Fetch Type from -20 on)
        02 01 61 01 62 | ("a", "b")
        01 63      | Track Name "c"
        02         | 2 parameters
        20 07      | 0x20 SUBSCRIBER_PRIORITY 7
        01 03 00 01 02 | Delta 1 -> 0x21 Type 3: start {0, 1}, EndGroupDelta 2 (all of group 2)
        """,
    ),
    Case(
        "FETCH of {0, 1} to {0, 2}: the draft-18 end {0, 3} becomes inclusive {0, 2}",
        m.Fetch(6, 1, (b"a",), b"c", Location(0, 1), Location(0, 3)),
        """
        16 00 0D   | Type 0x16, Length 13
        06 01 01 61 01 63 | Request ID 6, ("a"), "c"
        01         | 1 parameter
        21 04 00 01 00 02 | 0x21 Type 4: {0, 1} to {0 + 0, 2}
        """,
    ),
    Case(
        "FETCH of the whole track: no filter",
        m.Fetch(8, 1, (b"a",), b"c", Location(0, 0), OPEN_END),
        """
        16 00 07   | Type 0x16, Length 7
        08 01 01 61 01 63 | Request ID 8, ("a"), "c"
        00         | 0 parameters: {0, 0} up to Largest Object
        """,
    ),
    Case(
        "FETCH from {200, 0} up to Largest Object",
        m.Fetch(10, 1, (b"a",), b"c", Location(200, 0), OPEN_END),
        """
        16 00 0C   | Type 0x16, Length 12
        0A 01 01 61 01 63 | Request ID 10, ("a"), "c"
        01 21 02 80 C8 00 | 1 parameter: 0x21 Type 2 absolute start {200, 0}
        """,
    ),
    Case(
        "FETCH_OK: inclusive End Location {2, 4} (draft-18 value {2, 5})",
        m.FetchOk(0, Location(2, 5)),
        """
        18 00 04   | Type 0x18, Length 4
        00         | End Of Track 0
        02 04      | End Location {2, 4}, the last Object
        00         | 0 parameters; no Track Properties
        """,
    ),
    Case(
        "FETCH_OK covering all of group 4: inclusive {4, 2^62-1} (draft-18 value {4, 0})",
        m.FetchOk(1, Location(4, 0)),
        """
        18 00 0C   | Type 0x18, Length 12
        01         | End Of Track 1
        04         | End Location Group 4
        FF 3F FF FF FF FF FF FF FF | Object 2^62-1 = 0x3FFF_FFFF_FFFF_FFFF: nine bytes, prefix FF
                   | (moqmls's "end of group"; 2^64-1 would exceed moq-rs's varint range)
        00         | 0 parameters
        """,
    ),
    Case(
        "TRACK_STATUS with INCLUDE_PROPERTIES 0",
        m.TrackStatus(10, (b"x",), b"y", {"include_properties": 0}),
        """
        0D 00 09   | Type 0xD, Length 9
        0A 01 01 78 01 79 | Request ID 10, ("x"), "y"
        01 35 00   | 1 parameter: 0x35 INCLUDE_PROPERTIES 0
        """,
    ),
    Case(
        "PUBLISH_NAMESPACE (unchanged)",
        m.PublishNamespace(12, (b"chat", b"room1"), {}),
        """
        06 00 0E 0C | Type 0x6, Length 14, Request ID 12
        02 04 63 68 61 74 05 72 6F 6F 6D 31 | ("chat", "room1")
        00         | 0 parameters
        """,
    ),
    Case(
        "SUBSCRIBE_NAMESPACE (unchanged)",
        m.SubscribeNamespace(14, (b"chat",), {}),
        """
        50 00 08 0E | Type 0x50, Length 8, Request ID 14
        01 04 63 68 61 74 00 | ("chat"), 0 parameters
        """,
    ),
    Case(
        "SUBSCRIBE_TRACKS with a TRACK_PROPERTY_FILTER",
        m.SubscribeTracks(
            16, (b"g",), {"forward": 1, "track_property_filter": (RangeFilter(0, ((2, 2),), 0x30),)}
        ),
        """
        51 00 0D   | Type 0x51, Length 13
        10 01 01 67 | Request ID 16, ("g")
        02         | 2 parameters
        10 01      | 0x10 FORWARD 1
        19 04 00 30 02 00 | Delta 0x19 -> 0x29: Length 4, SetID 0, Property Type 0x30, range 2-2
        """,
    ),
    Case(
        "NAMESPACE (unchanged)",
        m.NamespaceMsg((b"bob",)),
        """
        08 00 05 01 03 62 6F 62 | Type 0x8, Length 5, suffix ("bob")
        """,
    ),
    Case(
        "NAMESPACE_DONE (unchanged)",
        m.NamespaceDone((b"bob",)),
        """
        0E 00 05 01 03 62 6F 62 | Type 0xE, Length 5, suffix ("bob")
        """,
    ),
    Case(
        "PUBLISH_SKIPPED (0xF, the body of -18's PUBLISH_BLOCKED)",
        m.PublishBlocked((b"s1",), b"t1"),
        """
        0F 00 07   | Type 0xF, Length 7
        01 02 73 31 02 74 31 | suffix ("s1"), Track Name "t1"
        """,
    ),
    Case(
        "REQUEST_UPDATE removing the Location Filter and a Range Filter",
        m.RequestUpdate(
            18, {"forward": 0, "subscription_filter": LocationFilter(0), "subgroup_filter": (None,)}
        ),
        """
        02 00 08   | Type 0x2, Length 8
        12         | Request ID 18
        03         | 3 parameters
        10 00      | 0x10 FORWARD 0
        11 00      | 0x21 LOCATION_FILTER Type 0: no filter
        04 00      | Delta 4 -> 0x25 SUBGROUP_FILTER with Length 0: removed
        """,
    ),
    Case(
        "REQUEST_OK (PUBLISH_OK: EXPIRES only)",
        m.RequestOk({"expires": 0}),
        """
        07 00 03   | Type 0x7, Length 3
        01 08 00   | 1 parameter: 0x08 EXPIRES 0
        """,
    ),
    Case(
        "REQUEST_ERROR INVALID_FILTER",
        m.RequestErrorMsg(0x36, 0, ""),
        """
        05 00 03   | Type 0x5, Length 3
        36 00 00   | Error Code 0x36 INVALID_FILTER, Retry Interval 0, empty reason
        """,
    ),
]

# Encoded only: draft-18 values with fields that -22 no longer carries.
ENCODE_ONLY = [
    Case(
        "a server's GOAWAY Request ID is not written",
        m.Goaway(b"", 0, 4),
        """
        10 00 02 00 00 | Type 0x10, Length 2, empty URI, Timeout 0
        """,
    ),
    Case(
        "FORWARD in a PUBLISH_OK (REQUEST_OK) is not written: -20 carries only EXPIRES",
        m.RequestOk({"forward": 1}),
        """
        07 00 01 00 | Type 0x7, Length 1, 0 parameters
        """,
    ),
]

REFUSED = [
    # -19 made 0x1E reserved: an unknown type
    ("0x1E PUBLISH_OK", "1E 00 01 00"),
    # -22: a Location Filter Type above 5
    ("location filter type 6", "03 00 06 00 00 00 01 21 06"),
    # the -20 encoding of absolute start {200, 0} (Length 3) read as -22: Type 3 wants a third field
    ("-20 length-prefixed filter", "03 00 09 02 00 00 01 21 03 80 C8 00"),
    # INCLUDE_PROPERTIES outside 0..1
    ("INCLUDE_PROPERTIES 2", "0D 00 06 00 00 00 01 35 02"),
    # -18's trailing GOAWAY Request ID is now trailing data
    ("GOAWAY with a Request ID", "10 00 03 00 00 04"),
    # FORWARD is not a REQUEST_OK parameter in -22
    ("FORWARD in REQUEST_OK", "07 00 03 01 10 01"),
    # a Range Filter whose End (Start 2^64-1, End delta 1) overflows 2^64-1
    ("range overflow", "03 00 11 00 00 00 01 25 0B 00 FF FF FF FF FF FF FF FF FF 01"),
]

# -20 added a third End of Range marker; decoded only (our encoder writes no markers).
FETCH_STREAM_TIMED_OUT = Case(
    "FETCH stream with an End of Timed-Out Range marker",
    (
        FetchHeader(7),
        ObjectData(2, 0, b"a", (), 0, 5),
        EndOfRange(4, 3, False, True),
        ObjectData(4, 5, b"", (), 0, 5),
    ),
    """
    05 07      | FETCH_HEADER, Request ID 7
    1C         | Flags 0x1C: Group ID Delta, Object ID Delta, Priority; Subgroup 0;
               | no Properties
    02 00      | Group 2, Object 0
    05         | Priority 5
    01 61      | Payload Length 1, "a"
    82 0C      | Flags 0x20C End of Timed-Out Range: vi64 524 = 0x020C, two bytes
               | (prefix 10, 14 value bits 00 0010 0000 1100)
    04 03      | up to {4, 3}
    04         | Flags 0x04: Object ID Delta present; group 4 and Priority 5 from the priors
    02         | Object ID = prior Object (3, from the marker) + 2 = 5
    00         | Payload Length 0
    """,
)
