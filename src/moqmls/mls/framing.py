"""Message framing and protection (RFC 9420 §6).

PublicMessage (§6.2): FramedContent signed over FramedContentTBS (with the group context for
members and new-member commits) and, for members, a membership tag over
AuthenticatedContentTBM. PrivateMessage (§6.3): PrivateMessageContent encrypted with the sender's
ratchet key and a nonce XORed with a fresh reuse guard (§6.3.1), SenderData encrypted with a key
and nonce derived from `sender_data_secret` and a sample of that ciphertext (§6.3.2).

Everything here is pure: keys come in, bytes and structs come out. Consuming ratchet secrets is
the secret tree's business (`MessageKeySource`); `open_private_message` asks for a key, and
tells the source to consume it only after the message decrypted and parsed, so forged input
leaves the secret tree untouched.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Protocol

from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import FramingError, MembershipTagError, SignatureError
from moqmls.mls.secret_tree import RatchetKey, RatchetType, sender_data_key_nonce
from moqmls.mls.structs import (
    AuthenticatedContent,
    AuthenticatedContentTBM,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    FramedContentTBS,
    GroupContext,
    PrivateContentAAD,
    PrivateMessage,
    PrivateMessageContent,
    ProtocolVersion,
    PublicMessage,
    Sender,
    SenderData,
    SenderDataAAD,
    SenderType,
    WireFormat,
)

REUSE_GUARD_LEN = 4


class MessageKeySource(Protocol):
    """What framing needs from the secret tree (§9); `SecretTree` is one."""

    def next_key(self, leaf: int, kind: RatchetType) -> RatchetKey:
        """Our own next generation's key and nonce, used up at once."""
        ...

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        """A received generation's key and nonce, without consuming it."""
        ...

    def consume(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        """Delete a generation's key after it decrypted a message (§9.2)."""
        ...


def ratchet_type(content_type: ContentType) -> RatchetType:
    """§9.1: application data uses the application ratchet, the rest the handshake one."""
    if content_type == ContentType.APPLICATION:
        return RatchetType.APPLICATION
    return RatchetType.HANDSHAKE


def _needs_context(sender: Sender) -> bool:
    return sender.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT)


def _tbs(
    wire_format: WireFormat, content: FramedContent, context: GroupContext | None
) -> FramedContentTBS:
    if _needs_context(content.sender):
        if context is None:
            raise FramingError("a member's signature covers the group context; none given")
        return FramedContentTBS(ProtocolVersion.MLS10, wire_format, content, context)
    return FramedContentTBS(ProtocolVersion.MLS10, wire_format, content)


def sign_content(
    suite: CipherSuite,
    signature_priv: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    context: GroupContext | None,
) -> bytes:
    """§6.1: SignWithLabel(., "FramedContentTBS", FramedContentTBS)."""
    tbs = _tbs(wire_format, content, context)
    return suite.sign_with_label(signature_priv, b"FramedContentTBS", tbs.encode())


def verify_content(
    suite: CipherSuite,
    signature_pub: bytes,
    authenticated: AuthenticatedContent,
    context: GroupContext | None,
) -> None:
    """§6.1: verify an AuthenticatedContent's signature; raises `SignatureError`."""
    tbs = _tbs(authenticated.wire_format, authenticated.content, context)
    if not suite.verify_with_label(
        signature_pub, b"FramedContentTBS", tbs.encode(), authenticated.auth.signature
    ):
        raise SignatureError("FramedContentTBS signature does not verify")


def authenticate(
    suite: CipherSuite,
    signature_priv: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    context: GroupContext | None,
    confirmation_tag: bytes | None = None,
) -> AuthenticatedContent:
    """§6.1: sign ``content``; a commit also carries its confirmation tag.

    A committer computes the confirmation tag from the signature (§8.2), so it may sign first
    with `sign_content` and assemble the AuthenticatedContent itself.
    """
    if (content.content_type == ContentType.COMMIT) != (confirmation_tag is not None):
        raise FramingError("a confirmation tag is required for commits and only for them")
    signature = sign_content(suite, signature_priv, wire_format, content, context)
    return AuthenticatedContent(
        wire_format, content, FramedContentAuthData(signature, confirmation_tag)
    )


def _check_epoch(group_id: bytes, epoch: int, context: GroupContext) -> None:
    if group_id != context.group_id:
        raise FramingError("message for another group")
    if epoch != context.epoch:
        raise FramingError(f"message for epoch {epoch}, group is at epoch {context.epoch}")


# --------------------------------------------------------------------------- §6.2 PublicMessage


