"""Every wire struct of MLS (RFC 9420 §5-§12, Appendix; SelfRemove from the MLS extensions draft).

Each struct is declared once with `moqmls.mls.codec.wire`; encoding and decoding both come from
that declaration. Closed enumerations (protocol version, wire format, content type, sender type,
node type, leaf node source, PSK type, resumption usage, proposal-or-ref type) are IntEnums and
reject unknown values with `InvalidEnumError`. Extensible registries (cipher suites, extension,
proposal and credential types) travel as plain ints so that GREASE and unknown values round-trip
wherever the RFC carries them opaquely; the IntEnums of those registries only name known values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moqmls.mls.codec import (
    OPAQUE,
    UINT16,
    UINT32,
    UINT64,
    Enum,
    Fixed,
    Optional,
    Reader,
    Select,
    Struct,
    StructWire,
    Vector,
    Wire,
    Writer,
    wire,
)
from moqmls.mls.errors import EncodeError, InvalidPaddingError

# --------------------------------------------------------------------------- enumerations


class ProtocolVersion(enum.IntEnum):
    """§6: ProtocolVersion (uint16)."""

    MLS10 = 1


class CipherSuiteId(enum.IntEnum):
    """§17.1: the MLS cipher suites registry (extensible; fields hold plain ints)."""

    MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 = 0x0001
    MLS_128_DHKEMP256_AES128GCM_SHA256_P256 = 0x0002
    MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 = 0x0003
    MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 = 0x0004
    MLS_256_DHKEMP521_AES256GCM_SHA512_P521 = 0x0005
    MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448 = 0x0006
    MLS_256_DHKEMP384_AES256GCM_SHA384_P384 = 0x0007


class ExtensionType(enum.IntEnum):
    """§17.3: the MLS extension types registry (extensible; fields hold plain ints)."""

    APPLICATION_ID = 0x0001
    RATCHET_TREE = 0x0002
    REQUIRED_CAPABILITIES = 0x0003
    EXTERNAL_PUB = 0x0004
    EXTERNAL_SENDERS = 0x0005


class ProposalType(enum.IntEnum):
    """§17.4: the MLS proposal types registry (extensible; fields hold plain ints)."""

    ADD = 0x0001
    UPDATE = 0x0002
    REMOVE = 0x0003
    PSK = 0x0004
    REINIT = 0x0005
    EXTERNAL_INIT = 0x0006
    GROUP_CONTEXT_EXTENSIONS = 0x0007
    SELF_REMOVE = 0x000A  # MLS extensions draft §SelfRemove


class CredentialType(enum.IntEnum):
    """§17.5: the MLS credential types registry (extensible; fields hold plain ints)."""

    BASIC = 0x0001
    X509 = 0x0002


# §13.5: values reserved for GREASE in the cipher suite, extension, proposal and credential
# type registries; senders sprinkle them into capabilities and extension lists.
GREASE_VALUES: tuple[int, ...] = tuple(0x0A0A + 0x1010 * i for i in range(15))


class WireFormat(enum.IntEnum):
    """§6: WireFormat (uint16)."""

    MLS_PUBLIC_MESSAGE = 1
    MLS_PRIVATE_MESSAGE = 2
    MLS_WELCOME = 3
    MLS_GROUP_INFO = 4
    MLS_KEY_PACKAGE = 5


class ContentType(enum.IntEnum):
    """§6: ContentType (uint8)."""

    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(enum.IntEnum):
    """§6: SenderType (uint8)."""

    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


class NodeType(enum.IntEnum):
    """§7.8: NodeType (uint8)."""

    LEAF = 1
    PARENT = 2


class LeafNodeSource(enum.IntEnum):
    """§7.2: LeafNodeSource (uint8)."""

    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


class PSKType(enum.IntEnum):
    """§8.4: PSKType (uint8)."""

    EXTERNAL = 1
    RESUMPTION = 2


class ResumptionPSKUsage(enum.IntEnum):
    """§8.4: ResumptionPSKUsage (uint8)."""

    APPLICATION = 1
    REINIT = 2
    BRANCH = 3


class ProposalOrRefType(enum.IntEnum):
    """§12.4: ProposalOrRefType (uint8)."""

    PROPOSAL = 1
    REFERENCE = 2


PROTOCOL_VERSION = Enum(ProtocolVersion, 2)
WIRE_FORMAT = Enum(WireFormat, 2)
CONTENT_TYPE = Enum(ContentType, 1)
SENDER_TYPE = Enum(SenderType, 1)
NODE_TYPE = Enum(NodeType, 1)
LEAF_NODE_SOURCE = Enum(LeafNodeSource, 1)
PSK_TYPE = Enum(PSKType, 1)
RESUMPTION_USAGE = Enum(ResumptionPSKUsage, 1)
PROPOSAL_OR_REF_TYPE = Enum(ProposalOrRefType, 1)

# --------------------------------------------------------------------------- §5.3, §7.2


@dataclass(frozen=True)
class Credential(Struct):
    """§5.3: a basic identity or an X.509 chain (each certificate's cert_data)."""

    credential_type: int = wire(UINT16)
    identity: bytes | None = wire(
        Select("credential_type", {CredentialType.BASIC: OPAQUE, CredentialType.X509: None}),
        default=None,
    )
    certificates: tuple[bytes, ...] | None = wire(
        Select(
            "credential_type",
            {CredentialType.BASIC: None, CredentialType.X509: Vector(OPAQUE)},
        ),
        default=None,
    )

    @classmethod
    def basic(cls, identity: bytes) -> Credential:
        return cls(CredentialType.BASIC, identity=identity)


@dataclass(frozen=True)
class Capabilities(Struct):
    """§7.2: what a client supports. Versions stay ints: a newer client may list newer ones."""

    versions: tuple[int, ...] = wire(Vector(UINT16))
    cipher_suites: tuple[int, ...] = wire(Vector(UINT16))
    extensions: tuple[int, ...] = wire(Vector(UINT16))
    proposals: tuple[int, ...] = wire(Vector(UINT16))
    credentials: tuple[int, ...] = wire(Vector(UINT16))


@dataclass(frozen=True)
class Lifetime(Struct):
    """§7.2: validity window in seconds since the epoch."""

    not_before: int = wire(UINT64)
    not_after: int = wire(UINT64)


@dataclass(frozen=True)
class Extension(Struct):
    """§7.2, §13.4: an extension's type and its opaque data (unknown types round-trip)."""

    extension_type: int = wire(UINT16)
    extension_data: bytes = wire(OPAQUE)


EXTENSIONS: Wire[tuple[Extension, ...]] = Vector(StructWire(Extension))

_LEAF_LIFETIME = Select(
    "leaf_node_source",
    {
        LeafNodeSource.KEY_PACKAGE: StructWire(Lifetime),
        LeafNodeSource.UPDATE: None,
        LeafNodeSource.COMMIT: None,
    },
)
_LEAF_PARENT_HASH = Select(
    "leaf_node_source",
    {LeafNodeSource.KEY_PACKAGE: None, LeafNodeSource.UPDATE: None, LeafNodeSource.COMMIT: OPAQUE},
)
_LEAF_GROUP_ID = Select(
    "leaf_node_source",
    {
        LeafNodeSource.KEY_PACKAGE: None,
        LeafNodeSource.UPDATE: OPAQUE,
        LeafNodeSource.COMMIT: OPAQUE,
    },
)
_LEAF_INDEX = Select(
    "leaf_node_source",
    {
        LeafNodeSource.KEY_PACKAGE: None,
        LeafNodeSource.UPDATE: UINT32,
        LeafNodeSource.COMMIT: UINT32,
    },
)


@dataclass(frozen=True)
class LeafNodeTBS(Struct):
    """§7.2: the content a LeafNode's signature covers ("LeafNodeTBS")."""

    encryption_key: bytes = wire(OPAQUE)
    signature_key: bytes = wire(OPAQUE)
    credential: Credential = wire(StructWire(Credential))
    capabilities: Capabilities = wire(StructWire(Capabilities))
    leaf_node_source: LeafNodeSource = wire(LEAF_NODE_SOURCE)
    lifetime: Lifetime | None = wire(_LEAF_LIFETIME)
    parent_hash: bytes | None = wire(_LEAF_PARENT_HASH)
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)
    group_id: bytes | None = wire(_LEAF_GROUP_ID, default=None)
    leaf_index: int | None = wire(_LEAF_INDEX, default=None)


