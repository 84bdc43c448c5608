"""Leaf node validation (RFC 9420 §7.3, with §7.2 and §11.1).

`validate_leaf_node` checks one LeafNode arriving in a KeyPackage, an Update or a Commit against
the group's tree; `validate_tree_leaves` checks every leaf of a tree being joined in one linear
pass (the pairwise credential-type rule is evaluated with two set operations, not n^2 lookups).
Credential validation beyond the credential type (§5.3.1) belongs to the application.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from moqmls.mls.codec import encode_varint
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import CryptoError, LeafNodeValidationError
from moqmls.mls.ratchet_tree import MemberSummary, RatchetTree
from moqmls.mls.structs import LeafNode, LeafNodeSource, RequiredCapabilities

LEAF_NODE_TBS_LABEL = b"LeafNodeTBS"


def sign_leaf_node(
    suite: CipherSuite,
    signature_priv: bytes,
    leaf: LeafNode,
    group_id: bytes | None = None,
    leaf_index: int | None = None,
) -> LeafNode:
    """§7.2: ``leaf`` signed: SignWithLabel(., "LeafNodeTBS", LeafNodeTBS)."""
    tbs = leaf.tbs(group_id, leaf_index).encode()
    signature = suite.sign_with_label(signature_priv, LEAF_NODE_TBS_LABEL, tbs)
    return dataclasses.replace(leaf, signature=signature)


def leaf_tbs_bytes(
    leaf: LeafNode, group_id: bytes, leaf_index: int, encoded: bytes | None = None
) -> bytes:
    """§7.2: the encoded LeafNodeTBS; from ``encoded`` (the leaf's own encoding) if given.

    LeafNodeTBS is LeafNode's fields up to the signature, then group_id and leaf_index for
    update/commit leaves; slicing the received encoding saves re-encoding every leaf on join.
    """
    if encoded is None:
        return leaf.tbs(group_id, leaf_index).encode()
    trailer = len(encode_varint(len(leaf.signature))) + len(leaf.signature)
    tbs = encoded[: len(encoded) - trailer]
    if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
        return tbs
    return tbs + encode_varint(len(group_id)) + group_id + leaf_index.to_bytes(4, "big")


def leaf_signature_valid(
    suite: CipherSuite,
    leaf: LeafNode,
    group_id: bytes | None,
    leaf_index: int | None,
    encoded: bytes | None = None,
) -> bool:
    """§7.2: whether the leaf's signature verifies (group_id/leaf_index for update, commit)."""
    if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
        tbs = leaf_tbs_bytes(leaf, b"", 0, encoded)
    elif group_id is None or leaf_index is None:
        return False
    else:
        tbs = leaf_tbs_bytes(leaf, group_id, leaf_index, encoded)
    try:
        return suite.verify_with_label(leaf.signature_key, LEAF_NODE_TBS_LABEL, tbs, leaf.signature)
    except CryptoError:
        return False


def verify_leaf_signature(
    suite: CipherSuite,
    leaf: LeafNode,
    group_id: bytes | None,
    leaf_index: int | None,
    encoded: bytes | None = None,
) -> None:
    """§7.3: raise `LeafNodeValidationError` unless the leaf's signature verifies."""
    if not leaf_signature_valid(suite, leaf, group_id, leaf_index, encoded):
        raise LeafNodeValidationError(f"leaf {leaf_index}: signature does not verify")


def check_own_fields(
    leaf: LeafNode,
    required: RequiredCapabilities | None = None,
    now: int | None = None,
) -> None:
    """§7.2/§7.3 checks that need nothing but the leaf: capabilities, extensions, lifetime."""
    caps = leaf.capabilities
    if leaf.credential.credential_type not in caps.credentials:
        raise LeafNodeValidationError("the leaf's credential type is not in its capabilities")
    for ext in leaf.extensions:
        if ext.extension_type not in caps.extensions:
            raise LeafNodeValidationError(
                f"leaf extension {ext.extension_type} is not listed in its capabilities"
            )
    if required is not None:
        _require(required.extension_types, caps.extensions, "extension")
        _require(required.proposal_types, caps.proposals, "proposal")
        _require(required.credential_types, caps.credentials, "credential")
    lifetime = leaf.lifetime
    if (
        now is not None
        and lifetime is not None
        and not lifetime.not_before <= now <= lifetime.not_after
    ):
        raise LeafNodeValidationError("the current time is outside the leaf's lifetime")


def _require(needed: Iterable[int], offered: tuple[int, ...], what: str) -> None:
    missing = [t for t in needed if t not in offered]
    if missing:
        raise LeafNodeValidationError(f"required {what} types {missing} not supported")


def validate_leaf_node(
    suite: CipherSuite,
    leaf: LeafNode,
    *,
    source: LeafNodeSource,
    tree: RatchetTree,
    group_id: bytes | None,
    leaf_index: int | None,
    required: RequiredCapabilities | None = None,
    now: int | None = None,
    replaces: int | None = None,
) -> None:
    """§7.3: validate a LeafNode arriving in a KeyPackage, Update or Commit.

    ``leaf_index`` is the leaf the node occupies (signature context for update/commit);
    ``replaces`` is the member leaf it replaces (Update, Commit), excluded from uniqueness.
    """
    if leaf.leaf_node_source != source:
        raise LeafNodeValidationError(
            f"leaf_node_source is {leaf.leaf_node_source.name}, expected {source.name}"
        )
    verify_leaf_signature(suite, leaf, group_id, leaf_index)
    check_own_fields(leaf, required, now)
    old = tree.leaf(replaces) if replaces is not None else None
    if (
        source == LeafNodeSource.UPDATE
        and old is not None
        and old.encryption_key == leaf.encryption_key
    ):
        raise LeafNodeValidationError("an Update must change the encryption key")
    summary = tree.summary()
    if old is not None:
        summary.count(old, -1)  # the replaced leaf is no "other member"; restored below
    try:
        _check_against_members(leaf, summary)
    finally:
        if old is not None:
            summary.count(old, 1)


def _check_against_members(leaf: LeafNode, others: MemberSummary) -> None:
    """§7.3 credential-type support both ways and key uniqueness, O(1) via the summary."""
    if others.credentials[leaf.credential.credential_type] < others.members:
        raise LeafNodeValidationError("a member does not support the leaf's credential type")
    for used in others.credential_types:
        if used not in leaf.capabilities.credentials:
            raise LeafNodeValidationError(f"the leaf does not support credential type {used}")
    if others.signature_keys[leaf.signature_key]:
        raise LeafNodeValidationError("signature key already used by another member")
    if others.encryption_keys[leaf.encryption_key]:
        raise LeafNodeValidationError("encryption key already used by another member")


def validate_tree_leaves(
    suite: CipherSuite,
    tree: RatchetTree,
    group_id: bytes,
    required: RequiredCapabilities | None = None,
    now: int | None = None,
) -> None:
    """§7.3 for every leaf of a tree being joined (§12.4.3.1), in one linear pass.

    The signatures are verified first (see `_signatures_valid`); the leaves are then checked in
    index order, each leaf's signature before its other fields, so the error raised for a tree
    with several bad leaves is always the same one.
    """
    members = list(tree.members())
    jobs = [(leaf, index, tree.encoded(2 * index)) for index, leaf in members]
    valid = _signatures_valid(suite, group_id, jobs)
    in_use: set[int] = set()
    supported_by_all: set[int] | None = None
    signature_keys: set[bytes] = set()
    encryption_keys: set[bytes] = set()
    for (index, leaf), signature_ok in zip(members, valid, strict=True):
        if not signature_ok:
            raise LeafNodeValidationError(f"leaf {index}: signature does not verify")
        check_own_fields(leaf, required, now)
        in_use.add(leaf.credential.credential_type)
        offered = set(leaf.capabilities.credentials)
        supported_by_all = offered if supported_by_all is None else supported_by_all & offered
        if leaf.signature_key in signature_keys or leaf.encryption_key in encryption_keys:
            raise LeafNodeValidationError(f"leaf {index} repeats another member's key")
        signature_keys.add(leaf.signature_key)
        encryption_keys.add(leaf.encryption_key)
    if supported_by_all is not None and not in_use <= supported_by_all:
        raise LeafNodeValidationError("a credential type in use is not supported by every member")


# Below this many leaves one thread verifies them all (a worker thread costs ~0.1 ms to start).
_PARALLEL_MIN_LEAVES = 64

_Job = tuple[LeafNode, int, bytes]


def _signatures_valid(suite: CipherSuite, group_id: bytes, jobs: Sequence[_Job]) -> list[bool]:
    """Whether each leaf's signature verifies, in the order of ``jobs``.

    `cryptography` releases the GIL while it verifies, so for a large tree a second thread
    verifies the upper half while this one does the lower half (twice as fast on two cores).
    Each result is a plain bool and nothing else is shared, so the outcome does not depend on
    scheduling; the worker is gone when this returns.
    """

    def verify(chunk: Sequence[_Job]) -> list[bool]:
        return [leaf_signature_valid(suite, leaf, group_id, i, raw) for leaf, i, raw in chunk]

    if len(jobs) < _PARALLEL_MIN_LEAVES:
        return verify(jobs)
    half = len(jobs) // 2
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mls-verify") as pool:
        upper = pool.submit(verify, jobs[half:])
        return verify(jobs[:half]) + upper.result()
