"""RFC 9420 §6: PublicMessage and PrivateMessage protection, checked against independent
computations (AEAD, MAC and labeled expansion done here from the RFC's formulas)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls import framing
from moqmls.mls.crypto import cipher_suite
from moqmls.mls.errors import (
    DecryptionError,
    FramingError,
    InvalidPaddingError,
    MembershipTagError,
    MLSError,
    SignatureError,
)
from moqmls.mls.secret_tree import RatchetKey, RatchetType, SecretTree
from moqmls.mls.structs import (
    AuthenticatedContent,
    Commit,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    GroupContext,
    MLSMessage,
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    Proposal,
    ProtocolVersion,
    Remove,
    Sender,
    SenderData,
    SenderDataAAD,
    WireFormat,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "mls"
SUITE = cipher_suite(1)
SIG_PRIV, SIG_PUB = SUITE.generate_signature_key_pair()
CONTEXT = GroupContext(ProtocolVersion.MLS10, 1, b"group", 5, b"\x01" * 32, b"\x02" * 32, ())
MEMBERSHIP_KEY = b"\x03" * 32
SENDER_DATA_SECRET = b"\x04" * 32


class FakeKeys:
    """A key source with fixed per-(leaf, ratchet, generation) keys, recording consumption."""

    def __init__(self) -> None:
        self.next_generation = 0
        self.consumed: list[tuple[int, RatchetType, int]] = []

    @staticmethod
    def derive(leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        seed = bytes([leaf, generation]) + kind.value
        return RatchetKey(generation, SUITE.hash(b"k" + seed)[:16], SUITE.hash(b"n" + seed)[:12])

    def next_key(self, leaf: int, kind: RatchetType) -> RatchetKey:
        self.next_generation += 1
        return self.derive(leaf, kind, self.next_generation - 1)

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        return self.derive(leaf, kind, generation)

    def consume(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        self.consumed.append((leaf, kind, generation))
        return self.derive(leaf, kind, generation)


def content(content_type: ContentType, sender: Sender | None = None) -> FramedContent:
    sender = sender or Sender.member(1)
    if content_type == ContentType.APPLICATION:
        return FramedContent(b"group", 5, sender, b"ad", content_type, application_data=b"hello")
    if content_type == ContentType.PROPOSAL:
        return FramedContent(
            b"group", 5, sender, b"ad", content_type, proposal=Proposal.of(Remove(0))
        )
    return FramedContent(b"group", 5, sender, b"ad", content_type, commit=Commit((), None))


# ------------------------------------------------------------------------------- PublicMessage


@pytest.mark.parametrize("content_type", [ContentType.PROPOSAL, ContentType.COMMIT])
def test_public_round_trip(content_type: ContentType) -> None:
    tag = b"\x09" * 32 if content_type == ContentType.COMMIT else None
    fc = content(content_type)
    pm = framing.protect_public(SUITE, SIG_PRIV, fc, CONTEXT, MEMBERSHIP_KEY, tag)
    wire = MLSMessage.of(pm).encode()
    received = MLSMessage.decode(wire).public_message
    assert received is not None
    got = framing.unprotect_public(SUITE, received, CONTEXT, MEMBERSHIP_KEY, SIG_PUB)
    assert got.content == fc
    assert got.auth.confirmation_tag == tag


def test_membership_tag_is_mac_over_tbm_computed_by_hand() -> None:
    fc = content(ContentType.PROPOSAL)
    pm = framing.protect_public(SUITE, SIG_PRIV, fc, CONTEXT, MEMBERSHIP_KEY)
    # AuthenticatedContentTBM = FramedContentTBS || auth, FramedContentTBS =
    # version || wire_format || content || context (member sender)
    tbs = b"\x00\x01" + b"\x00\x01" + fc.encode() + CONTEXT.encode()
    assert len(pm.auth.signature) == 64  # Ed25519; 64 needs the two-byte varint 0x4040
    auth = b"\x40\x40" + pm.auth.signature
    assert pm.membership_tag == SUITE.mac(MEMBERSHIP_KEY, tbs + auth)
    assert SUITE.verify_with_label(SIG_PUB, b"FramedContentTBS", tbs, pm.auth.signature)


def test_application_data_is_never_a_public_message() -> None:
    with pytest.raises(FramingError):
        framing.protect_public(
            SUITE, SIG_PRIV, content(ContentType.APPLICATION), CONTEXT, MEMBERSHIP_KEY
        )


def test_public_message_rejections() -> None:
    pm = framing.protect_public(
        SUITE, SIG_PRIV, content(ContentType.PROPOSAL), CONTEXT, MEMBERSHIP_KEY
    )
    with pytest.raises(MembershipTagError):
        framing.unprotect_public(SUITE, pm, CONTEXT, b"\x00" * 32, SIG_PUB)
    _, other_pub = SUITE.generate_signature_key_pair()
    with pytest.raises(SignatureError):
        framing.unprotect_public(SUITE, pm, CONTEXT, MEMBERSHIP_KEY, other_pub)
    later = GroupContext(
        CONTEXT.version,
        1,
        CONTEXT.group_id,
        6,
        CONTEXT.tree_hash,
        CONTEXT.confirmed_transcript_hash,
        (),
    )
    with pytest.raises(FramingError):
        framing.unprotect_public(SUITE, pm, later, MEMBERSHIP_KEY, SIG_PUB)


def test_signature_binds_the_group_context() -> None:
    pm = framing.protect_public(
        SUITE, SIG_PRIV, content(ContentType.PROPOSAL), CONTEXT, MEMBERSHIP_KEY
    )
    forked = GroupContext(
        CONTEXT.version, 1, CONTEXT.group_id, 5, b"\x07" * 32, CONTEXT.confirmed_transcript_hash, ()
    )
    authenticated = framing.open_public_message(
        SUITE,
        framing.to_public_message(
            SUITE,
            AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, pm.content, pm.auth),
            forked,
            MEMBERSHIP_KEY,
        ),
        forked,
        MEMBERSHIP_KEY,
    )
    with pytest.raises(SignatureError):
        framing.verify_content(SUITE, SIG_PUB, authenticated, forked)


def test_external_sender_signs_without_context_and_has_no_membership_tag() -> None:
    fc = content(ContentType.PROPOSAL, Sender.external(0))
    pm = framing.protect_public(SUITE, SIG_PRIV, fc, CONTEXT, None)
    assert pm.membership_tag is None
    tbs = b"\x00\x01\x00\x01" + fc.encode()
    assert SUITE.verify_with_label(SIG_PUB, b"FramedContentTBS", tbs, pm.auth.signature)
    framing.unprotect_public(SUITE, pm, CONTEXT, None, SIG_PUB)


def test_commit_needs_a_confirmation_tag() -> None:
    with pytest.raises(FramingError):
        framing.authenticate(
            SUITE, SIG_PRIV, WireFormat.MLS_PUBLIC_MESSAGE, content(ContentType.COMMIT), CONTEXT
        )
    with pytest.raises(FramingError):
        framing.authenticate(
            SUITE,
            SIG_PRIV,
            WireFormat.MLS_PUBLIC_MESSAGE,
            content(ContentType.PROPOSAL),
            CONTEXT,
            b"tag",
        )


# ------------------------------------------------------------------------------ PrivateMessage


def _private(
    content_type: ContentType, keys: FakeKeys, padding: int = 0, guard: bytes = b"\xa0\xb1\xc2\xd3"
) -> PrivateMessage:
    tag = b"\x09" * 32 if content_type == ContentType.COMMIT else None
    authenticated = framing.authenticate(
        SUITE, SIG_PRIV, WireFormat.MLS_PRIVATE_MESSAGE, content(content_type), CONTEXT, tag
    )
    return framing.protect_private(
        SUITE, authenticated, keys, SENDER_DATA_SECRET, padding=padding, reuse_guard=guard
    )


@pytest.mark.parametrize("content_type", list(ContentType))
def test_private_round_trip(content_type: ContentType) -> None:
    pm = _private(content_type, FakeKeys(), padding=7)
    received = MLSMessage.decode(MLSMessage.of(pm).encode()).private_message
    assert received is not None
    keys = FakeKeys()
    got = framing.unprotect_private(SUITE, received, CONTEXT, keys, SENDER_DATA_SECRET, SIG_PUB)
    assert got.content == content(content_type)
    kind = (
        RatchetType.APPLICATION
        if content_type == ContentType.APPLICATION
        else RatchetType.HANDSHAKE
    )
    assert keys.consumed == [(1, kind, 0)]


def test_private_encryption_follows_the_rfc_formulas() -> None:
    guard = b"\xa0\xb1\xc2\xd3"
    pm = _private(ContentType.APPLICATION, FakeKeys(), padding=3, guard=guard)
    # sender data: key/nonce from ExpandWithLabel over the first Nh bytes of the ciphertext
    sample = pm.ciphertext[:32]
    sd_key = SUITE.expand_with_label(SENDER_DATA_SECRET, b"key", sample, 16)
    sd_nonce = SUITE.expand_with_label(SENDER_DATA_SECRET, b"nonce", sample, 12)
    sd_aad = b"\x05group" + (5).to_bytes(8, "big") + b"\x01"
    sender_data = AESGCM(sd_key).decrypt(sd_nonce, pm.encrypted_sender_data, sd_aad)
    assert sender_data == (1).to_bytes(4, "big") + (0).to_bytes(4, "big") + guard
    # content: the ratchet nonce with the reuse guard XORed into its first 4 bytes
    rk = FakeKeys.derive(1, RatchetType.APPLICATION, 0)
    guarded = bytes(a ^ b for a, b in zip(rk.nonce[:4], guard, strict=True)) + rk.nonce[4:]
    aad = sd_aad + b"\x02ad"
    plaintext = AESGCM(rk.key).decrypt(guarded, pm.ciphertext, aad)
    assert plaintext.startswith(b"\x05hello")
    assert plaintext.endswith(b"\x00\x00\x00")


def test_tampered_private_message_leaves_keys_untouched() -> None:
    pm = _private(ContentType.PROPOSAL, FakeKeys())
    bad = PrivateMessage(
        pm.group_id,
        pm.epoch,
        pm.content_type,
        b"other ad",
        pm.encrypted_sender_data,
        pm.ciphertext,
    )
    keys = FakeKeys()
    with pytest.raises(DecryptionError):
        framing.unprotect_private(SUITE, bad, CONTEXT, keys, SENDER_DATA_SECRET, SIG_PUB)
    assert keys.consumed == []


def test_wrong_signer_of_private_message_consumes_nothing() -> None:
    pm = _private(ContentType.APPLICATION, FakeKeys())
    _, other_pub = SUITE.generate_signature_key_pair()
    keys = FakeKeys()
    with pytest.raises(SignatureError):
        framing.unprotect_private(SUITE, pm, CONTEXT, keys, SENDER_DATA_SECRET, other_pub)
    assert keys.consumed == []


def test_non_zero_padding_is_rejected() -> None:
    guard = b"\x00\x00\x00\x00"
    body = (
        PrivateMessageContent(
            ContentType.APPLICATION, application_data=b"x", auth=FramedContentAuthData(b"s")
        ).encode()
        + b"\x00\x01"
    )
    rk = FakeKeys.derive(1, RatchetType.APPLICATION, 0)
    aad = PrivateContentAAD(b"group", 5, ContentType.APPLICATION, b"").encode()
    ciphertext = SUITE.aead_encrypt(rk.key, rk.nonce, aad, body)
    sample = ciphertext[:32]
    sd_key = SUITE.expand_with_label(SENDER_DATA_SECRET, b"key", sample, 16)
    sd_nonce = SUITE.expand_with_label(SENDER_DATA_SECRET, b"nonce", sample, 12)
    encrypted_sd = SUITE.aead_encrypt(
        sd_key,
        sd_nonce,
        SenderDataAAD(b"group", 5, ContentType.APPLICATION).encode(),
        SenderData(1, 0, guard).encode(),
    )
    pm = PrivateMessage(b"group", 5, ContentType.APPLICATION, b"", encrypted_sd, ciphertext)
    keys = FakeKeys()
    with pytest.raises(InvalidPaddingError):
        framing.open_private_message(SUITE, pm, CONTEXT, keys, SENDER_DATA_SECRET)
    assert keys.consumed == []


def test_only_members_send_private_messages() -> None:
    authenticated = framing.authenticate(
        SUITE,
        SIG_PRIV,
        WireFormat.MLS_PRIVATE_MESSAGE,
        content(ContentType.PROPOSAL, Sender.external(0)),
        CONTEXT,
    )
    with pytest.raises(FramingError):
        framing.protect_private(SUITE, authenticated, FakeKeys(), SENDER_DATA_SECRET)


PRIVATE_WIRE = MLSMessage.of(_private(ContentType.COMMIT, FakeKeys(), padding=4)).encode()


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(PRIVATE_WIRE) - 1), st.integers(1, 255))
def test_flipped_private_message_raises_only_mls_errors(pos: int, xor: int) -> None:
    data = bytearray(PRIVATE_WIRE)
    data[pos] ^= xor
    keys = FakeKeys()
    with contextlib.suppress(MLSError):
        message = MLSMessage.decode(bytes(data)).private_message
        if message is not None:
            framing.unprotect_private(SUITE, message, CONTEXT, keys, SENDER_DATA_SECRET, SIG_PUB)
    assert keys.consumed == []


# ------------------------------------------------- official vectors under mutation (real tree)

PROTECTION = json.loads((VECTORS / "message-protection.json").read_text())[0]


def _vector_inputs() -> tuple[GroupContext, bytes, bytes, bytes]:
    c = PROTECTION
    context = GroupContext(
        ProtocolVersion.MLS10,
        c["cipher_suite"],
        bytes.fromhex(c["group_id"]),
        c["epoch"],
        bytes.fromhex(c["tree_hash"]),
        bytes.fromhex(c["confirmed_transcript_hash"]),
        (),
    )
    return (
        context,
        bytes.fromhex(c["encryption_secret"]),
        bytes.fromhex(c["sender_data_secret"]),
        bytes.fromhex(c["signature_pub"]),
    )


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["application_priv", "proposal_priv", "commit_priv"]),
    st.integers(0, 1 << 12),
    st.integers(1, 255),
)
def test_mutated_vector_private_messages_leave_the_tree_usable(
    field: str, pos: int, xor: int
) -> None:
    context, encryption_secret, sender_data_secret, signature_pub = _vector_inputs()
    suite = cipher_suite(PROTECTION["cipher_suite"])
    tree = SecretTree(suite, encryption_secret, 2)
    original = bytes.fromhex(PROTECTION[field])
    data = bytearray(original)
    data[pos % len(data)] ^= xor
    with contextlib.suppress(MLSError):
        message = MLSMessage.decode(bytes(data)).private_message
        if message is not None:
            framing.unprotect_private(
                suite, message, context, tree, sender_data_secret, signature_pub
            )
    # the genuine message still opens with the same tree: nothing was consumed by the forgery
    genuine = MLSMessage.decode(original).private_message
    assert genuine is not None
    framing.unprotect_private(suite, genuine, context, tree, sender_data_secret, signature_pub)