def membership_tag(
    suite: CipherSuite,
    membership_key: bytes,
    authenticated: AuthenticatedContent,
    context: GroupContext,
) -> bytes:
    """§6.2: MAC(membership_key, AuthenticatedContentTBM)."""
    tbm = AuthenticatedContentTBM(
        _tbs(authenticated.wire_format, authenticated.content, context), authenticated.auth
    )
    return suite.mac(membership_key, tbm.encode())


def to_public_message(
    suite: CipherSuite,
    authenticated: AuthenticatedContent,
    context: GroupContext,
    membership_key: bytes | None,
) -> PublicMessage:
    """§6.2: frame signed content as a PublicMessage (members add a membership tag)."""
    if authenticated.wire_format != WireFormat.MLS_PUBLIC_MESSAGE:
        raise FramingError("content was signed for another wire format")
    if authenticated.content.content_type == ContentType.APPLICATION:
        raise FramingError("application data must be sent as PrivateMessage")
    tag = None
    if authenticated.content.sender.sender_type == SenderType.MEMBER:
        if membership_key is None:
            raise FramingError("a member's PublicMessage needs the membership key")
        tag = membership_tag(suite, membership_key, authenticated, context)
    return PublicMessage(authenticated.content, authenticated.auth, tag)


def protect_public(
    suite: CipherSuite,
    signature_priv: bytes,
    content: FramedContent,
    context: GroupContext,
    membership_key: bytes | None,
    confirmation_tag: bytes | None = None,
) -> PublicMessage:
    """§6.2: sign and frame ``content`` as a PublicMessage."""
    if content.content_type == ContentType.APPLICATION:
        raise FramingError("application data must be sent as PrivateMessage")
    authenticated = authenticate(
        suite,
        signature_priv,
        WireFormat.MLS_PUBLIC_MESSAGE,
        content,
        context,
        confirmation_tag,
    )
    return to_public_message(suite, authenticated, context, membership_key)


def open_public_message(
    suite: CipherSuite,
    message: PublicMessage,
    context: GroupContext,
    membership_key: bytes | None,
) -> AuthenticatedContent:
    """§6.2: check group, epoch and (for members) the membership tag.

    The signature is checked separately with `verify_content`, once the caller has looked up
    the sender's signature key.
    """
    content = message.content
    _check_epoch(content.group_id, content.epoch, context)
    if content.content_type == ContentType.APPLICATION:
        raise FramingError("application data in a PublicMessage")
    authenticated = AuthenticatedContent(WireFormat.MLS_PUBLIC_MESSAGE, content, message.auth)
    if content.sender.sender_type == SenderType.MEMBER:
        if membership_key is None or message.membership_tag is None:
            raise MembershipTagError("member PublicMessage without a membership tag to check")
        expected = membership_tag(suite, membership_key, authenticated, context)
        if not hmac.compare_digest(expected, message.membership_tag):
            raise MembershipTagError("membership tag does not verify")
    return authenticated


def unprotect_public(
    suite: CipherSuite,
    message: PublicMessage,
    context: GroupContext,
    membership_key: bytes | None,
    signature_pub: bytes,
) -> AuthenticatedContent:
    """§6.2: `open_public_message` then verify the signature with ``signature_pub``."""
    authenticated = open_public_message(suite, message, context, membership_key)
    verify_content(suite, signature_pub, authenticated, context)
    return authenticated


# --------------------------------------------------------------------------- §6.3 PrivateMessage


def _guarded(nonce: bytes, reuse_guard: bytes) -> bytes:
    """§6.3.1: XOR the reuse guard into the first four bytes of the nonce."""
    head = bytes(a ^ b for a, b in zip(nonce[:REUSE_GUARD_LEN], reuse_guard, strict=True))
    return head + nonce[REUSE_GUARD_LEN:]


