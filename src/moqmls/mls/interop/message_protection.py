"""Runner for ``message-protection.json`` (RFC 9420 §6): PublicMessage and PrivateMessage
unprotection of the given messages, and protect/unprotect round trips of the raw contents,
for proposal, commit and application data, sent by leaf 1 of a two-member group."""

from __future__ import annotations

import os
from typing import Any

from moqmls.mls import framing
from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.errors import FramingError
from moqmls.mls.interop import CaseFailed, check_eq
from moqmls.mls.secret_tree import SecretTree
from moqmls.mls.structs import (
    Commit,
    ContentType,
    FramedContent,
    GroupContext,
    MLSMessage,
    PrivateMessage,
    Proposal,
    ProtocolVersion,
    PublicMessage,
    Sender,
    WireFormat,
)

SENDER = 1


class _Case:
    def __init__(self, case: dict[str, Any]) -> None:
        self.raw = {k: bytes.fromhex(v) for k, v in case.items() if isinstance(v, str)}
        self.suite: CipherSuite = cipher_suite(case["cipher_suite"])
        self.context = GroupContext(
            ProtocolVersion.MLS10,
            case["cipher_suite"],
            self.raw["group_id"],
            case["epoch"],
            self.raw["tree_hash"],
            self.raw["confirmed_transcript_hash"],
            (),
        )

    def tree(self) -> SecretTree:
        return SecretTree(self.suite, self.raw["encryption_secret"], 2)

    def content(self, kind: str) -> FramedContent:
        data = self.raw[kind]
        sender = Sender.member(SENDER)
        group_id, epoch = self.context.group_id, self.context.epoch
        if kind == "proposal":
            proposal = Proposal.decode(data)
            return FramedContent(
                group_id, epoch, sender, b"", ContentType.PROPOSAL, proposal=proposal
            )
        if kind == "commit":
            commit = Commit.decode(data)
            return FramedContent(group_id, epoch, sender, b"", ContentType.COMMIT, commit=commit)
        return FramedContent(
            group_id, epoch, sender, b"", ContentType.APPLICATION, application_data=data
        )


def _payload(content: FramedContent) -> bytes:
    if content.proposal is not None:
        return content.proposal.encode()
    if content.commit is not None:
        return content.commit.encode()
    assert content.application_data is not None
    return content.application_data


def _decoded(message: bytes, wire_format: WireFormat) -> MLSMessage:
    decoded = MLSMessage.decode(message)
    check_eq(message, decoded.encode(), "MLSMessage re-encoding")
    check_eq(decoded.wire_format, wire_format, "wire format")
    return decoded


def _public(message: bytes) -> PublicMessage:
    public = _decoded(message, WireFormat.MLS_PUBLIC_MESSAGE).public_message
    assert public is not None
    return public


def _private(message: bytes) -> PrivateMessage:
    private = _decoded(message, WireFormat.MLS_PRIVATE_MESSAGE).private_message
    assert private is not None
    return private


def _check_public(c: _Case, kind: str) -> None:
    s, ctx, key, pub = c.suite, c.context, c.raw["membership_key"], c.raw["signature_pub"]
    got = framing.unprotect_public(s, _public(c.raw[f"{kind}_pub"]), ctx, key, pub)
    check_eq(_payload(got.content), c.raw[kind], f"{kind}_pub content")
    tag = os.urandom(s.hash_len) if kind == "commit" else None
    mine = framing.protect_public(s, c.raw["signature_priv"], c.content(kind), ctx, key, tag)
    again = framing.unprotect_public(s, _public(MLSMessage.of(mine).encode()), ctx, key, pub)
    check_eq(_payload(again.content), c.raw[kind], f"{kind}: own PublicMessage content")


def _check_application_not_public(c: _Case) -> None:
    try:
        framing.protect_public(
            c.suite,
            c.raw["signature_priv"],
            c.content("application"),
            c.context,
            c.raw["membership_key"],
        )
    except FramingError:
        return
    raise CaseFailed("application data was protected as a PublicMessage")


def _check_private(c: _Case, kind: str) -> None:
    s, ctx, sds, pub = c.suite, c.context, c.raw["sender_data_secret"], c.raw["signature_pub"]
    got = framing.unprotect_private(s, _private(c.raw[f"{kind}_priv"]), ctx, c.tree(), sds, pub)
    check_eq(got.content.sender, Sender.member(SENDER), f"{kind}_priv sender")
    check_eq(_payload(got.content), c.raw[kind], f"{kind}_priv content")
    content = c.content(kind)
    tag = os.urandom(s.hash_len) if kind == "commit" else None
    authenticated = framing.authenticate(
        s, c.raw["signature_priv"], WireFormat.MLS_PRIVATE_MESSAGE, content, ctx, tag
    )
    mine = framing.protect_private(s, authenticated, c.tree(), sds, padding=5)
    wire = MLSMessage.of(mine).encode()
    again = framing.unprotect_private(s, _private(wire), ctx, c.tree(), sds, pub)
    check_eq(again.content, content, f"{kind}: own PrivateMessage content")
    check_eq(again.auth.confirmation_tag, tag, f"{kind}: own PrivateMessage confirmation tag")


def run(case: dict[str, Any]) -> None:
    """Unprotect the vector's messages; protect the raw values and unprotect them again."""
    c = _Case(case)
    for kind in ("proposal", "commit"):
        _check_public(c, kind)
    _check_application_not_public(c)
    for kind in ("proposal", "commit", "application"):
        _check_private(c, kind)
