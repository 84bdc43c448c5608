"""KeyPackages (RFC 9420 §10): creation, validation (§10.1) and KeyPackageRef (§5.2).

A KeyPackage is what a client publishes so that a group member can add it: an HPKE init key
(to which the Welcome is encrypted), the LeafNode that will represent it in the tree, and a
signature over both. `make_key_package` returns the KeyPackage together with its private half,
`KeyPackagePrivate`, which the client keeps to join from the Welcome later.

Example::

    kp_bytes, kp_private = make_key_package(b"alice")      # MLSMessage(KeyPackage) bytes
    key_package = parse_key_package(kp_bytes)             # KeyPackage struct, signature checked
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moqmls.mls.codec import guard_decode
from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.errors import DecodeError, KeyPackageError, LeafNodeValidationError, MLSError
from moqmls.mls.leaf_validation import check_own_fields, sign_leaf_node, verify_leaf_signature
from moqmls.mls.structs import (
    Capabilities,
    Credential,
    CredentialType,
    Extension,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    MLSMessage,
    ProposalType,
    ProtocolVersion,
    WireFormat,
)

SUPPORTED_SUITES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
# Default proposal/extension types (RFC 9420) are never listed in capabilities (§7.2);
# SelfRemove is not a default type, so clients that can process it say so.
DEFAULT_CAPABILITY_PROPOSALS: tuple[int, ...] = (ProposalType.SELF_REMOVE,)
FOREVER = Lifetime(0, (1 << 64) - 1)


@dataclass(frozen=True)
class KeyPackagePrivate:
    """The private half of one KeyPackage: kept by its client to join from a Welcome."""

    key_package: KeyPackage
    init_priv: bytes
    encryption_priv: bytes
    signature_priv: bytes


def default_capabilities(suite_id: int) -> Capabilities:
    """§7.2: mls10, the group's suite (plus the others we implement), basic credentials."""
    suites = (suite_id, *(s for s in SUPPORTED_SUITES if s != suite_id))
    return Capabilities(
        versions=(ProtocolVersion.MLS10,),
        cipher_suites=suites,
        extensions=(),
        proposals=DEFAULT_CAPABILITY_PROPOSALS,
        credentials=(CredentialType.BASIC,),
    )


def make_key_package(
    identity: bytes,
    suite_id: int = 0x0001,
    *,
    signature_priv: bytes | None = None,
    lifetime: Lifetime = FOREVER,
    capabilities: Capabilities | None = None,
    extensions: Sequence[Extension] = (),
    leaf_extensions: Sequence[Extension] = (),
) -> tuple[bytes, KeyPackagePrivate]:
    """§10: a fresh KeyPackage as MLSMessage bytes, and its private half.

    ``signature_priv`` reuses an existing signature key (a client's long-term identity);
    otherwise a new one is generated.
    """
    suite = cipher_suite(suite_id)
    if signature_priv is None:
        signature_priv, signature_pub = suite.generate_signature_key_pair()
    else:
        signature_pub = suite.signature_public_key(signature_priv)
    init_priv, init_pub = suite.generate_key_pair()
    encryption_priv, encryption_pub = suite.generate_key_pair()
    unsigned = LeafNode(
        encryption_key=encryption_pub,
        signature_key=signature_pub,
        credential=Credential.basic(identity),
        capabilities=capabilities or default_capabilities(suite_id),
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=lifetime,
        parent_hash=None,
        extensions=tuple(leaf_extensions),
        signature=b"",
    )
    leaf = sign_leaf_node(suite, signature_priv, unsigned)
    tbs = KeyPackage(ProtocolVersion.MLS10, suite_id, init_pub, leaf, tuple(extensions), b"").tbs()
    signature = suite.sign_with_label(signature_priv, b"KeyPackageTBS", tbs.encode())
    key_package = KeyPackage(
        tbs.version, tbs.cipher_suite, tbs.init_key, tbs.leaf_node, tbs.extensions, signature
    )
    private = KeyPackagePrivate(key_package, init_priv, encryption_priv, signature_priv)
    return MLSMessage.of(key_package).encode(), private


def key_package_ref(suite: CipherSuite, key_package: KeyPackage) -> bytes:
    """§5.2: KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)."""
    return suite.ref_hash(b"MLS 1.0 KeyPackage Reference", key_package.encode())


def decode_key_package(data: bytes) -> KeyPackage:
    """Decode an MLSMessage carrying a KeyPackage; no signature is checked yet."""
    message = guard_decode(lambda: MLSMessage.decode(data))
    if message.wire_format != WireFormat.MLS_KEY_PACKAGE or message.key_package is None:
        raise DecodeError(f"expected an MLSMessage(KeyPackage), got {message.wire_format!r}")
    key_package = message.key_package
    if key_package.version != message.version:
        raise KeyPackageError("KeyPackage version differs from its MLSMessage version")
    return key_package


def parse_key_package(data: bytes, now: int | None = None) -> KeyPackage:
    """Decode an MLSMessage(KeyPackage) and check every rule that needs no group (§10.1):
    both signatures, the leaf's own fields (§7.3) and, with ``now``, its lifetime.

    What needs a group (its cipher suite, required capabilities, key uniqueness in the tree)
    is checked when an Add is committed (`moqmls.mls.proposals`).
    """
    key_package = decode_key_package(data)
    verify_key_package(key_package, key_package.cipher_suite)
    suite = cipher_suite(key_package.cipher_suite)
    try:
        verify_leaf_signature(suite, key_package.leaf_node, None, None)
        check_own_fields(key_package.leaf_node, None, now)
    except LeafNodeValidationError as exc:
        raise KeyPackageError(f"KeyPackage leaf: {exc}") from exc
    return key_package


def verify_key_package(key_package: KeyPackage, suite_id: int) -> None:
    """§10.1: version and suite match, leaf source, signature, init_key != encryption_key.

    Leaf node validation against a group (§7.3) is done where the tree is known.
    """
    if key_package.version != ProtocolVersion.MLS10:
        raise KeyPackageError(f"KeyPackage version {key_package.version} is not mls10")
    if key_package.cipher_suite != suite_id:
        raise KeyPackageError(
            f"KeyPackage cipher suite {key_package.cipher_suite:#06x} != group's {suite_id:#06x}"
        )
    leaf = key_package.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.KEY_PACKAGE:
        raise KeyPackageError("KeyPackage leaf_node_source is not key_package")
    if key_package.init_key == leaf.encryption_key:
        raise KeyPackageError("KeyPackage init_key equals its leaf encryption_key")
    suite = cipher_suite(suite_id)
    try:
        ok = suite.verify_with_label(
            leaf.signature_key,
            b"KeyPackageTBS",
            key_package.tbs().encode(),
            key_package.signature,
        )
    except MLSError as exc:
        raise KeyPackageError(f"KeyPackage signature key unusable: {exc}") from exc
    if not ok:
        raise KeyPackageError("KeyPackage signature does not verify")
