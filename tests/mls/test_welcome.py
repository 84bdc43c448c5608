"""Welcome and GroupInfo (RFC 9420 §12.4.3): built by a committer, opened by a joiner, and
rejected when tampered with."""

from __future__ import annotations

import dataclasses

import pytest

from moqmls.mls.errors import DecodeError, MLSError, SignatureError, WelcomeError
from moqmls.mls.group import Group
from moqmls.mls.key_package import make_key_package
from moqmls.mls.key_schedule import welcome_secret
from moqmls.mls.structs import ExtensionType, MLSMessage
from moqmls.mls.welcome import open_group_info, open_group_secrets, verify_group_info


def _welcome() -> tuple[Group, bytes, object]:
    _, creator = make_key_package(b"alice")
    alice = Group.create(creator, group_id=b"w")
    kp, priv = make_key_package(b"bob")
    pending = alice.commit(adds=[kp])
    alice.merge_pending(pending)
    assert pending.welcome is not None
    return alice, pending.welcome, priv


def test_welcome_opens_to_a_signed_group_info_with_the_tree() -> None:
    alice, data, priv = _welcome()
    welcome = MLSMessage.decode(data).welcome
    assert welcome is not None
    suite = alice.cipher_suite
    secrets = open_group_secrets(suite, welcome, priv)  # type: ignore[arg-type]
    assert secrets.psks == ()
    info = open_group_info(suite, welcome, welcome_secret(suite, secrets.joiner_secret, None))
    assert info.group_context == alice.group_context
    assert info.signer == 0
    verify_group_info(suite, info, alice.members[0].signature_key)
    tree = [e for e in info.extensions if e.extension_type == ExtensionType.RATCHET_TREE]
    assert tree and tree[0].extension_data == alice.ratchet_tree()
    forged = dataclasses.replace(info, signer=1)
    with pytest.raises(SignatureError):
        verify_group_info(suite, forged, alice.members[0].signature_key)


def test_tampered_welcome_is_rejected() -> None:
    _, data, priv = _welcome()
    for i in range(0, len(data), max(1, len(data) // 97)):
        mutated = data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :]
        with pytest.raises(MLSError):
            Group.join_from_welcome(mutated, priv)  # type: ignore[arg-type]


def test_truncated_welcome_and_wrong_message_type_are_rejected() -> None:
    alice, data, priv = _welcome()
    with pytest.raises(DecodeError):
        Group.join_from_welcome(data[:-1], priv)  # type: ignore[arg-type]
    with pytest.raises(WelcomeError):
        Group.join_from_welcome(alice.group_info(), priv)  # type: ignore[arg-type]
