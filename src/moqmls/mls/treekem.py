"""TreeKEM: creating, merging and decrypting UpdatePaths (RFC 9420 §7.4-§7.6, §7.9, §12.4.2).

A member's private view of the tree is a `PrivateTree`: its leaf index and the HPKE key pairs it
holds, each remembered with its public key so that a key whose node was blanked or replaced is
never used (the tree is the source of truth). The committer calls `create_update_path` on a
staged copy of the tree (proposals already applied); receivers call `merge_update_path` on theirs
and then `decrypt_update_path`. Neither touches anything but the tree and values passed in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from moqmls.mls import tree_math as tm
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import CryptoError, ParentHashError, UpdatePathError
from moqmls.mls.leaf_validation import sign_leaf_node
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import (
    HPKECiphertext,
    LeafNode,
    LeafNodeSource,
    ParentHashInput,
    ParentNode,
    UpdatePath,
    UpdatePathNode,
)

UPDATE_PATH_NODE_LABEL = b"UpdatePathNode"

KeyPair = tuple[bytes, bytes]  # (public, private)


def next_path_secret(suite: CipherSuite, path_secret: bytes) -> bytes:
    """§7.4: path_secret[n] = DeriveSecret(path_secret[n-1], "path")."""
    return suite.derive_secret(path_secret, b"path")


def node_key_pair(suite: CipherSuite, path_secret: bytes) -> KeyPair:
    """§7.4: (node_pub, node_priv) from DeriveKeyPair(DeriveSecret(path_secret, "node"))."""
    priv, pub = suite.derive_key_pair(suite.derive_secret(path_secret, b"node"))
    return pub, priv


@dataclass
class PrivateTree:
    """A member's private TreeKEM state: its leaf and the node key pairs it knows (§4.2)."""

    leaf_index: int
    keys: dict[int, KeyPair] = field(default_factory=dict)

    @classmethod
    def for_leaf(cls, leaf_index: int, public: bytes, private: bytes) -> PrivateTree:
        """The state of a member that knows only its own leaf key."""
        return cls(leaf_index, {2 * leaf_index: (public, private)})

    def copy(self) -> PrivateTree:
        return PrivateTree(self.leaf_index, dict(self.keys))

    def private_key(self, tree: RatchetTree, x: int) -> bytes | None:
        """The private key of node ``x`` if held and the tree still has its public key there."""
        pair = self.keys.get(x)
        if pair is None or x >= tree.width:
            return None
        node = tree.node(x)
        if node is None or node.encryption_key != pair[0]:
            return None
        return pair[1]

    def prune(self, tree: RatchetTree) -> None:
        """Forget every key whose node is blank or holds another public key (§7.5 deletion)."""
        for x in [x for x in self.keys if self.private_key(tree, x) is None]:
            del self.keys[x]

    def absorb_path_secret(
        self, suite: CipherSuite, tree: RatchetTree, start: int, path_secret: bytes
    ) -> bytes:
        """§7.4/§12.4.3.1: set keys from ``path_secret`` at ``start`` and each non-blank node
        above it, checking each against the tree; returns the last path secret used."""
        current = path_secret
        nodes = (start, *tm.direct_path(start, tree.n_leaves))
        first = True
        for x in nodes:
            if tree.node(x) is None:
                if first:
                    raise UpdatePathError(f"path secret given for blank node {x}")
                continue
            if not first:
                current = next_path_secret(suite, current)
            first = False
            pub, priv = node_key_pair(suite, current)
            if tree.public_key(x) != pub:
                raise UpdatePathError(f"path secret does not match the public key of node {x}")
            self.keys[x] = (pub, priv)
        return current


@dataclass(frozen=True)
class CreatedPath:
    """What committing with a path produces (§12.4.2)."""

    update_path: UpdatePath
    commit_secret: bytes
    path_secrets: Mapping[int, bytes]
    private: PrivateTree
    leaf_private_key: bytes

    def path_secret_for(self, new_member: int) -> bytes | None:
        """§12.4.3.1: the path secret at the lowest common ancestor with a new member."""
        x = tm.common_ancestor(2 * self.private.leaf_index, 2 * new_member)
        return self.path_secrets.get(x)


@dataclass(frozen=True)
class DecryptedPath:
    """What a receiver learns from an UpdatePath (§7.5)."""

    commit_secret: bytes
    path_secret: bytes
    node: int
    private: PrivateTree