@dataclass(frozen=True)
class LeafNode(Struct):
    """§7.2: a member's leaf: keys, credential, capabilities, source-specific data, signature."""

    encryption_key: bytes = wire(OPAQUE)
    signature_key: bytes = wire(OPAQUE)
    credential: Credential = wire(StructWire(Credential))
    capabilities: Capabilities = wire(StructWire(Capabilities))
    leaf_node_source: LeafNodeSource = wire(LEAF_NODE_SOURCE)
    lifetime: Lifetime | None = wire(_LEAF_LIFETIME)
    parent_hash: bytes | None = wire(_LEAF_PARENT_HASH)
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)
    signature: bytes = wire(OPAQUE)

    def tbs(self, group_id: bytes | None = None, leaf_index: int | None = None) -> LeafNodeTBS:
        """§7.2: the LeafNodeTBS (group_id and leaf_index only for update/commit sources)."""
        in_group = self.leaf_node_source != LeafNodeSource.KEY_PACKAGE
        return LeafNodeTBS(
            self.encryption_key,
            self.signature_key,
            self.credential,
            self.capabilities,
            self.leaf_node_source,
            self.lifetime,
            self.parent_hash,
            self.extensions,
            group_id if in_group else None,
            leaf_index if in_group else None,
        )


@dataclass(frozen=True)
class ParentNode(Struct):
    """§7.1: an interior node's public key, parent hash and unmerged leaves."""

    encryption_key: bytes = wire(OPAQUE)
    parent_hash: bytes = wire(OPAQUE)
    unmerged_leaves: tuple[int, ...] = wire(Vector(UINT32))


