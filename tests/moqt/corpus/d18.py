"""draft-ietf-moq-transport-18: control messages (§9) and data streams (§10), by hand.

Conventions used in the derivations:
- vi64 (§1.4.1): values < 0x80 are one byte; 0x80..0x3FFF are two bytes with the
  prefix 10, so 200 = 0x00C8 -> 80 C8 and 1000 = 0x03E8 -> 83 E8; 0x4000..0x1FFFFF are
  three bytes with the prefix 110, so 30000 = 0x007530 -> C0 75 30.
- A control message is Type (vi64), Length (16 bits, big-endian), Payload (§9).
- Message Parameters (§9.2): a count, then per parameter its Type as a delta from the
  previous Type and a value whose encoding the parameter defines.
- Track Namespace (§2.4.1): field count, then Length + bytes per field.
- Key-Value-Pairs (§1.4.3): delta type; even types carry one vi64, odd ones Length + bytes.
"""

from __future__ import annotations

from moqmls.moqt import messages as m
from moqmls.moqt.codec import Location, SubscriptionFilter
from moqmls.moqt.objects import EndOfRange, FetchHeader, ObjectData, SubgroupHeader

from . import Case

TOKEN = b"\x03\x00tk"  # Token (§9.2.2): Alias Type USE_VALUE 0x3, Token Type 0, Value "tk"