def _copath_children(tree: RatchetTree, leaf_index: int) -> dict[int, int]:
    x = 2 * leaf_index
    return dict(zip(tm.direct_path(x, tree.n_leaves), tm.copath(x, tree.n_leaves), strict=True))


def _chain_parent_hashes(
    suite: CipherSuite,
    tree: RatchetTree,
    path: list[int],
    keys: list[bytes],
    copath_child: Mapping[int, int],
) -> tuple[list[ParentNode], bytes]:
    """§7.9: the new parent nodes of a filtered direct path (root first hash chain) and the
    parent hash their leaf must carry. Reads only copath subtrees, which the path leaves alone."""
    nodes: list[ParentNode] = [ParentNode(b"", b"", ())] * len(path)
    above = b""
    for i in range(len(path) - 1, -1, -1):
        nodes[i] = ParentNode(keys[i], above, ())
        sibling = tree.tree_hash(copath_child[path[i]])
        above = suite.hash(ParentHashInput(keys[i], nodes[i].parent_hash, sibling).encode())
    return nodes, above


def _recipients(tree: RatchetTree, copath_node: int, exclude: Collection[int]) -> list[int]:
    """§7.6: the resolution of a copath node without the leaves added in this commit."""
    return [r for r in tree.resolution(copath_node) if r & 1 or (r >> 1) not in exclude]


def _install(
    tree: RatchetTree, leaf_index: int, path: list[int], nodes: list[ParentNode], leaf: LeafNode
) -> None:
    tree.blank_path(leaf_index)
    for x, node in zip(path, nodes, strict=True):
        tree.set_node(x, node)
    tree.set_leaf(leaf_index, leaf)


def create_update_path(
    tree: RatchetTree,
    leaf_index: int,
    sig_priv: bytes,
    group_id: bytes,
    context_for: Callable[[bytes], bytes],
    exclude: Collection[int] = (),
    leaf_template: LeafNode | None = None,
    first_path_secret: bytes | None = None,
) -> CreatedPath:
    """§7.4-§7.6: refresh the committer's path in ``tree`` (a staged copy) and encrypt it.

    ``context_for`` maps the new tree hash to the serialized provisional GroupContext;
    ``exclude`` lists the leaves added by this commit; ``leaf_template`` supplies the fields of
    the new leaf (credential, capabilities, extensions, signature key), by default the current one.
    """
    suite = tree.suite
    current = tree.leaf(leaf_index)
    if current is None:
        raise UpdatePathError(f"leaf {leaf_index} is blank")
    template = leaf_template if leaf_template is not None else current
    path = list(tree.filtered_direct_path(leaf_index))
    secret = first_path_secret if first_path_secret is not None else os.urandom(suite.hash_len)
    secrets: list[bytes] = []
    pairs: list[KeyPair] = []
    for _ in path:
        secrets.append(secret)
        pairs.append(node_key_pair(suite, secret))
        secret = next_path_secret(suite, secret)
    commit_secret = secret
    copath_child = _copath_children(tree, leaf_index)
    nodes, leaf_parent_hash = _chain_parent_hashes(
        suite, tree, path, [pub for pub, _ in pairs], copath_child
    )
    leaf_priv, leaf_pub = suite.generate_key_pair()
    unsigned = LeafNode(
        leaf_pub,
        template.signature_key,
        template.credential,
        template.capabilities,
        LeafNodeSource.COMMIT,
        None,
        leaf_parent_hash,
        template.extensions,
        b"",
    )
    leaf = sign_leaf_node(suite, sig_priv, unsigned, group_id, leaf_index)
    _install(tree, leaf_index, path, nodes, leaf)
    context = context_for(tree.tree_hash())
    path_nodes = []
    for x, secret_x, (pub, _) in zip(path, secrets, pairs, strict=True):
        cts = []
        for r in _recipients(tree, copath_child[x], exclude):
            kem_output, ct = suite.encrypt_with_label(
                tree.public_key(r), UPDATE_PATH_NODE_LABEL, context, secret_x
            )
            cts.append(HPKECiphertext(kem_output, ct))
        path_nodes.append(UpdatePathNode(pub, tuple(cts)))
    private = PrivateTree(leaf_index, {2 * leaf_index: (leaf_pub, leaf_priv)})
    private.keys.update(zip(path, pairs, strict=True))
    return CreatedPath(
        UpdatePath(leaf, tuple(path_nodes)),
        commit_secret,
        dict(zip(path, secrets, strict=True)),
        private,
        leaf_priv,
    )