@dataclass(frozen=True)
class Node(Struct):
    """§7.8 / §12.4.3.3: a leaf or parent node of the ratchet tree."""

    node_type: NodeType = wire(NODE_TYPE)
    leaf_node: LeafNode | None = wire(
        Select("node_type", {NodeType.LEAF: StructWire(LeafNode), NodeType.PARENT: None}),
        default=None,
    )
    parent_node: ParentNode | None = wire(
        Select("node_type", {NodeType.LEAF: None, NodeType.PARENT: StructWire(ParentNode)}),
        default=None,
    )

    @classmethod
    def leaf(cls, leaf_node: LeafNode) -> Node:
        return cls(NodeType.LEAF, leaf_node=leaf_node)

    @classmethod
    def parent(cls, parent_node: ParentNode) -> Node:
        return cls(NodeType.PARENT, parent_node=parent_node)


RATCHET_TREE: Wire[tuple[Node | None, ...]] = Vector(Optional(StructWire(Node)))


def encode_ratchet_tree(nodes: tuple[Node | None, ...] | list[Node | None]) -> bytes:
    """§12.4.3.3: ``optional<Node> ratchet_tree<V>`` (the ratchet_tree extension data)."""
    w = Writer()
    RATCHET_TREE.write(w, tuple(nodes))
    return bytes(w.buf)


def decode_ratchet_tree(data: bytes) -> tuple[Node | None, ...]:
    """§12.4.3.3: parse the ratchet_tree extension data; trailing bytes are an error."""
    r = Reader(data)
    nodes = RATCHET_TREE.read(r)
    r.finish()
    return nodes


# --------------------------------------------------------------------------- §7.6, §7.8, §7.9


@dataclass(frozen=True)
class HPKECiphertext(Struct):
    """§7.6: an HPKE encapsulation and ciphertext."""

    kem_output: bytes = wire(OPAQUE)
    ciphertext: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class UpdatePathNode(Struct):
    """§7.6: a new public key and the path secret encrypted to its copath resolution."""

    encryption_key: bytes = wire(OPAQUE)
    encrypted_path_secret: tuple[HPKECiphertext, ...] = wire(Vector(StructWire(HPKECiphertext)))


@dataclass(frozen=True)
class UpdatePath(Struct):
    """§7.6: the committer's new leaf and one UpdatePathNode per filtered direct-path node."""

    leaf_node: LeafNode = wire(StructWire(LeafNode))
    nodes: tuple[UpdatePathNode, ...] = wire(Vector(StructWire(UpdatePathNode)))


@dataclass(frozen=True)
class LeafNodeHashInput(Struct):
    """§7.8: tree-hash input of a leaf."""

    leaf_index: int = wire(UINT32)
    leaf_node: LeafNode | None = wire(Optional(StructWire(LeafNode)))


@dataclass(frozen=True)
class ParentNodeHashInput(Struct):
    """§7.8: tree-hash input of a parent node."""

    parent_node: ParentNode | None = wire(Optional(StructWire(ParentNode)))
    left_hash: bytes = wire(OPAQUE)
    right_hash: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class TreeHashInput(Struct):
    """§7.8: the input hashed for a node's tree hash."""

    node_type: NodeType = wire(NODE_TYPE)
    leaf_node: LeafNodeHashInput | None = wire(
        Select("node_type", {NodeType.LEAF: StructWire(LeafNodeHashInput), NodeType.PARENT: None}),
        default=None,
    )
    parent_node: ParentNodeHashInput | None = wire(
        Select(
            "node_type", {NodeType.LEAF: None, NodeType.PARENT: StructWire(ParentNodeHashInput)}
        ),
        default=None,
    )