MESSAGES = [
    Case(
        "SETUP with PATH, MAX_AUTH_TOKEN_CACHE_SIZE, AUTHORITY, MOQT_IMPLEMENTATION",
        m.Setup(((0x01, b"/x"), (0x04, 200), (0x05, b"h:1"), (0x07, b"m"))),
        """
        AF 00      | Type 0x2F00: 14 bits, prefix 10 -> 0x80|0x2F, 0x00
        00 0F      | Length 15
        01         | Delta Type 1 -> PATH (0x01, odd: Length + bytes)
        02 2F 78   | Length 2, "/x"
        03         | Delta 3 -> 0x04 MAX_AUTH_TOKEN_CACHE_SIZE (even: one vi64)
        80 C8      | 200
        01         | Delta 1 -> 0x05 AUTHORITY (odd)
        03 68 3A 31 | Length 3, "h:1"
        02         | Delta 2 -> 0x07 MOQT_IMPLEMENTATION (odd)
        01 6D      | Length 1, "m"
        """,
    ),
    Case(
        "GOAWAY from a server, with the trailing Request ID",
        m.Goaway(b"moqt://b", 2000, 4),
        """
        10         | Type 0x10
        00 0C      | Length 12
        08         | New Session URI Length 8
        6D 6F 71 74 3A 2F 2F 62 | "moqt://b"
        87 D0      | Timeout 2000 = 0x07D0 -> 0x80|0x07, 0xD0
        04         | Request ID 4 (present only on the control stream)
        """,
    ),
    Case(
        "GOAWAY from a client: empty URI, no Request ID",
        m.Goaway(b"", 0, None),
        """
        10 00 02   | Type 0x10, Length 2
        00         | New Session URI Length 0
        00         | Timeout 0
        """,
    ),
    Case(
        "SUBSCRIBE with every SUBSCRIBE parameter of the -18 table",
        m.Subscribe(
            0,
            (b"moq", b"chat"),
            b"alice",
            {
                "object_delivery_timeout": 1000,
                "authorization_token": TOKEN,
                "rendezvous_timeout": 500,
                "subgroup_delivery_timeout": 50,
                "forward": 1,
                "subscriber_priority": 128,
                "subscription_filter": SubscriptionFilter(3, Location(5, 0)),
                "group_order": 2,
                "new_group_request": 0,
            },
        ),
        """
        03         | Type 0x3
        00 2D      | Length 45 = 17 (id, namespace, name) + 28 (parameters)
        00         | Request ID 0
        02         | Track Namespace: 2 fields
        03 6D 6F 71 | Length 3, "moq"
        04 63 68 61 74 | Length 4, "chat"
        05 61 6C 69 63 65 | Track Name Length 5, "alice"
        09         | Number of Parameters 9
        02 83 E8   | Delta 2 -> 0x02 OBJECT_DELIVERY_TIMEOUT varint 1000
        01 04 03 00 74 6B | Delta 1 -> 0x03 AUTHORIZATION TOKEN, Length 4, Token
        01 81 F4   | Delta 1 -> 0x04 RENDEZVOUS_TIMEOUT varint 500 = 0x01F4
        02 32      | Delta 2 -> 0x06 SUBGROUP_DELIVERY_TIMEOUT varint 50
        0A 01      | Delta 10 -> 0x10 FORWARD uint8 1
        10 80      | Delta 16 -> 0x20 SUBSCRIBER_PRIORITY uint8 128 (one byte, not a vi64)
        01 03 03 05 00 | Delta 1 -> 0x21 SUBSCRIPTION_FILTER, Length 3: AbsoluteStart, {5, 0}
        01 02      | Delta 1 -> 0x22 GROUP_ORDER uint8 2 (Descending)
        10 00      | Delta 16 -> 0x32 NEW_GROUP_REQUEST varint 0
        """,
    ),
    Case(
        "SUBSCRIBE, empty namespace and name, Largest Object filter",
        m.Subscribe(2, (), b"", {"subscription_filter": SubscriptionFilter(2)}),
        """
        03 00 07   | Type 0x3, Length 7
        02         | Request ID 2
        00         | Track Namespace: 0 fields
        00         | Track Name Length 0
        01         | 1 parameter
        21 01 02   | 0x21 SUBSCRIPTION_FILTER, Length 1: Filter Type 0x2 Largest Object
        """,
    ),
    Case(
        "SUBSCRIBE_OK with EXPIRES, LARGEST_OBJECT and Track Properties",
        m.SubscribeOk(
            7, {"expires": 30000, "largest_object": Location(3, 200)}, ((0x02, 100), (0x0B, b"ab"))
        ),
        """
        04 00 10   | Type 0x4, Length 16
        07         | Track Alias 7
        02         | 2 parameters
        08 C0 75 30 | Delta 8 -> 0x08 EXPIRES varint 30000 (three bytes, prefix 110)
        01 03 80 C8 | Delta 1 -> 0x09 LARGEST_OBJECT Location {3, 200}
        02 64      | Track Properties: Delta 2 -> type 0x02 (even) value 100
        09 02 61 62 | Delta 9 -> type 0x0B (odd), Length 2, "ab"
        """,
    ),
    Case(
        "PUBLISH",
        m.Publish(
            3, (b"n",), b"t", 300, {"largest_object": Location(1, 2), "forward": 1}, ((0x04, 0),)
        ),
        """
        1D 00 10   | Type 0x1D, Length 16
        03         | Request ID 3
        01 01 6E   | Track Namespace: 1 field, Length 1, "n"
        01 74      | Track Name Length 1, "t"
        81 2C      | Track Alias 300 = 0x012C
        02         | 2 parameters
        09 01 02   | Delta 9 -> 0x09 LARGEST_OBJECT {1, 2}
        07 01      | Delta 7 -> 0x10 FORWARD 1
        04 00      | Track Properties: type 0x04 (even) value 0
        """,
    ),
    Case(
        "PUBLISH_OK (0x1E in the -18 message table)",
        m.PublishOk({"subscriber_priority": 1, "group_order": 1}),
        """
        1E 00 05   | Type 0x1E, Length 5
        02         | 2 parameters
        20 01      | 0x20 SUBSCRIBER_PRIORITY 1
        02 01      | Delta 2 -> 0x22 GROUP_ORDER 1 (Ascending); no Track Properties
        """,
    ),
    Case(
        "PUBLISH_DONE",
        m.PublishDone(0x2, 3, "bye"),
        """
        0B 00 06   | Type 0xB, Length 6
        02         | Status Code 0x2 TRACK_ENDED
        03         | Stream Count 3
        03 62 79 65 | Reason Phrase Length 3, "bye"
        """,
    ),
    Case(
        "FETCH, Standalone (type 0x1)",
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
        04         | Request ID 4
        01         | Fetch Type 0x1 Standalone
        02 01 61 01 62 | Track Namespace ("a", "b")
        01 63      | Track Name "c"
        00 01      | Start Location {0, 1}
        02 00      | End Location {2, 0}: Object 0 = the whole of group 2
        01 20 07   | 1 parameter: 0x20 SUBSCRIBER_PRIORITY 7
        """,
    ),
    Case(
        "FETCH, Relative Joining (type 0x2)",
        m.Fetch(6, 2, joining_request_id=0, joining_start=1),
        """
        16 00 05   | Type 0x16, Length 5
        06 02      | Request ID 6, Fetch Type 0x2
        00 01      | Joining Request ID 0, Joining Start 1
        00         | 0 parameters
        """,
    ),
    Case(
        "FETCH, Absolute Joining (type 0x3)",
        m.Fetch(8, 3, joining_request_id=2, joining_start=200),
        """
        16 00 06   | Type 0x16, Length 6
        08 03      | Request ID 8, Fetch Type 0x3
        02 80 C8   | Joining Request ID 2, Joining Start 200
        00         | 0 parameters
        """,
    ),
    Case(
        "FETCH_OK",
        m.FetchOk(1, Location(4, 0), {}, ((0x06, 9),)),
        """
        18 00 06   | Type 0x18, Length 6
        01         | End Of Track (8 bits) 1
        04 00      | End Location {4, 0}
        00         | 0 parameters
        06 09      | Track Properties: type 0x06 value 9
        """,
    ),
    Case(
        "TRACK_STATUS (same layout as SUBSCRIBE)",
        m.TrackStatus(10, (b"x",), b"y", {}),
        """
        0D 00 07   | Type 0xD, Length 7
        0A         | Request ID 10
        01 01 78   | Track Namespace ("x")
        01 79      | Track Name "y"
        00         | 0 parameters
        """,
    ),
    Case(
        "PUBLISH_NAMESPACE",
        m.PublishNamespace(12, (b"chat", b"room1"), {}),
        """
        06 00 0E   | Type 0x6, Length 14
        0C         | Request ID 12
        02 04 63 68 61 74 05 72 6F 6F 6D 31 | ("chat", "room1")
        00         | 0 parameters
        """,
    ),
    Case(
        "NAMESPACE",
        m.NamespaceMsg((b"bob",)),
        """
        08 00 05   | Type 0x8, Length 5
        01 03 62 6F 62 | Track Namespace Suffix ("bob")
        """,
    ),
    Case(
        "NAMESPACE_DONE",
        m.NamespaceDone((b"bob",)),
        """
        0E 00 05   | Type 0xE, Length 5
        01 03 62 6F 62 | Track Namespace Suffix ("bob")
        """,
    ),
    Case(
        "SUBSCRIBE_NAMESPACE with an AUTHORIZATION TOKEN",
        m.SubscribeNamespace(14, (b"chat",), {"authorization_token": TOKEN}),
        """
        50 00 0E   | Type 0x50, Length 14
        0E         | Request ID 14
        01 04 63 68 61 74 | Prefix ("chat")
        01         | 1 parameter
        03 04 03 00 74 6B | 0x03 AUTHORIZATION TOKEN, Length 4, Token
        """,
    ),
    Case(
        "SUBSCRIBE_TRACKS with an empty prefix and FORWARD 0",
        m.SubscribeTracks(16, (), {"forward": 0}),
        """
        51 00 05   | Type 0x51 (one byte: < 0x80), Length 5
        10         | Request ID 16
        00         | Prefix: 0 fields
        01 10 00   | 1 parameter: 0x10 FORWARD 0
        """,
    ),
    Case(
        "PUBLISH_BLOCKED",
        m.PublishBlocked((b"s1",), b"t1"),
        """
        0F 00 07   | Type 0xF, Length 7
        01 02 73 31 | Suffix ("s1")
        02 74 31   | Track Name "t1"
        """,
    ),
    Case(
        "REQUEST_UPDATE of a subscription: FORWARD and an AbsoluteRange filter",
        m.RequestUpdate(
            18, {"forward": 0, "subscription_filter": SubscriptionFilter(4, Location(10, 0), 2)}
        ),
        """
        02 00 0A   | Type 0x2, Length 10
        12         | Request ID 18
        02         | 2 parameters
        10 00      | 0x10 FORWARD 0
        11 04 04 0A 00 02 | Delta 0x11 -> 0x21, Length 4: AbsoluteRange, {10, 0}, End Group Delta 2
        """,
    ),
    Case(
        "REQUEST_UPDATE of a subscription: Next Group Start filter",
        m.RequestUpdate(22, {"subscription_filter": SubscriptionFilter(1)}),
        """
        02 00 05   | Type 0x2, Length 5
        16         | Request ID 22
        01         | 1 parameter
        21 01 01   | 0x21, Length 1: Filter Type 0x1 Next Group Start
        """,
    ),
    Case(
        "REQUEST_UPDATE of a SUBSCRIBE_NAMESPACE: TRACK_NAMESPACE_PREFIX",
        m.RequestUpdate(20, {"track_namespace_prefix": (b"new",)}),
        """
        02 00 08   | Type 0x2, Length 8
        14         | Request ID 20
        01         | 1 parameter
        34         | 0x34 TRACK_NAMESPACE_PREFIX (Track Namespace encoding, §9.2.14)
        01 03 6E 65 77 | 1 field, "new"
        """,
    ),
    Case(
        "REQUEST_OK with EXPIRES and LARGEST_OBJECT",
        m.RequestOk({"expires": 0, "largest_object": Location(0, 5)}),
        """
        07 00 06   | Type 0x7, Length 6
        02         | 2 parameters
        08 00      | 0x08 EXPIRES 0
        01 00 05   | Delta 1 -> 0x09 LARGEST_OBJECT {0, 5}; no Track Properties
        """,
    ),
    Case(
        "REQUEST_ERROR",
        m.RequestErrorMsg(0x10, 0, "no"),
        """
        05 00 05   | Type 0x5, Length 5
        10         | Error Code 0x10 DOES_NOT_EXIST
        00         | Retry Interval 0
        02 6E 6F   | Reason "no"
        """,
    ),
    Case(
        "REQUEST_ERROR with a Redirect (code 0x34)",
        m.RequestErrorMsg(0x34, 1000, "", m.Redirect(b"moqt://r", (b"a",), b"b")),
        """
        05 00 12   | Type 0x5, Length 18
        34         | Error Code 0x34 REDIRECT
        83 E8      | Retry Interval 1000
        00         | Reason Phrase Length 0
        08 6D 6F 71 74 3A 2F 2F 72 | Connect URI "moqt://r"
        01 01 61   | Track Namespace ("a")
        01 62      | Track Name "b"
        """,
    ),
]

# --- data streams (§10.4) -----------------------------------------------------------

SUBGROUP_HEADERS = [
    Case(
        "SUBGROUP_HEADER 0x10: no properties, Subgroup ID 0, priority present",
        SubgroupHeader(1, 5, 0, 128, False, False, False),
        """
        10         | Type 0x10: PROPERTIES 0, SUBGROUP_ID_MODE 0b00, DEFAULT_PRIORITY 0
        01         | Track Alias 1
        05         | Group ID 5
        80         | Publisher Priority (8 bits) 128
        """,
    ),
    Case(
        "SUBGROUP_HEADER 0x15: properties, Subgroup ID field present",
        SubgroupHeader(2, 200, 3, 64, True, False, False),
        """
        15         | Type 0x15 = 0x10 | 0x04 (mode 0b10) | 0x01 (PROPERTIES)
        02         | Track Alias 2
        80 C8      | Group ID 200
        03         | Subgroup ID 3
        40         | Publisher Priority 64
        """,
    ),
    Case(
        "SUBGROUP_HEADER 0x7B: first object, default priority, end of group, mode 0b01",
        SubgroupHeader(0, 0, None, None, True, True, True),
        """
        7B         | 0x40 FIRST_OBJECT + 0x20 DEFAULT_PRIORITY + 0x10 + 0x08 END_OF_GROUP
                   | + 0x02 (SUBGROUP_ID_MODE 0b01) + 0x01 PROPERTIES
        00         | Track Alias 0
        00         | Group ID 0 (no Subgroup ID field, no Priority field)
        """,
    ),
]

# A whole SUBGROUP stream: header 0x15 above, then two objects.
SUBGROUP_STREAM = Case(
    "SUBGROUP stream with a properties object and an End of Group status object",
    (
        SubgroupHeader(2, 200, 3, 64, True, False, False),
        ObjectData(200, 0, b"hi", ((0x02, 1),), 3, 64, 0),
        ObjectData(200, 2, b"", (), 3, 64, 0x3),
    ),
    """
    15 02 80 C8 03 40 | SUBGROUP_HEADER as above
    00         | Object ID Delta 0 -> Object 0 (first object: the delta is the ID)
    02 02 01   | Properties Length 2: type 0x02 value 1
    02 68 69   | Object Payload Length 2, "hi"
    01         | Object ID Delta 1 -> 0 + 1 + 1 = Object 2
    00         | Properties Length 0
    00         | Object Payload Length 0, so Object Status follows
    03         | Object Status 0x3 End of Group
    """,
)

FETCH_STREAM = Case(
    "FETCH stream: explicit first object, then objects that lean on the prior one",
    (
        FetchHeader(4),
        ObjectData(1, 2, b"x", (), 0, 128),
        ObjectData(1, 3, b"y", (), 0, 128),
        ObjectData(3, 0, b"z", (), 0, 128),
    ),
    """
    05 04      | FETCH_HEADER: Type 0x5, Request ID 4
    3F         | Flags 0x3F: Subgroup ID field (0x03), Object ID Delta (0x04),
               | Group ID Delta (0x08), Priority (0x10), Properties (0x20)
    01         | Group ID Delta 1 = Group 1 (first object: the deltas are absolute)
    00 02      | Subgroup ID 0, Object ID Delta 2 = Object 2
    80 00      | Priority 128, Properties Length 0
    01 78      | Payload Length 1, "x"
    33         | Flags 0x33: no Group ID Delta (group 1), no Object ID Delta (2 + 1 = 3)
    00 80 00   | Subgroup 0, Priority 128, Properties Length 0
    01 79      | "y"
    3F         | Flags 0x3F again
    01         | Group ID Delta 1 -> 1 + 1 + 1 = Group 3 (ascending)
    00 00      | Subgroup 0; Object ID Delta 0 -> Object 0 (with a Group ID Delta it is absolute)
    80 00 01 7A | Priority 128, no properties, "z"
    """,
)

# Decoded only: compact flags and End of Range markers that our encoder never writes.
FETCH_STREAM_COMPACT = Case(
    "FETCH stream with compact flags and End of Range markers",
    (
        FetchHeader(9),
        ObjectData(3, 0, b"z", (), 0, 7),
        ObjectData(3, 1, b"w", (), 0, 7),
        EndOfRange(5, 0, True),
        ObjectData(5, 2, b"", (), 0, 7),
        EndOfRange(6, 4, False),
    ),
    """
    05 09      | FETCH_HEADER, Request ID 9
    1C         | Flags 0x1C: Group ID Delta, Object ID Delta, Priority;
               | subgroup bits 0b00 (Subgroup 0); no Properties
    03 00      | Group 3, Object 0
    07         | Priority 7
    01 7A      | "z"
    00         | Flags 0x00: same group, Object 0 + 1, prior Priority, Subgroup 0
    01 77      | "w"
    81 0C      | Flags 0x10C End of Unknown Range (vi64 268 = 0x010C, two bytes)
    05 00      | up to {5, 0}
    04         | Flags 0x04: Object ID Delta present; group and priority from the prior entries
    02         | Object ID = prior Object (0, from the marker) + 2 = 2
    00         | Payload Length 0
    80 8C      | Flags 0x8C End of Non-Existent Range (vi64 140)
    06 04      | up to {6, 4}
    """,
)

PADDING_STREAM = """
F0 13 2B 3E 28 | Type 0x132B3E28: 29 bits, five bytes with prefix 11110
00 00 00   | Padding Data, all zero
"""
