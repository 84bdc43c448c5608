"""RFC 9420 wire structs: encodings written out by hand from the spec, the official messages
vectors, closed versus extensible registries, and fuzzed malformed input."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls.codec import Struct
from moqmls.mls.errors import (
    DecodeError,
    InvalidEnumError,
    InvalidOptionalError,
    InvalidPaddingError,
    InvalidVarintError,
    MLSError,
    TrailingDataError,
    TruncatedError,
)
from moqmls.mls.structs import (
    GREASE_VALUES,
    Add,
    Capabilities,
    Commit,
    ContentType,
    Credential,
    CredentialType,
    Extension,
    ExtensionType,
    ExternalInit,
    FramedContentAuthData,
    GroupContext,
    GroupContextExtensions,
    GroupSecrets,
    LeafNode,
    LeafNodeSource,
    MLSMessage,
    Node,
    NodeType,
    ParentNode,
    PreSharedKey,
    PreSharedKeyID,
    PrivateMessageContent,
    Proposal,
    ProposalOrRef,
    ProposalType,
    ProtocolVersion,
    PSKType,
    ReInit,
    Remove,
    ResumptionPSKUsage,
    SelfRemove,
    Sender,
    SenderData,
    SenderType,
    Update,
    WireFormat,
    decode_ratchet_tree,
    encode_ratchet_tree,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "mls"
MESSAGES: list[dict[str, str]] = json.loads((VECTORS / "messages.json").read_text())

MESSAGE_FIELDS = (
    "mls_welcome",
    "mls_group_info",
    "mls_key_package",
    "public_message_application",
    "public_message_proposal",
    "public_message_commit",
    "private_message",
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# ----------------------------------------------------------------- encodings written from the spec


def test_sender_member_and_external() -> None:
    assert Sender.member(5).encode() == h("01 00000005")
    assert Sender.external(2).encode() == h("02 00000002")
    assert Sender(SenderType.NEW_MEMBER_COMMIT).encode() == h("04")
    assert Sender.decode(h("01 00000005")) == Sender.member(5)


def test_remove_proposal_layout() -> None:
    # proposal_type remove(3) as uint16, then the uint32 leaf index
    assert Proposal.of(Remove(2)).encode() == h("0003 00000002")
    assert Proposal.decode(h("0003 00000002")).body == Remove(2)


def test_self_remove_is_type_000a_with_empty_body() -> None:
    assert Proposal.of(SelfRemove()).encode() == h("000a")
    decoded = Proposal.decode(h("000a"))
    assert decoded.proposal_type == ProposalType.SELF_REMOVE
    assert decoded.body == SelfRemove()


def test_commit_with_reference_and_no_path() -> None:
    commit = Commit((ProposalOrRef.of_reference(b"\xaa" * 3),), None)
    # proposals<V>: length 5 = type(1) + opaque<V>(1 + 3); then optional path absent
    assert commit.encode() == h("05 02 03aaaaaa 00")
    assert Commit.decode(h("05 02 03aaaaaa 00")) == commit


def test_basic_credential_and_x509_chain() -> None:
    assert Credential.basic(b"Al").encode() == h("0001 02 416c")
    x509 = Credential(CredentialType.X509, certificates=(b"\x01", b"\x02\x03"))
    # certificates<V>: total 5 bytes = (1 + 1) + (1 + 2)
    assert x509.encode() == h("0002 05 0101 020203")
    assert Credential.decode(x509.encode()) == x509


def test_group_context_layout() -> None:
    ctx = GroupContext(ProtocolVersion.MLS10, 1, b"g", 7, b"t", b"c", ())
    assert ctx.encode() == h("0001 0001 0167 0000000000000007 0174 0163 00")


def test_psk_ids_external_and_resumption() -> None:
    ext = PreSharedKeyID.external(b"id", b"n")
    assert ext.encode() == h("01 026964 016e")
    res = PreSharedKeyID.resumption(ResumptionPSKUsage.BRANCH, b"g", 9, b"n")
    assert res.encode() == h("02 03 0167 0000000000000009 016e")
    assert PreSharedKeyID.decode(res.encode()) == res
    assert res.psktype == PSKType.RESUMPTION


def test_sender_data_reuse_guard_is_fixed_four_bytes() -> None:
    assert SenderData(1, 2, b"abcd").encode() == h("00000001 00000002 61626364")
    with pytest.raises(TruncatedError):
        SenderData.decode(h("00000001 00000002 616263"))


def test_ratchet_tree_with_blank_nodes() -> None:
    parent = Node.parent(ParentNode(b"\x01", b"", (0, 2)))
    tree = encode_ratchet_tree([None, parent, None])
    # 1 + (1 + 1 + 2 + 1 + 1 + 8) + 1 = 16 bytes of optional<Node>
    assert tree == h("10 00 01 02 0101 00 08 00000000 00000002 00")
    assert decode_ratchet_tree(tree) == (None, parent, None)


# ----------------------------------------------------------------- extensible registries round-trip


def test_unknown_extension_type_round_trips() -> None:
    raw = h("0a0a 03 616263")
    ext = Extension.decode(raw)
    assert ext == Extension(0x0A0A, b"abc")
    assert ext.encode() == raw


def test_grease_values_in_capabilities_round_trip() -> None:
    raw = h("02 0001  04 0001 2a2a  04 0a0a 0002  04 0001 3a3a  04 0001 4a4a")
    caps = Capabilities.decode(raw)
    assert caps.cipher_suites == (1, 0x2A2A)
    assert caps.extensions == (0x0A0A, ExtensionType.RATCHET_TREE)
    assert caps.proposals == (1, 0x3A3A)
    assert caps.encode() == raw


def test_group_context_with_unknown_extension_round_trips() -> None:
    ctx = GroupContext(ProtocolVersion.MLS10, 0x0A0A, b"", 0, b"", b"", (Extension(0xFAFA, b"x"),))
    assert GroupContext.decode(ctx.encode()) == ctx


# ----------------------------------------------------------------- closed enums reject


@pytest.mark.parametrize(
    "raw",
    [
        h("0002 0005"),  # ProtocolVersion 2 does not exist
        h("0001 0006"),  # WireFormat 6 does not exist
        h("0001 0000"),  # reserved WireFormat
    ],
)
def test_mls_message_rejects_unknown_version_and_wire_format(raw: bytes) -> None:
    with pytest.raises(InvalidEnumError):
        MLSMessage.decode(raw)


def test_closed_enums_reject_unknown_values() -> None:
    with pytest.raises(InvalidEnumError):
        Node.decode(h("03"))  # node type
    with pytest.raises(InvalidEnumError):
        Sender.decode(h("05 00000000"))  # sender type
    with pytest.raises(InvalidEnumError):
        PreSharedKeyID.decode(h("03 00"))  # psk type
    with pytest.raises(InvalidEnumError):
        ProposalOrRef.decode(h("03"))


def test_unknown_leaf_node_source_is_rejected() -> None:
    # keys, basic credential "A", empty capabilities, then leaf_node_source 4
    prefix = h("01aa 01bb 0001 0141 0000000000")
    ok = prefix + h("02") + h("00 01ff")  # update source: no lifetime/parent hash
    assert LeafNode.decode(ok).leaf_node_source == LeafNodeSource.UPDATE
    with pytest.raises(InvalidEnumError):
        LeafNode.decode(prefix + h("04") + h("00 01ff"))


def test_unknown_proposal_type_cannot_be_parsed() -> None:
    with pytest.raises(InvalidEnumError):
        Proposal.decode(h("0a0a 00"))
    with pytest.raises(InvalidEnumError):
        Proposal.decode(h("0000"))


def test_x509_and_basic_are_the_only_parseable_credentials() -> None:
    with pytest.raises(InvalidEnumError):
        Credential.decode(h("0003 00"))


def test_optional_presence_must_be_zero_or_one() -> None:
    with pytest.raises(InvalidOptionalError):
        Commit.decode(h("00 02"))


def test_truncated_and_trailing() -> None:
    raw = Proposal.of(Remove(1)).encode()
    with pytest.raises(TruncatedError):
        Proposal.decode(raw[:-1])
    with pytest.raises(TrailingDataError):
        Proposal.decode(raw + b"\x00")
    with pytest.raises(TruncatedError):
        GroupSecrets.decode(h("40"))  # two-byte varint cut short


def test_element_may_not_overrun_its_vector() -> None:
    # versions<V> announces 1 byte but a uint16 needs 2; the bytes after it must not be borrowed
    with pytest.raises(TruncatedError):
        Capabilities.decode(h("01 0001 00 00 00 00"))
    # a vector longer than what is left of the input
    with pytest.raises(TruncatedError):
        Capabilities.decode(h("4040 0001"))


def test_non_minimal_length_is_rejected() -> None:
    with pytest.raises(InvalidVarintError):
        Extension.decode(h("0001 4001 00"))


# ----------------------------------------------------------------- PrivateMessageContent


def test_private_message_content_padding() -> None:
    content = PrivateMessageContent(
        ContentType.APPLICATION,
        application_data=b"hi",
        auth=FramedContentAuthData(b"\x05"),
        padding=3,
    )
    raw = content.encode()
    assert raw == h("02 6869 01 05 000000")
    assert PrivateMessageContent.decode(raw, ContentType.APPLICATION) == content
    with pytest.raises(InvalidPaddingError):
        PrivateMessageContent.decode(raw[:-1] + b"\x01", ContentType.APPLICATION)


def test_commit_content_carries_confirmation_tag() -> None:
    content = PrivateMessageContent(
        ContentType.COMMIT,
        commit=Commit((), None),
        auth=FramedContentAuthData(b"s", b"t"),
    )
    assert content.encode() == h("00 00 0173 0174")
    with pytest.raises(TruncatedError):
        PrivateMessageContent.decode(h("00 00 0173"), ContentType.COMMIT)


# ----------------------------------------------------------------- official vectors, field by field


def test_public_commit_has_confirmation_and_membership_tags() -> None:
    for case in MESSAGES[:20]:
        message = MLSMessage.decode(h(case["public_message_commit"]))
        assert message.public_message is not None
        pm = message.public_message
        assert pm.content.commit is not None
        assert pm.auth.confirmation_tag is not None
        assert (pm.membership_tag is not None) == (
            pm.content.sender.sender_type == SenderType.MEMBER
        )


def test_vector_structs_round_trip_as_their_types() -> None:
    for case in MESSAGES[:20]:
        add = Add.decode(h(case["add_proposal"]))
        assert add.key_package.version == ProtocolVersion.MLS10
        assert add.encode() == h(case["add_proposal"])
        tree = decode_ratchet_tree(h(case["ratchet_tree"]))
        assert tree[0] is not None and tree[0].node_type == NodeType.LEAF
        message = MLSMessage.decode(h(case["mls_welcome"]))
        assert message.wire_format == WireFormat.MLS_WELCOME


# ----------------------------------------------------------------- fuzz: only MLSError escapes


def _decoders() -> list[tuple[str, Callable[[bytes], object]]]:
    out: list[tuple[str, Callable[[bytes], object]]] = [
        (f, MLSMessage.decode) for f in MESSAGE_FIELDS
    ]
    structs: dict[str, type[Struct]] = {
        "group_secrets": GroupSecrets,
        "add_proposal": Add,
        "update_proposal": Update,
        "remove_proposal": Remove,
        "pre_shared_key_proposal": PreSharedKey,
        "re_init_proposal": ReInit,
        "external_init_proposal": ExternalInit,
        "group_context_extensions_proposal": GroupContextExtensions,
        "commit": Commit,
    }
    out += [(f, cls.decode) for f, cls in structs.items()]
    out.append(("ratchet_tree", decode_ratchet_tree))
    return out


DECODERS = _decoders()


def _mutate(data: bytes, kind: int, pos: int, value: int) -> bytes:
    if not data:
        return bytes([value])
    pos %= len(data)
    if kind == 0:
        return data[:pos] + bytes([value]) + data[pos + 1 :]
    if kind == 1:
        return data[:pos]
    if kind == 2:
        return data[:pos] + bytes([value]) + data[pos:]
    return data[:pos] + data[pos + 1 :]


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, len(MESSAGES) - 1),
    st.integers(0, len(DECODERS) - 1),
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)),
        min_size=1,
        max_size=3,
    ),
)
def test_mutated_vectors_raise_only_mls_errors(
    case_index: int, decoder_index: int, mutations: list[tuple[int, int, int]]
) -> None:
    field, decode = DECODERS[decoder_index]
    data = h(MESSAGES[case_index][field])
    for kind, pos, value in mutations:
        data = _mutate(data, kind, pos, value)
    with contextlib.suppress(MLSError):
        decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(list(ContentType)))
def test_random_private_content_raises_only_decode_errors(data: bytes, ct: ContentType) -> None:
    with contextlib.suppress(DecodeError):
        PrivateMessageContent.decode(data, ct)


def test_grease_values_are_the_rfc_list() -> None:
    listed = "0A0A 1A1A 2A2A 3A3A 4A4A 5A5A 6A6A 7A7A 8A8A 9A9A AAAA BABA CACA DADA EAEA"
    assert tuple(int(v, 16) for v in listed.split()) == GREASE_VALUES


def test_memoised_encoding_is_invisible_to_equality_and_nesting() -> None:
    fresh = GroupContext(ProtocolVersion.MLS10, 1, b"g", 7, b"t", b"c", ())
    encoded = GroupContext(ProtocolVersion.MLS10, 1, b"g", 7, b"t", b"c", ())
    assert encoded.encode() is encoded.encode()
    assert encoded == fresh and hash(encoded) == hash(fresh) and repr(encoded) == repr(fresh)
    outer = GroupSecrets(b"j", None, (PreSharedKeyID.external(b"id", b"n"),))
    outer.psks[0].encode()
    assert outer.encode() == h("016a 00 06 01 026964 016e")