@dataclass(frozen=True)
class ParentHashInput(Struct):
    """§7.9: the input hashed for a parent hash."""

    encryption_key: bytes = wire(OPAQUE)
    parent_hash: bytes = wire(OPAQUE)
    original_sibling_tree_hash: bytes = wire(OPAQUE)


# --------------------------------------------------------------------------- §8, §10


@dataclass(frozen=True)
class GroupContext(Struct):
    """§8.1: the group's shared state summary, mixed into the key schedule and signatures."""

    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    cipher_suite: int = wire(UINT16)
    group_id: bytes = wire(OPAQUE)
    epoch: int = wire(UINT64)
    tree_hash: bytes = wire(OPAQUE)
    confirmed_transcript_hash: bytes = wire(OPAQUE)
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)


@dataclass(frozen=True)
class KeyPackageTBS(Struct):
    """§10: the content a KeyPackage's signature covers ("KeyPackageTBS")."""

    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    cipher_suite: int = wire(UINT16)
    init_key: bytes = wire(OPAQUE)
    leaf_node: LeafNode = wire(StructWire(LeafNode))
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)


@dataclass(frozen=True)
class KeyPackage(Struct):
    """§10: a client's pre-published init key and leaf, signed."""

    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    cipher_suite: int = wire(UINT16)
    init_key: bytes = wire(OPAQUE)
    leaf_node: LeafNode = wire(StructWire(LeafNode))
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)
    signature: bytes = wire(OPAQUE)

    def tbs(self) -> KeyPackageTBS:
        return KeyPackageTBS(
            self.version, self.cipher_suite, self.init_key, self.leaf_node, self.extensions
        )


# --------------------------------------------------------------------------- §8.4 PSKs


@dataclass(frozen=True)
class PreSharedKeyID(Struct):
    """§8.4: an external or resumption PSK identifier with its nonce."""

    psktype: PSKType = wire(PSK_TYPE)
    psk_id: bytes | None = wire(
        Select("psktype", {PSKType.EXTERNAL: OPAQUE, PSKType.RESUMPTION: None})
    )
    usage: ResumptionPSKUsage | None = wire(
        Select("psktype", {PSKType.EXTERNAL: None, PSKType.RESUMPTION: RESUMPTION_USAGE})
    )
    psk_group_id: bytes | None = wire(
        Select("psktype", {PSKType.EXTERNAL: None, PSKType.RESUMPTION: OPAQUE})
    )
    psk_epoch: int | None = wire(
        Select("psktype", {PSKType.EXTERNAL: None, PSKType.RESUMPTION: UINT64})
    )
    psk_nonce: bytes = wire(OPAQUE)

    @classmethod
    def external(cls, psk_id: bytes, psk_nonce: bytes) -> PreSharedKeyID:
        return cls(PSKType.EXTERNAL, psk_id, None, None, None, psk_nonce)

    @classmethod
    def resumption(
        cls, usage: ResumptionPSKUsage, psk_group_id: bytes, psk_epoch: int, psk_nonce: bytes
    ) -> PreSharedKeyID:
        return cls(PSKType.RESUMPTION, None, usage, psk_group_id, psk_epoch, psk_nonce)


@dataclass(frozen=True)
class PSKLabel(Struct):
    """§8.4: the context of each PSK's ExpandWithLabel("derived psk", ...)."""

    id: PreSharedKeyID = wire(StructWire(PreSharedKeyID))
    index: int = wire(UINT16)
    count: int = wire(UINT16)


# --------------------------------------------------------------------------- §12.1 proposals


@dataclass(frozen=True)
class Add(Struct):
    """§12.1.1: add the client of a KeyPackage."""

    key_package: KeyPackage = wire(StructWire(KeyPackage))


@dataclass(frozen=True)
class Update(Struct):
    """§12.1.2: replace the sender's own leaf."""

    leaf_node: LeafNode = wire(StructWire(LeafNode))


@dataclass(frozen=True)
class Remove(Struct):
    """§12.1.3: remove the member at a leaf index."""

    removed: int = wire(UINT32)


@dataclass(frozen=True)
class PreSharedKey(Struct):
    """§12.1.4: inject a pre-shared key into the next epoch."""

    psk: PreSharedKeyID = wire(StructWire(PreSharedKeyID))


@dataclass(frozen=True)
class ReInit(Struct):
    """§12.1.5: close the group to reinitialize it with new parameters."""

    group_id: bytes = wire(OPAQUE)
    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    cipher_suite: int = wire(UINT16)
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)


@dataclass(frozen=True)
class ExternalInit(Struct):
    """§12.1.6: the KEM output of an external commit's init secret."""

    kem_output: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class GroupContextExtensions(Struct):
    """§12.1.7: replace the group context extensions."""

    extensions: tuple[Extension, ...] = wire(EXTENSIONS)