def protect_private(
    suite: CipherSuite,
    authenticated: AuthenticatedContent,
    keys: MessageKeySource,
    sender_data_secret: bytes,
    padding: int = 0,
    reuse_guard: bytes | None = None,
) -> PrivateMessage:
    """§6.3: encrypt signed content from a member into a PrivateMessage."""
    content = authenticated.content
    if authenticated.wire_format != WireFormat.MLS_PRIVATE_MESSAGE:
        raise FramingError("content was signed for another wire format")
    if content.sender.sender_type != SenderType.MEMBER or content.sender.leaf_index is None:
        raise FramingError("only members send PrivateMessages")
    guard = os.urandom(REUSE_GUARD_LEN) if reuse_guard is None else reuse_guard
    if len(guard) != REUSE_GUARD_LEN:
        raise FramingError("reuse guard must be 4 bytes")
    leaf = content.sender.leaf_index
    ratchet_key = keys.next_key(leaf, ratchet_type(content.content_type))
    plaintext = PrivateMessageContent(
        content.content_type,
        content.application_data,
        content.proposal,
        content.commit,
        authenticated.auth,
        padding,
    ).encode()
    aad = PrivateContentAAD(
        content.group_id, content.epoch, content.content_type, content.authenticated_data
    )
    nonce = _guarded(ratchet_key.nonce, guard)
    ciphertext = suite.aead_encrypt(ratchet_key.key, nonce, aad.encode(), plaintext)
    sd_key, sd_nonce = sender_data_key_nonce(suite, sender_data_secret, ciphertext)
    sd_aad = SenderDataAAD(content.group_id, content.epoch, content.content_type)
    encrypted_sender_data = suite.aead_encrypt(
        sd_key, sd_nonce, sd_aad.encode(), SenderData(leaf, ratchet_key.generation, guard).encode()
    )
    return PrivateMessage(
        content.group_id,
        content.epoch,
        content.content_type,
        content.authenticated_data,
        encrypted_sender_data,
        ciphertext,
    )


@dataclass(frozen=True)
class OpenedPrivateMessage:
    """A decrypted PrivateMessage: its content, and the ratchet position it used."""

    authenticated: AuthenticatedContent
    generation: int


def decrypt_sender_data(
    suite: CipherSuite, message: PrivateMessage, sender_data_secret: bytes
) -> SenderData:
    """§6.3.2: decrypt and parse a PrivateMessage's SenderData."""
    sd_key, sd_nonce = sender_data_key_nonce(suite, sender_data_secret, message.ciphertext)
    sd_aad = SenderDataAAD(message.group_id, message.epoch, message.content_type)
    plaintext = suite.aead_decrypt(sd_key, sd_nonce, sd_aad.encode(), message.encrypted_sender_data)
    return SenderData.decode(plaintext)


def open_private_message(
    suite: CipherSuite,
    message: PrivateMessage,
    context: GroupContext,
    keys: MessageKeySource,
    sender_data_secret: bytes,
    consume: bool = True,
) -> OpenedPrivateMessage:
    """§6.3: decrypt a PrivateMessage; the secret is consumed only if all of it checks out.

    The signature is checked separately with `verify_content` once the caller has looked up
    the key of the sender's leaf (and checked that leaf is not blank, §6.3.2). Unknown leaves
    and generations are the key source's errors. With ``consume=False`` the caller consumes
    the generation itself (e.g. after verifying the signature).
    """
    _check_epoch(message.group_id, message.epoch, context)
    sender_data = decrypt_sender_data(suite, message, sender_data_secret)
    kind = ratchet_type(message.content_type)
    ratchet_key = keys.key_for(sender_data.leaf_index, kind, sender_data.generation)
    aad = PrivateContentAAD(
        message.group_id, message.epoch, message.content_type, message.authenticated_data
    )
    plaintext = suite.aead_decrypt(
        ratchet_key.key,
        _guarded(ratchet_key.nonce, sender_data.reuse_guard),
        aad.encode(),
        message.ciphertext,
    )
    body = PrivateMessageContent.decode(plaintext, message.content_type)
    content = body.framed_content(
        message.group_id,
        message.epoch,
        Sender.member(sender_data.leaf_index),
        message.authenticated_data,
    )
    if consume:
        keys.consume(sender_data.leaf_index, kind, sender_data.generation)
    return OpenedPrivateMessage(
        AuthenticatedContent(WireFormat.MLS_PRIVATE_MESSAGE, content, body.auth),
        sender_data.generation,
    )


def unprotect_private(
    suite: CipherSuite,
    message: PrivateMessage,
    context: GroupContext,
    keys: MessageKeySource,
    sender_data_secret: bytes,
    signature_pub: bytes,
) -> AuthenticatedContent:
    """§6.3: `open_private_message` then verify the signature with ``signature_pub``.

    Convenience for callers that already know the sender's key; the group state machine looks
    the key up from the decrypted sender's leaf and calls the two steps itself.
    """
    opened = open_private_message(suite, message, context, keys, sender_data_secret, consume=False)
    verify_content(suite, signature_pub, opened.authenticated, context)
    sender = opened.authenticated.content.sender
    keys.consume(sender.leaf_index or 0, ratchet_type(message.content_type), opened.generation)
    return opened.authenticated
