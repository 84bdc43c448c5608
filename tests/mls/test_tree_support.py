"""Helpers shared by the ratchet tree, TreeKEM and leaf validation tests (no tests here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.leaf_validation import sign_leaf_node
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import (
    Capabilities,
    Credential,
    CredentialType,
    Extension,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    Node,
    ParentNode,
)
from moqmls.mls.treekem import PrivateTree

SUITE: CipherSuite = cipher_suite(0x0001)
CAPABILITIES = Capabilities((1,), (1,), (), (), (CredentialType.BASIC,))
GROUP_ID = b"tree-tests"


def fake_leaf(name: str) -> LeafNode:
    """A structurally valid leaf with placeholder keys (for tree shape and hash tests)."""
    return LeafNode(
        f"enc-{name}".encode(),
        f"sig-{name}".encode(),
        Credential.basic(name.encode()),
        CAPABILITIES,
        LeafNodeSource.KEY_PACKAGE,
        Lifetime(0, 2**64 - 1),
        None,
        (),
        b"signature",
    )


def fake_parent(name: str, unmerged: tuple[int, ...] = ()) -> ParentNode:
    return ParentNode(f"enc-{name}".encode(), b"", unmerged)


def tree_of(slots: dict[int, LeafNode | ParentNode], width: int) -> RatchetTree:
    """A tree with the given nodes at the given node indices, blank elsewhere."""
    nodes: list[Node | None] = [None] * width
    for x, value in slots.items():
        nodes[x] = Node.leaf(value) if isinstance(value, LeafNode) else Node.parent(value)
    while nodes and nodes[-1] is None:
        nodes.pop()
    return RatchetTree.from_nodes(SUITE, nodes)


@dataclass
class Member:
    """A real client: signed leaf and its private keys."""

    name: str
    leaf: LeafNode
    enc_priv: bytes
    sig_priv: bytes

    def private_tree(self, leaf_index: int) -> PrivateTree:
        return PrivateTree.for_leaf(leaf_index, self.leaf.encryption_key, self.enc_priv)


def make_member(
    name: str,
    suite: CipherSuite = SUITE,
    capabilities: Capabilities = CAPABILITIES,
    extensions: tuple[Extension, ...] = (),
    lifetime: Lifetime | None = None,
) -> Member:
    """A member with fresh keys and a KeyPackage-source leaf signed by itself."""
    enc_priv, enc_pub = suite.generate_key_pair()
    sig_priv, sig_pub = suite.generate_signature_key_pair()
    unsigned = LeafNode(
        enc_pub,
        sig_pub,
        Credential.basic(name.encode()),
        capabilities,
        LeafNodeSource.KEY_PACKAGE,
        lifetime if lifetime is not None else Lifetime(0, 2**64 - 1),
        None,
        extensions,
        b"",
    )
    return Member(name, sign_leaf_node(suite, sig_priv, unsigned), enc_priv, sig_priv)


def context_for(epoch: int) -> Callable[[bytes], bytes]:
    """A provisional-GroupContext stand-in: any bytes bound to the tree hash will do here."""

    def make(tree_hash: bytes) -> bytes:
        return b"ctx" + epoch.to_bytes(8, "big") + tree_hash

    return make