@dataclass(frozen=True)
class SelfRemove(Struct):
    """MLS extensions draft, SelfRemove: an empty body (proposal type 0x000a)."""


ProposalBody = (
    Add
    | Update
    | Remove
    | PreSharedKey
    | ReInit
    | ExternalInit
    | GroupContextExtensions
    | SelfRemove
)

PROPOSAL_BODIES: Mapping[int, type[Struct]] = {
    ProposalType.ADD: Add,
    ProposalType.UPDATE: Update,
    ProposalType.REMOVE: Remove,
    ProposalType.PSK: PreSharedKey,
    ProposalType.REINIT: ReInit,
    ProposalType.EXTERNAL_INIT: ExternalInit,
    ProposalType.GROUP_CONTEXT_EXTENSIONS: GroupContextExtensions,
    ProposalType.SELF_REMOVE: SelfRemove,
}
_PROPOSAL_TYPE_OF: Mapping[type[Struct], int] = {v: k for k, v in PROPOSAL_BODIES.items()}


@dataclass(frozen=True)
class Proposal(Struct):
    """§12.1: a proposal type and its body. A type this implementation does not know cannot be
    parsed (the RFC gives its body no length), so decoding it raises `InvalidEnumError`."""

    proposal_type: int = wire(UINT16)
    body: ProposalBody = wire(
        Select("proposal_type", {t: StructWire(c) for t, c in PROPOSAL_BODIES.items()})
    )

    @classmethod
    def of(cls, body: ProposalBody) -> Proposal:
        """The proposal carrying ``body``, its type taken from the body's class."""
        return cls(_PROPOSAL_TYPE_OF[type(body)], body)


@dataclass(frozen=True)
class ProposalOrRef(Struct):
    """§12.4: a proposal inline, or the ProposalRef of one sent earlier in the epoch."""

    type: ProposalOrRefType = wire(PROPOSAL_OR_REF_TYPE)
    proposal: Proposal | None = wire(
        Select(
            "type",
            {ProposalOrRefType.PROPOSAL: StructWire(Proposal), ProposalOrRefType.REFERENCE: None},
        ),
        default=None,
    )
    reference: bytes | None = wire(
        Select("type", {ProposalOrRefType.PROPOSAL: None, ProposalOrRefType.REFERENCE: OPAQUE}),
        default=None,
    )

    @classmethod
    def of_proposal(cls, proposal: Proposal) -> ProposalOrRef:
        return cls(ProposalOrRefType.PROPOSAL, proposal=proposal)

    @classmethod
    def of_reference(cls, reference: bytes) -> ProposalOrRef:
        return cls(ProposalOrRefType.REFERENCE, reference=reference)


@dataclass(frozen=True)
class Commit(Struct):
    """§12.4: the proposals a commit applies and its optional UpdatePath."""

    proposals: tuple[ProposalOrRef, ...] = wire(Vector(StructWire(ProposalOrRef)))
    path: UpdatePath | None = wire(Optional(StructWire(UpdatePath)))


# --------------------------------------------------------------------------- §6 framing


@dataclass(frozen=True)
class Sender(Struct):
    """§6: who sent a message: a member's leaf, an external sender's index, or a new member."""

    sender_type: SenderType = wire(SENDER_TYPE)
    leaf_index: int | None = wire(
        Select(
            "sender_type",
            {
                SenderType.MEMBER: UINT32,
                SenderType.EXTERNAL: None,
                SenderType.NEW_MEMBER_PROPOSAL: None,
                SenderType.NEW_MEMBER_COMMIT: None,
            },
        ),
        default=None,
    )
    sender_index: int | None = wire(
        Select(
            "sender_type",
            {
                SenderType.MEMBER: None,
                SenderType.EXTERNAL: UINT32,
                SenderType.NEW_MEMBER_PROPOSAL: None,
                SenderType.NEW_MEMBER_COMMIT: None,
            },
        ),
        default=None,
    )

    @classmethod
    def member(cls, leaf_index: int) -> Sender:
        return cls(SenderType.MEMBER, leaf_index=leaf_index)

    @classmethod
    def external(cls, sender_index: int) -> Sender:
        return cls(SenderType.EXTERNAL, sender_index=sender_index)


def _content_case(content_type: ContentType) -> Select:
    return Select(
        "content_type",
        {
            ContentType.APPLICATION: OPAQUE if content_type == ContentType.APPLICATION else None,
            ContentType.PROPOSAL: (
                StructWire(Proposal) if content_type == ContentType.PROPOSAL else None
            ),
            ContentType.COMMIT: StructWire(Commit) if content_type == ContentType.COMMIT else None,
        },
    )