def merge_update_path(
    tree: RatchetTree, sender: int, update_path: UpdatePath, exclude: Collection[int] = ()
) -> None:
    """§7.5 "merges UpdatePath into the tree": checks shape and the leaf's parent hash first,
    then blanks the sender's direct path and installs the new nodes and leaf.

    The leaf itself is validated by the caller (§7.3, `validate_leaf_node` with source commit).
    The tree is only modified once every check has passed.
    """
    suite = tree.suite
    if tree.leaf(sender) is None:
        raise UpdatePathError(f"UpdatePath from blank leaf {sender}")
    path = list(tree.filtered_direct_path(sender))
    if len(update_path.nodes) != len(path):
        raise UpdatePathError(
            f"UpdatePath has {len(update_path.nodes)} nodes, filtered direct path {len(path)}"
        )
    copath_child = _copath_children(tree, sender)
    for x, node in zip(path, update_path.nodes, strict=True):
        expected = len(_recipients(tree, copath_child[x], exclude))
        if len(node.encrypted_path_secret) != expected:
            raise UpdatePathError(
                f"node {x}: {len(node.encrypted_path_secret)} ciphertexts for {expected} recipients"
            )
    leaf = update_path.leaf_node
    if leaf.leaf_node_source != LeafNodeSource.COMMIT:
        raise UpdatePathError("an UpdatePath leaf must have leaf_node_source commit")
    keys = [n.encryption_key for n in update_path.nodes]
    nodes, expected_hash = _chain_parent_hashes(suite, tree, path, keys, copath_child)
    if leaf.parent_hash != expected_hash:
        raise ParentHashError("the committer's leaf does not carry the parent hash of its path")
    _install(tree, sender, path, nodes, leaf)


def _own_recipient(
    tree: RatchetTree, private: PrivateTree, recipients: list[int]
) -> tuple[int, bytes]:
    """The position in ``recipients`` of a node on our own path whose key we hold."""
    me = 2 * private.leaf_index
    mine = {me, *tm.direct_path(me, tree.n_leaves)}
    for position, r in enumerate(recipients):
        key = private.private_key(tree, r) if r in mine else None
        if key is not None:
            return position, key
    raise UpdatePathError("no key of this member is in the resolution of the copath node")


def decrypt_update_path(
    tree: RatchetTree,
    private: PrivateTree,
    sender: int,
    update_path: UpdatePath,
    context: bytes,
    exclude: Collection[int] = (),
) -> DecryptedPath:
    """§7.5 "decrypts the path secrets": after `merge_update_path` on ``tree``, find the
    ciphertext for a node we hold, derive the rest of the path and check every public key.

    Returns a new `PrivateTree`; ``private`` is left untouched.
    """
    suite = tree.suite
    if private.leaf_index == sender:
        raise UpdatePathError("a member cannot decrypt its own UpdatePath")
    path = list(tree.filtered_direct_path(sender))
    copath_child = _copath_children(tree, sender)
    mine = private.leaf_index
    i = next((j for j, x in enumerate(path) if mine in tm.subtree_leaves(copath_child[x])), None)
    if i is None:
        raise UpdatePathError("this member is not under the sender's filtered direct path")
    c = copath_child[path[i]]
    position, key = _own_recipient(tree, private, _recipients(tree, c, exclude))
    ciphertexts = update_path.nodes[i].encrypted_path_secret
    if position >= len(ciphertexts):
        raise UpdatePathError("missing ciphertext for this member's resolution node")
    ct = ciphertexts[position]
    try:
        path_secret = suite.decrypt_with_label(
            key, UPDATE_PATH_NODE_LABEL, context, ct.kem_output, ct.ciphertext
        )
    except CryptoError as exc:
        raise UpdatePathError(f"cannot decrypt the path secret: {exc}") from exc
    updated = private.copy()
    for y in tm.direct_path(2 * sender, tree.n_leaves):
        updated.keys.pop(y, None)
    secret = path_secret
    for j in range(i, len(path)):
        if j > i:
            secret = next_path_secret(suite, secret)
        pub, priv = node_key_pair(suite, secret)
        if pub != update_path.nodes[j].encryption_key:
            raise UpdatePathError(f"derived public key of node {path[j]} does not match")
        updated.keys[path[j]] = (pub, priv)
    return DecryptedPath(next_path_secret(suite, secret), path_secret, path[i], updated)
