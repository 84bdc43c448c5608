"""The draft's track naming (draft-jennings-moq-e2ee-mls §"MLS MoQ Tracks"; DESIGN.md "Tracks").

    TrackNamespace := <mls-group-name> | <mls-operation>
    FullTrackName  := <mls-group-name> | <mls-operation> | <sender-id>

Media namespaces are (`<group>`, `media`, ...), chosen by the application. Each media namespace
gets its own `track_base_key` per epoch (DESIGN.md "Media keys").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from moqmls.moqt.varint import encode_vi64

Namespace = tuple[bytes, ...]

#: MoQT object property carrying the lock service's receipt (`moqmls.lock.receipt`) on a
#: Commit or Welcome object: odd (a length-prefixed byte value) and in the range
#: draft-ietf-moq-transport-18 §"Properties" reserves for application-specific use
#: (0x3800-0x3FFF; not a grease value), so relays forward it unchanged.
LOCK_RECEIPT_PROPERTY = 0x3805

#: The exporter label of DESIGN.md "Media keys".
BASE_KEY_LABEL = b"MOQ 1.0 Secure Objects Base Key"
MEDIA = b"media"


class TrackKind(enum.Enum):
    """The MLS operation tracks of one group (§"MLS MoQ Tracks")."""

    KEYPACKAGE = "keypackage"
    WELCOME = "welcome"
    COMMIT = "commit"
    PROPOSAL = "proposal"


def serialize_namespace(namespace: Namespace) -> bytes:
    """A Track Namespace as on the wire (draft-ietf-moq-transport-18 "Track Naming")."""
    out = bytearray(encode_vi64(len(namespace)))
    for field in namespace:
        out += encode_vi64(len(field))
        out += field
    return bytes(out)


@dataclass(frozen=True)
class GroupTracks:
    """Namespaces and track names of one MLS group on a MoQT relay."""

    group: str

    @property
    def prefix(self) -> bytes:
        return self.group.encode()

    def namespace(self, kind: TrackKind) -> Namespace:
        """`<group> | <operation>` (§"MLS MoQ Tracks")."""
        return (self.prefix, kind.value.encode())

    def media_namespace(self, *parts: bytes) -> Namespace:
        """`<group> | media | parts...`: a media namespace keyed by this group."""
        return (self.prefix, MEDIA, *parts)

    @property
    def media_prefix(self) -> Namespace:
        return (self.prefix, MEDIA)

    def kind_of(self, namespace: Namespace) -> TrackKind | None:
        """Which operation track namespace this is, or None when it is not one of ours."""
        if len(namespace) != 2 or namespace[0] != self.prefix:
            return None
        try:
            return TrackKind(namespace[1].decode())
        except (UnicodeDecodeError, ValueError):
            return None

    def is_media(self, namespace: Namespace) -> bool:
        return len(namespace) >= 2 and namespace[0] == self.prefix and namespace[1] == MEDIA


def sender_track(sender_id: str) -> bytes:
    """The track name of a sender: its sender-id, UTF-8 (§"MLS MoQ Tracks")."""
    return sender_id.encode()