@dataclass(frozen=True)
class FramedContent(Struct):
    """§6: the content of a handshake or application message, before authentication."""

    group_id: bytes = wire(OPAQUE)
    epoch: int = wire(UINT64)
    sender: Sender = wire(StructWire(Sender))
    authenticated_data: bytes = wire(OPAQUE)
    content_type: ContentType = wire(CONTENT_TYPE)
    application_data: bytes | None = wire(_content_case(ContentType.APPLICATION), default=None)
    proposal: Proposal | None = wire(_content_case(ContentType.PROPOSAL), default=None)
    commit: Commit | None = wire(_content_case(ContentType.COMMIT), default=None)


@dataclass(frozen=True)
class FramedContentAuthData:
    """§6.1: the signature, and for commits the confirmation tag.

    Whether confirmation_tag is on the wire depends on the content type of the FramedContent
    beside it, so this struct is encoded through `AUTH_DATA` selected on that content type.
    """

    signature: bytes
    confirmation_tag: bytes | None = None


class _AuthDataWire(Wire[FramedContentAuthData]):
    def __init__(self, with_confirmation_tag: bool) -> None:
        self.with_confirmation_tag = with_confirmation_tag

    def write(self, w: Writer, value: FramedContentAuthData) -> None:
        w.opaque(value.signature)
        if self.with_confirmation_tag:
            if value.confirmation_tag is None:
                raise EncodeError("a commit's auth data needs a confirmation_tag")
            w.opaque(value.confirmation_tag)

    def read(self, r: Reader) -> FramedContentAuthData:
        signature = r.opaque()
        if self.with_confirmation_tag:
            return FramedContentAuthData(signature, r.opaque())
        return FramedContentAuthData(signature)


AUTH_DATA: Mapping[ContentType, Wire[FramedContentAuthData]] = {
    ContentType.APPLICATION: _AuthDataWire(False),
    ContentType.PROPOSAL: _AuthDataWire(False),
    ContentType.COMMIT: _AuthDataWire(True),
}


_AUTH_CASES: dict[int, Wire[Any] | None] = {ct: w for ct, w in AUTH_DATA.items()}


def _auth_after(content_field: str) -> Select:
    """The auth data that follows the FramedContent held in ``content_field``."""

    def content_type(ctx: Mapping[str, Any]) -> ContentType:
        content: FramedContent = ctx[content_field]
        return content.content_type

    return Select(content_type, _AUTH_CASES)


def _content_sender_type(ctx: Mapping[str, Any]) -> SenderType:
    content: FramedContent = ctx["content"]
    return content.sender.sender_type


@dataclass(frozen=True)
class FramedContentTBS(Struct):
    """§6.1: what a message's signature covers; members and new-member commits add the context."""

    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    wire_format: WireFormat = wire(WIRE_FORMAT)
    content: FramedContent = wire(StructWire(FramedContent))
    context: GroupContext | None = wire(
        Select(
            _content_sender_type,
            {
                SenderType.MEMBER: StructWire(GroupContext),
                SenderType.NEW_MEMBER_COMMIT: StructWire(GroupContext),
                SenderType.EXTERNAL: None,
                SenderType.NEW_MEMBER_PROPOSAL: None,
            },
        ),
        default=None,
    )


@dataclass(frozen=True)
class AuthenticatedContent(Struct):
    """§6.1: FramedContent with its wire format and authentication data."""

    wire_format: WireFormat = wire(WIRE_FORMAT)
    content: FramedContent = wire(StructWire(FramedContent))
    auth: FramedContentAuthData = wire(_auth_after("content"))


@dataclass(frozen=True)
class AuthenticatedContentTBM(Struct):
    """§6.2: what a PublicMessage's membership tag covers."""

    content_tbs: FramedContentTBS = wire(StructWire(FramedContentTBS))
    auth: FramedContentAuthData = wire(
        Select(
            lambda ctx: ctx["content_tbs"].content.content_type,
            _AUTH_CASES,
        )
    )


@dataclass(frozen=True)
class PublicMessage(Struct):
    """§6.2: a signed, unencrypted message; members add a membership tag."""

    content: FramedContent = wire(StructWire(FramedContent))
    auth: FramedContentAuthData = wire(_auth_after("content"))
    membership_tag: bytes | None = wire(
        Select(
            _content_sender_type,
            {
                SenderType.MEMBER: OPAQUE,
                SenderType.EXTERNAL: None,
                SenderType.NEW_MEMBER_PROPOSAL: None,
                SenderType.NEW_MEMBER_COMMIT: None,
            },
        ),
        default=None,
    )


