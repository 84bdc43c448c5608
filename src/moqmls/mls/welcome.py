"""Welcome and GroupInfo (RFC 9420 §12.4.3): building them and opening them.

The committer signs a GroupInfo for the new epoch, encrypts it under a key from the
``welcome_secret`` and encrypts the ``joiner_secret`` (and the path secret of the lowest common
ancestor) to each new member's KeyPackage init key. A joiner finds its entry by KeyPackageRef,
decrypts its GroupSecrets, derives the welcome secret (with any PSKs) and decrypts the
GroupInfo. Everything here is pure; the group state machine (`moqmls.mls.group`) does the
tree checks and the key schedule around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moqmls.mls.codec import guard_decode
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import DecryptionError, MLSError, SignatureError, WelcomeError
from moqmls.mls.key_package import KeyPackagePrivate, key_package_ref
from moqmls.mls.key_schedule import welcome_key_nonce
from moqmls.mls.structs import (
    EncryptedGroupSecrets,
    GroupInfo,
    GroupSecrets,
    HPKECiphertext,
    KeyPackage,
    PathSecret,
    PreSharedKeyID,
    Welcome,
)


def sign_group_info(suite: CipherSuite, signature_priv: bytes, unsigned: GroupInfo) -> GroupInfo:
    """§12.4.3: SignWithLabel(., "GroupInfoTBS", GroupInfoTBS)."""
    signature = suite.sign_with_label(signature_priv, b"GroupInfoTBS", unsigned.tbs().encode())
    return GroupInfo(
        unsigned.group_context,
        unsigned.extensions,
        unsigned.confirmation_tag,
        unsigned.signer,
        signature,
    )


def verify_group_info(suite: CipherSuite, group_info: GroupInfo, signer_pub: bytes) -> None:
    """§12.4.3.1: the GroupInfo signature by the signer's leaf; raises `SignatureError`."""
    try:
        ok = suite.verify_with_label(
            signer_pub, b"GroupInfoTBS", group_info.tbs().encode(), group_info.signature
        )
    except MLSError as exc:
        raise SignatureError(f"GroupInfo signer key unusable: {exc}") from exc
    if not ok:
        raise SignatureError("GroupInfo signature does not verify")


@dataclass(frozen=True)
class NewMember:
    """One joiner of a Welcome: its KeyPackage and, with a path, its LCA path secret."""

    key_package: KeyPackage
    path_secret: bytes | None


def build_welcome(
    suite: CipherSuite,
    group_info: GroupInfo,
    joiner_secret: bytes,
    welcome_secret: bytes,
    psks: Sequence[PreSharedKeyID],
    new_members: Sequence[NewMember],
) -> Welcome:
    """§12.4.3.1: one Welcome covering every new member."""
    key, nonce = welcome_key_nonce(suite, welcome_secret)
    encrypted_group_info = suite.aead_encrypt(key, nonce, b"", group_info.encode())
    secrets = []
    for member in new_members:
        path = None if member.path_secret is None else PathSecret(member.path_secret)
        group_secrets = GroupSecrets(joiner_secret, path, tuple(psks))
        kem_output, ciphertext = suite.encrypt_with_label(
            member.key_package.init_key,
            b"Welcome",
            encrypted_group_info,
            group_secrets.encode(),
        )
        secrets.append(
            EncryptedGroupSecrets(
                key_package_ref(suite, member.key_package),
                HPKECiphertext(kem_output, ciphertext),
            )
        )
    return Welcome(suite.suite_id, tuple(secrets), encrypted_group_info)


def open_group_secrets(
    suite: CipherSuite, welcome: Welcome, key_package: KeyPackagePrivate
) -> GroupSecrets:
    """§12.4.3.1: find our entry by KeyPackageRef and decrypt it with the init key."""
    if welcome.cipher_suite != key_package.key_package.cipher_suite:
        raise WelcomeError("Welcome cipher suite differs from the KeyPackage's")
    ref = key_package_ref(suite, key_package.key_package)
    entry = next((s for s in welcome.secrets if s.new_member == ref), None)
    if entry is None:
        raise WelcomeError("Welcome has no entry for this KeyPackage")
    ciphertext = entry.encrypted_group_secrets
    plaintext = suite.decrypt_with_label(
        key_package.init_priv,
        b"Welcome",
        welcome.encrypted_group_info,
        ciphertext.kem_output,
        ciphertext.ciphertext,
    )
    return guard_decode(lambda: GroupSecrets.decode(plaintext))


def open_group_info(suite: CipherSuite, welcome: Welcome, welcome_secret: bytes) -> GroupInfo:
    """§12.4.3.1: decrypt and parse the GroupInfo with the welcome key and nonce."""
    key, nonce = welcome_key_nonce(suite, welcome_secret)
    try:
        plaintext = suite.aead_decrypt(key, nonce, b"", welcome.encrypted_group_info)
    except DecryptionError as exc:
        raise WelcomeError(f"GroupInfo does not decrypt: {exc}") from exc
    return guard_decode(lambda: GroupInfo.decode(plaintext))
