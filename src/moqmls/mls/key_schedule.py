"""The MLS key schedule (RFC 9420 §8): epoch secrets, PSK secret (§8.4), exporter (§8.5),
epoch authenticator (§8.7), external key pair (§8) and external init (§8.3), welcome key and
nonce (§12.4.3.1).

Inputs are bytes: the GroupContext arrives already encoded, PSK ids as encoded
PreSharedKeyID structs, so each value is encoded once by its owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moqmls.mls.crypto import CipherSuite


@dataclass(frozen=True)
class EpochSecrets:
    """The secrets of one epoch derived from its epoch_secret (§8, table of epoch-derived
    secrets), plus the joiner, welcome and next init secrets of the same derivation."""

    joiner_secret: bytes
    welcome_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    epoch_authenticator: bytes
    init_secret: bytes


def joiner_secret(
    suite: CipherSuite, init_secret: bytes, commit_secret: bytes, group_context: bytes
) -> bytes:
    """joiner_secret = ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GC)."""
    prk = suite.extract(init_secret, commit_secret)
    return suite.expand_with_label(prk, b"joiner", group_context, suite.hash_len)


def epoch_secrets_from_joiner(
    suite: CipherSuite, joiner: bytes, psk_secret: bytes | None, group_context: bytes
) -> EpochSecrets:
    """The rest of the §8 schedule from the joiner secret (what a Welcome recipient has).

    ``psk_secret`` None means no PSKs: the all-zero vector of Nh bytes.
    """
    member_prk = suite.extract(joiner, psk_secret or bytes(suite.hash_len))
    epoch_secret = suite.expand_with_label(member_prk, b"epoch", group_context, suite.hash_len)
    derive = suite.derive_secret
    return EpochSecrets(
        joiner_secret=joiner,
        welcome_secret=derive(member_prk, b"welcome"),
        sender_data_secret=derive(epoch_secret, b"sender data"),
        encryption_secret=derive(epoch_secret, b"encryption"),
        exporter_secret=derive(epoch_secret, b"exporter"),
        external_secret=derive(epoch_secret, b"external"),
        confirmation_key=derive(epoch_secret, b"confirm"),
        membership_key=derive(epoch_secret, b"membership"),
        resumption_psk=derive(epoch_secret, b"resumption"),
        epoch_authenticator=derive(epoch_secret, b"authentication"),
        init_secret=derive(epoch_secret, b"init"),
    )


def epoch_secrets(
    suite: CipherSuite,
    init_secret: bytes,
    commit_secret: bytes | None,
    psk_secret: bytes | None,
    group_context: bytes,
) -> EpochSecrets:
    """One step of the §8 key schedule; a None commit secret is the all-zero vector."""
    commit = commit_secret or bytes(suite.hash_len)
    joiner = joiner_secret(suite, init_secret, commit, group_context)
    return epoch_secrets_from_joiner(suite, joiner, psk_secret, group_context)


def welcome_secret(suite: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    """welcome_secret = DeriveSecret(Extract(joiner_secret, psk_secret), "welcome") (§8)."""
    member_prk = suite.extract(joiner, psk_secret or bytes(suite.hash_len))
    return suite.derive_secret(member_prk, b"welcome")


def welcome_key_nonce(suite: CipherSuite, welcome: bytes) -> tuple[bytes, bytes]:
    """welcome_key and welcome_nonce (RFC 9420 §12.4.3.1)."""
    key = suite.expand_with_label(welcome, b"key", b"", suite.aead_key_len)
    nonce = suite.expand_with_label(welcome, b"nonce", b"", suite.aead_nonce_len)
    return key, nonce


def mls_exporter(
    suite: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """MLS-Exporter (§8.5): the context is hashed before it becomes ExpandWithLabel's context."""
    secret = suite.derive_secret(exporter_secret, label)
    return suite.expand_with_label(secret, b"exported", suite.hash(context), length)


def external_key_pair(suite: CipherSuite, external_secret: bytes) -> tuple[bytes, bytes]:
    """(external_priv, external_pub) = KEM.DeriveKeyPair(external_secret) (§8)."""
    return suite.derive_key_pair(external_secret)


EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


def external_init_send(
    suite: CipherSuite, external_pub: bytes, info: bytes = b""
) -> tuple[bytes, bytes]:
    """A joiner's (kem_output, init_secret) for an external commit (§8.3).

    The RFC's pseudocode uses an empty HPKE info (SetupBaseS(external_pub, "")), which is the
    default; its prose mentions the GroupInfo, so ``info`` stays a parameter.
    """
    return suite.hpke_send_export(external_pub, info, EXTERNAL_INIT_LABEL, suite.hash_len)


def external_init_receive(
    suite: CipherSuite, external_priv: bytes, kem_output: bytes, info: bytes = b""
) -> bytes:
    """The init_secret a member recovers from an ExternalInit's kem_output (§8.3)."""
    return suite.hpke_receive_export(
        external_priv, kem_output, info, EXTERNAL_INIT_LABEL, suite.hash_len
    )


def psk_label(psk_id: bytes, index: int, count: int) -> bytes:
    """PSKLabel {PreSharedKeyID id; uint16 index; uint16 count} (§8.4), id given encoded."""
    return psk_id + index.to_bytes(2, "big") + count.to_bytes(2, "big")


def psk_secret(suite: CipherSuite, psks: Sequence[tuple[bytes, bytes]]) -> bytes:
    """psk_secret (§8.4) of (encoded PreSharedKeyID, psk) pairs in their listed order."""
    zero = bytes(suite.hash_len)
    secret = zero
    count = len(psks)
    for index, (psk_id, psk) in enumerate(psks):
        extracted = suite.extract(zero, psk)
        label = psk_label(psk_id, index, count)
        psk_input = suite.expand_with_label(extracted, b"derived psk", label, suite.hash_len)
        secret = suite.extract(psk_input, secret)
    return secret