@dataclass(frozen=True)
class PrivateMessage(Struct):
    """§6.3: an encrypted message with encrypted sender data."""

    group_id: bytes = wire(OPAQUE)
    epoch: int = wire(UINT64)
    content_type: ContentType = wire(CONTENT_TYPE)
    authenticated_data: bytes = wire(OPAQUE)
    encrypted_sender_data: bytes = wire(OPAQUE)
    ciphertext: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class PrivateContentAAD(Struct):
    """§6.3.1: the AAD of a PrivateMessage's content encryption."""

    group_id: bytes = wire(OPAQUE)
    epoch: int = wire(UINT64)
    content_type: ContentType = wire(CONTENT_TYPE)
    authenticated_data: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class SenderData(Struct):
    """§6.3.2: the sender's leaf, the ratchet generation and the reuse guard."""

    leaf_index: int = wire(UINT32)
    generation: int = wire(UINT32)
    reuse_guard: bytes = wire(Fixed(4))


@dataclass(frozen=True)
class SenderDataAAD(Struct):
    """§6.3.2: the AAD of the sender data encryption."""

    group_id: bytes = wire(OPAQUE)
    epoch: int = wire(UINT64)
    content_type: ContentType = wire(CONTENT_TYPE)


@dataclass(frozen=True)
class PrivateMessageContent:
    """§6.3.1: the plaintext of a PrivateMessage: content, auth data and zero padding.

    Its layout depends on the PrivateMessage's content_type, given to `encode` and `decode`.
    """

    content_type: ContentType
    application_data: bytes | None = None
    proposal: Proposal | None = None
    commit: Commit | None = None
    auth: FramedContentAuthData = FramedContentAuthData(b"")
    padding: int = 0

    def encode(self) -> bytes:
        w = Writer()
        if self.content_type == ContentType.APPLICATION:
            if self.application_data is None:
                raise EncodeError("application content without application_data")
            w.opaque(self.application_data)
        elif self.content_type == ContentType.PROPOSAL:
            if self.proposal is None:
                raise EncodeError("proposal content without proposal")
            self.proposal.write_to(w)
        else:
            if self.commit is None:
                raise EncodeError("commit content without commit")
            self.commit.write_to(w)
        AUTH_DATA[self.content_type].write(w, self.auth)
        w.write(bytes(self.padding))
        return bytes(w.buf)

    @classmethod
    def decode(cls, data: bytes, content_type: ContentType) -> PrivateMessageContent:
        """Parse the plaintext; padding must be all zero (§6.3.1)."""
        r = Reader(data)
        application_data = proposal = commit = None
        if content_type == ContentType.APPLICATION:
            application_data = r.opaque()
        elif content_type == ContentType.PROPOSAL:
            proposal = Proposal.read_from(r)
        else:
            commit = Commit.read_from(r)
        auth = AUTH_DATA[content_type].read(r)
        padding = r.read(r.remaining)
        if padding.count(0) != len(padding):
            raise InvalidPaddingError("PrivateMessageContent padding is not all zero")
        return cls(content_type, application_data, proposal, commit, auth, len(padding))

    def framed_content(
        self, group_id: bytes, epoch: int, sender: Sender, authenticated_data: bytes
    ) -> FramedContent:
        """The FramedContent this plaintext carries (§6.3.1)."""
        return FramedContent(
            group_id,
            epoch,
            sender,
            authenticated_data,
            self.content_type,
            self.application_data,
            self.proposal,
            self.commit,
        )


# --------------------------------------------------------------------------- §8.2 transcripts


@dataclass(frozen=True)
class ConfirmedTranscriptHashInput(Struct):
    """§8.2: what the confirmed transcript hash absorbs for a commit."""

    wire_format: WireFormat = wire(WIRE_FORMAT)
    content: FramedContent = wire(StructWire(FramedContent))
    signature: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class InterimTranscriptHashInput(Struct):
    """§8.2: what the interim transcript hash absorbs (the confirmation tag)."""

    confirmation_tag: bytes = wire(OPAQUE)


# --------------------------------------------------------------------------- §12.4.3 Welcome


@dataclass(frozen=True)
class GroupInfoTBS(Struct):
    """§12.4.3: what a GroupInfo's signature covers ("GroupInfoTBS")."""

    group_context: GroupContext = wire(StructWire(GroupContext))
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)
    confirmation_tag: bytes = wire(OPAQUE)
    signer: int = wire(UINT32)


