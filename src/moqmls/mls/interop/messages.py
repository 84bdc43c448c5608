"""Runner for ``messages.json``: every message decodes and re-encodes byte-exactly (RFC 9420)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moqmls.mls.codec import Struct
from moqmls.mls.interop import check, check_eq
from moqmls.mls.structs import (
    Add,
    Commit,
    ContentType,
    ExternalInit,
    GroupContextExtensions,
    GroupSecrets,
    MLSMessage,
    PreSharedKey,
    ReInit,
    Remove,
    Update,
    WireFormat,
    decode_ratchet_tree,
    encode_ratchet_tree,
)

_STRUCTS: dict[str, type[Struct]] = {
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


def _public_of(content_type: ContentType) -> Callable[[MLSMessage], bool]:
    def holds(m: MLSMessage) -> bool:
        return (
            m.public_message is not None and m.public_message.content.content_type == content_type
        )

    return holds


_MESSAGES: dict[str, tuple[WireFormat, Callable[[MLSMessage], bool]]] = {
    "mls_welcome": (WireFormat.MLS_WELCOME, lambda m: m.welcome is not None),
    "mls_group_info": (WireFormat.MLS_GROUP_INFO, lambda m: m.group_info is not None),
    "mls_key_package": (WireFormat.MLS_KEY_PACKAGE, lambda m: m.key_package is not None),
    "public_message_application": (
        WireFormat.MLS_PUBLIC_MESSAGE,
        _public_of(ContentType.APPLICATION),
    ),
    "public_message_proposal": (WireFormat.MLS_PUBLIC_MESSAGE, _public_of(ContentType.PROPOSAL)),
    "public_message_commit": (WireFormat.MLS_PUBLIC_MESSAGE, _public_of(ContentType.COMMIT)),
    "private_message": (WireFormat.MLS_PRIVATE_MESSAGE, lambda m: m.private_message is not None),
}


def run(case: dict[str, Any]) -> None:
    """Decode every field of the case with its structure and re-encode it."""
    for field, (wire_format, holds) in _MESSAGES.items():
        data = bytes.fromhex(case[field])
        message = MLSMessage.decode(data)
        check_eq(message.wire_format, wire_format, f"{field}: wire_format")
        check(holds(message), f"{field}: decoded message has the wrong body")
        check_eq(message.encode(), data, f"{field}: re-encoding")
    for field, cls in _STRUCTS.items():
        data = bytes.fromhex(case[field])
        check_eq(cls.decode(data).encode(), data, f"{field}: re-encoding")
    tree = bytes.fromhex(case["ratchet_tree"])
    check_eq(encode_ratchet_tree(decode_ratchet_tree(tree)), tree, "ratchet_tree: re-encoding")