@dataclass(frozen=True)
class GroupInfo(Struct):
    """§12.4.3: the group's context, extensions and confirmation tag, signed by a member."""

    group_context: GroupContext = wire(StructWire(GroupContext))
    extensions: tuple[Extension, ...] = wire(EXTENSIONS)
    confirmation_tag: bytes = wire(OPAQUE)
    signer: int = wire(UINT32)
    signature: bytes = wire(OPAQUE)

    def tbs(self) -> GroupInfoTBS:
        return GroupInfoTBS(self.group_context, self.extensions, self.confirmation_tag, self.signer)


@dataclass(frozen=True)
class PathSecret(Struct):
    """§12.4.3.1: the path secret of the lowest common ancestor with the committer."""

    path_secret: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class GroupSecrets(Struct):
    """§12.4.3.1: what a Welcome encrypts to each new member."""

    joiner_secret: bytes = wire(OPAQUE)
    path_secret: PathSecret | None = wire(Optional(StructWire(PathSecret)))
    psks: tuple[PreSharedKeyID, ...] = wire(Vector(StructWire(PreSharedKeyID)))


@dataclass(frozen=True)
class EncryptedGroupSecrets(Struct):
    """§12.4.3.1: GroupSecrets encrypted to one new member's KeyPackage init key."""

    new_member: bytes = wire(OPAQUE)
    encrypted_group_secrets: HPKECiphertext = wire(StructWire(HPKECiphertext))


@dataclass(frozen=True)
class Welcome(Struct):
    """§12.4.3.1: the message that brings new members into a group."""

    cipher_suite: int = wire(UINT16)
    secrets: tuple[EncryptedGroupSecrets, ...] = wire(Vector(StructWire(EncryptedGroupSecrets)))
    encrypted_group_info: bytes = wire(OPAQUE)


# --------------------------------------------------------------------------- §12-§13 extensions


@dataclass(frozen=True)
class ExternalPub(Struct):
    """§12.4.3.2: the external_pub GroupInfo extension."""

    external_pub: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class ExternalSender(Struct):
    """§12.1.8.1: one entry of the external_senders extension."""

    signature_key: bytes = wire(OPAQUE)
    credential: Credential = wire(StructWire(Credential))


EXTERNAL_SENDERS: Wire[tuple[ExternalSender, ...]] = Vector(StructWire(ExternalSender))


@dataclass(frozen=True)
class RequiredCapabilities(Struct):
    """§11.1: the required_capabilities extension."""

    extension_types: tuple[int, ...] = wire(Vector(UINT16))
    proposal_types: tuple[int, ...] = wire(Vector(UINT16))
    credential_types: tuple[int, ...] = wire(Vector(UINT16))


# --------------------------------------------------------------------------- §6 MLSMessage


def _body_case(fmt: WireFormat, body: Wire[Any]) -> Select:
    return Select("wire_format", {f: (body if f == fmt else None) for f in WireFormat})


@dataclass(frozen=True)
class MLSMessage(Struct):
    """§6: the top-level message: a version, a wire format and the message of that format."""

    version: ProtocolVersion = wire(PROTOCOL_VERSION)
    wire_format: WireFormat = wire(WIRE_FORMAT)
    public_message: PublicMessage | None = wire(
        _body_case(WireFormat.MLS_PUBLIC_MESSAGE, StructWire(PublicMessage)), default=None
    )
    private_message: PrivateMessage | None = wire(
        _body_case(WireFormat.MLS_PRIVATE_MESSAGE, StructWire(PrivateMessage)), default=None
    )
    welcome: Welcome | None = wire(
        _body_case(WireFormat.MLS_WELCOME, StructWire(Welcome)), default=None
    )
    group_info: GroupInfo | None = wire(
        _body_case(WireFormat.MLS_GROUP_INFO, StructWire(GroupInfo)), default=None
    )
    key_package: KeyPackage | None = wire(
        _body_case(WireFormat.MLS_KEY_PACKAGE, StructWire(KeyPackage)), default=None
    )

    @classmethod
    def of(
        cls, body: PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage
    ) -> MLSMessage:
        """Wrap ``body`` in an MLSMessage of protocol version mls10."""
        v = ProtocolVersion.MLS10
        if isinstance(body, PublicMessage):
            return cls(v, WireFormat.MLS_PUBLIC_MESSAGE, public_message=body)
        if isinstance(body, PrivateMessage):
            return cls(v, WireFormat.MLS_PRIVATE_MESSAGE, private_message=body)
        if isinstance(body, Welcome):
            return cls(v, WireFormat.MLS_WELCOME, welcome=body)
        if isinstance(body, GroupInfo):
            return cls(v, WireFormat.MLS_GROUP_INFO, group_info=body)
        return cls(v, WireFormat.MLS_KEY_PACKAGE, key_package=body)
