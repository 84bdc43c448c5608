"""The ratchet tree (RFC 9420 §4.1, §7.1, §7.7-§7.9, §12.1.1-§12.1.3, §12.4.3.3).

A `RatchetTree` holds the public state of a group's tree as an array of nodes (§4.1, Appendix C):
leaves at even indices, parents at odd ones, always ``2^d`` leaves. Tree hashes and resolutions
are cached per node; every mutation invalidates only the changed node and its direct path, so an
Add or an UpdatePath costs O(log n) hashing. Node encodings are cached too (kept from the wire
when decoding), so joining hashes and verifies a tree without re-encoding it. `copy` duplicates
four flat lists (the nodes are frozen values shared between copies): cheap enough to stage a
commit on a copy and drop it if the commit is rejected.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from moqmls.mls import tree_math as tm
from moqmls.mls.codec import Reader, encode_varint, guard_decode
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import InvalidOptionalError, ParentHashError, TreeError
from moqmls.mls.structs import (
    LeafNode,
    Node,
    NodeType,
    ParentHashInput,
    ParentNode,
)

TreeNode = LeafNode | ParentNode | None

# More missing hashes than this and `tree_hash` fills them all in one bottom-up sweep.
_BULK_HASH_THRESHOLD = 64


@dataclass
class MemberSummary:
    """Counts over the members' leaves (keys, credential types, capabilities), kept up to date
    as leaves change so that §7.3 uniqueness and §12.2 support checks cost O(1) per leaf."""

    members: int = 0
    signature_keys: Counter[bytes] = field(default_factory=Counter)
    encryption_keys: Counter[bytes] = field(default_factory=Counter)
    credential_types: Counter[int] = field(default_factory=Counter)
    credentials: Counter[int] = field(default_factory=Counter)
    proposals: Counter[int] = field(default_factory=Counter)
    extensions: Counter[int] = field(default_factory=Counter)

    def count(self, leaf: LeafNode, sign: int) -> None:
        """Add (``sign`` 1) or withdraw (-1) one leaf's contribution."""
        caps = leaf.capabilities
        self.members += sign
        for counter, keys in (
            (self.signature_keys, (leaf.signature_key,)),
            (self.encryption_keys, (leaf.encryption_key,)),
            (self.credential_types, (leaf.credential.credential_type,)),
        ):
            _bump(counter, keys, sign)
        _bump(self.credentials, set(caps.credentials), sign)
        _bump(self.proposals, set(caps.proposals), sign)
        _bump(self.extensions, set(caps.extensions), sign)

    @classmethod
    def of(cls, leaves: Sequence[LeafNode]) -> MemberSummary:
        """The summary of these leaves, counted in bulk."""
        summary = cls(
            len(leaves),
            Counter(leaf.signature_key for leaf in leaves),
            Counter(leaf.encryption_key for leaf in leaves),
            Counter(leaf.credential.credential_type for leaf in leaves),
        )
        # Members mostly share one Capabilities value: count distinct values, then expand.
        shapes = Counter(
            (c.credentials, c.proposals, c.extensions) for c in (x.capabilities for x in leaves)
        )
        for (credentials, proposals, extensions), n in shapes.items():
            for counter, types in (
                (summary.credentials, credentials),
                (summary.proposals, proposals),
                (summary.extensions, extensions),
            ):
                for t in set(types):
                    counter[t] += n
        return summary

    def copy(self) -> MemberSummary:
        return MemberSummary(
            self.members,
            self.signature_keys.copy(),
            self.encryption_keys.copy(),
            self.credential_types.copy(),
            self.credentials.copy(),
            self.proposals.copy(),
            self.extensions.copy(),
        )


def _bump(counter: Counter[Any], keys: Iterable[Any], sign: int) -> None:
    for key in keys:
        value = counter[key] + sign
        if value:
            counter[key] = value
        else:
            del counter[key]


class RatchetTree:
    """The public ratchet tree of one epoch, with cached tree hashes and resolutions."""

    __slots__ = (
        "_hashes",
        "_missing_hashes",
        "_n_leaves",
        "_nodes",
        "_parent_keys",
        "_raw",
        "_res",
        "_summary",
        "suite",
    )

    def __init__(
        self,
        suite: CipherSuite,
        nodes: list[TreeNode],
        n_leaves: int,
        raw: list[bytes | None] | None = None,
    ) -> None:
        self.suite = suite
        self._nodes = nodes
        self._n_leaves = n_leaves
        self._hashes: list[bytes | None] = [None] * len(nodes)
        self._missing_hashes = len(nodes)  # how many entries of _hashes are None
        self._res: list[tuple[int, ...] | None] = [None] * len(nodes)
        # Each node's encoding: kept from the wire on decode, so joining hashes and verifies
        # 1000 leaves without re-encoding them (DESIGN.md "Cost model").
        self._raw: list[bytes | None] = raw if raw is not None else [None] * len(nodes)
        self._summary: MemberSummary | None = None
        # Encryption keys of the non-blank parent nodes (built on first use, then maintained).
        self._parent_keys: Counter[bytes] | None = None

    # ------------------------------------------------------------------ construction / export

    @classmethod
    def with_creator(cls, suite: CipherSuite, leaf: LeafNode) -> RatchetTree:
        """§11: the one-member tree of a group's creator."""
        return cls(suite, [leaf], 1)

    @classmethod
    def from_nodes(
        cls,
        suite: CipherSuite,
        nodes: Sequence[Node | None],
        raw: Sequence[bytes | None] | None = None,
    ) -> RatchetTree:
        """§12.4.3.3: a tree from the ``ratchet_tree`` extension; checks shape and node types.

        ``raw`` optionally gives each node value's encoding as received (see `decode`).
        """
        if not nodes:
            raise TreeError("empty ratchet tree")
        if nodes[-1] is None:
            raise TreeError("the last node of a ratchet_tree must not be blank")
        n_leaves = 1
        while tm.node_width(n_leaves) < len(nodes):
            n_leaves *= 2
        flat: list[TreeNode] = [None] * tm.node_width(n_leaves)
        for x, node in enumerate(nodes):
            if node is None:
                continue
            if tm.is_leaf(x):
                if node.node_type != NodeType.LEAF or node.leaf_node is None:
                    raise TreeError(f"node {x} is a leaf position holding a parent node")
                flat[x] = node.leaf_node
            else:
                if node.node_type != NodeType.PARENT or node.parent_node is None:
                    raise TreeError(f"node {x} is a parent position holding a leaf node")
                flat[x] = node.parent_node
        encodings: list[bytes | None] = [None] * len(flat)
        if raw is not None:
            encodings[: len(raw)] = raw
        tree = cls(suite, flat, n_leaves, encodings)
        tree._check_unmerged_ranges()
        return tree

    @classmethod
    def decode(cls, suite: CipherSuite, data: bytes) -> RatchetTree:
        """§12.4.3.3: parse ``optional<Node> ratchet_tree<V>`` bytes into a tree."""
        nodes, raw = guard_decode(lambda: _decode_with_spans(data))
        return cls.from_nodes(suite, nodes, raw)

    def to_nodes(self) -> tuple[Node | None, ...]:
        """§12.4.3.3: the ``ratchet_tree`` array, without trailing blank nodes."""
        end = len(self._nodes)
        while end > 0 and self._nodes[end - 1] is None:
            end -= 1
        return tuple(_as_node(n) for n in self._nodes[:end])

    def encode(self) -> bytes:
        """§12.4.3.3: the ``ratchet_tree`` extension data (``optional<Node> ratchet_tree<V>``).

        Framed by hand around the cached node encodings, so a GroupInfo for a 1000-member
        group does not re-encode 1000 leaves; the tests check it against `encode_ratchet_tree`.
        """
        end = len(self._nodes)
        while end > 0 and self._nodes[end - 1] is None:
            end -= 1
        parts: list[bytes] = []
        for x in range(end):
            if self._nodes[x] is None:
                parts.append(b"\x00")
            else:
                parts.append(b"\x01\x02" if x & 1 else b"\x01\x01")
                parts.append(self.encoded(x))
        body = b"".join(parts)
        return encode_varint(len(body)) + body

    def copy(self) -> RatchetTree:
        """An independent tree sharing the (immutable) nodes and the valid cache entries."""
        twin = RatchetTree.__new__(RatchetTree)
        twin.suite = self.suite
        twin._nodes = self._nodes.copy()
        twin._n_leaves = self._n_leaves
        twin._hashes = self._hashes.copy()
        twin._missing_hashes = self._missing_hashes
        twin._res = self._res.copy()
        twin._raw = self._raw.copy()
        twin._summary = None if self._summary is None else self._summary.copy()
        twin._parent_keys = None if self._parent_keys is None else self._parent_keys.copy()
        return twin

    # ------------------------------------------------------------------ reading

    @property
    def n_leaves(self) -> int:
        """The number of leaf slots (a power of two)."""
        return self._n_leaves

    @property
    def width(self) -> int:
        """The number of node slots."""
        return len(self._nodes)

    @property
    def root(self) -> int:
        return tm.root(self._n_leaves)

    def node(self, x: int) -> TreeNode:
        """The value at node index ``x`` (None when blank)."""
        self._check_node(x)
        return self._nodes[x]

    def leaf(self, leaf_index: int) -> LeafNode | None:
        """The LeafNode at ``leaf_index``, or None when blank or beyond the tree."""
        if leaf_index < 0 or leaf_index >= self._n_leaves:
            return None
        node = self._nodes[2 * leaf_index]
        return node if isinstance(node, LeafNode) else None

    def parent(self, x: int) -> ParentNode | None:
        """The ParentNode at node index ``x`` (None when blank)."""
        self._check_node(x)
        node = self._nodes[x]
        return node if isinstance(node, ParentNode) else None

    def members(self) -> Iterator[tuple[int, LeafNode]]:
        """Every non-blank leaf as (leaf index, LeafNode), left to right."""
        for i, node in enumerate(self._nodes[0::2]):
            if node is not None:
                yield i, node  # type: ignore[misc]

    def member_count(self) -> int:
        return self.summary().members

    def summary(self) -> MemberSummary:
        """Counts over the members' leaves (built once, then maintained incrementally)."""
        if self._summary is None:
            self._summary = MemberSummary.of([leaf for _, leaf in self.members()])
        return self._summary

    def key_count(self, encryption_key: bytes) -> int:
        """How many nodes (leaves and parents) hold this HPKE public key; O(1) once warm."""
        if self._parent_keys is None:
            self._parent_keys = Counter(
                node.encryption_key for node in self._nodes[1::2] if node is not None
            )
        return self.summary().encryption_keys[encryption_key] + self._parent_keys[encryption_key]

    def _replace_parent_value(self, x: int, value: TreeNode) -> None:
        """Store a parent slot's value, keeping the parent-key counts current."""
        old = self._nodes[x]
        self._nodes[x] = value
        self._raw[x] = None
        if self._parent_keys is not None:
            if old is not None:
                _bump(self._parent_keys, (old.encryption_key,), -1)
            if value is not None:
                _bump(self._parent_keys, (value.encryption_key,), 1)

    def _replace_leaf_value(self, x: int, value: TreeNode) -> None:
        """Store a leaf slot's value, keeping the member summary current."""
        old = self._nodes[x]
        self._nodes[x] = value
        self._raw[x] = None
        if self._summary is not None:
            if isinstance(old, LeafNode):
                self._summary.count(old, -1)
            if isinstance(value, LeafNode):
                self._summary.count(value, 1)

    def public_key(self, x: int) -> bytes:
        """The HPKE public key held at node ``x``; TreeError when blank."""
        node = self.node(x)
        if node is None:
            raise TreeError(f"node {x} is blank")
        return node.encryption_key

    def find_leaf(self, leaf: LeafNode) -> int | None:
        """The index of a leaf equal to ``leaf``, if any."""
        key = leaf.encryption_key  # cheap pre-filter: dataclass equality is costly at 1000 leaves
        for i, member in self.members():
            if member.encryption_key == key and member == leaf:
                return i
        return None

    def resolution(self, x: int) -> tuple[int, ...]:
        """§4.1: the non-blank nodes covering the subtree of ``x``, with unmerged leaves."""
        cached = self._res[x]
        if cached is not None:
            return cached
        node = self._nodes[x]
        if node is not None:
            extra = node.unmerged_leaves if isinstance(node, ParentNode) else ()
            res: tuple[int, ...] = (x, *(2 * leaf for leaf in extra))
        elif tm.is_leaf(x):
            res = ()
        else:
            res = self.resolution(tm.left(x)) + self.resolution(tm.right(x))
        self._res[x] = res
        return res

    def filtered_direct_path(self, leaf_index: int) -> tuple[int, ...]:
        """§4.1: the direct path of a leaf without nodes whose copath child resolves to nothing."""
        x = 2 * leaf_index
        path = tm.direct_path(x, self._n_leaves)
        cop = tm.copath(x, self._n_leaves)
        return tuple(p for p, c in zip(path, cop, strict=True) if self.resolution(c))

    def encoded(self, x: int) -> bytes:
        """The encoding of the (non-blank) value at node ``x``, cached."""
        raw = self._raw[x]
        if raw is None:
            node = self.node(x)
            if node is None:
                raise TreeError(f"node {x} is blank")
            raw = self._raw[x] = node.encode()
        return raw

    # ------------------------------------------------------------------ §7.8 tree hash

    def tree_hash(self, x: int | None = None) -> bytes:
        """§7.8: the tree hash of node ``x`` (of the root by default)."""
        if x is None:
            x = tm.root(self._n_leaves)
        cached = self._hashes[x]
        if cached is not None:
            return cached
        if self._missing_hashes > _BULK_HASH_THRESHOLD:
            self._hash_all()
            return self._hashes[x]  # type: ignore[return-value]
        raw = None if self._nodes[x] is None else self.encoded(x)
        if tm.is_leaf(x):
            digest = self.suite.hash(_leaf_hash_input(x >> 1, raw))
        else:
            left, right = self.tree_hash(tm.left(x)), self.tree_hash(tm.right(x))
            digest = self.suite.hash(_parent_hash_input(raw, left, right))
        self._hashes[x] = digest
        self._missing_hashes -= 1
        return digest

    def _hash_all(self) -> None:
        """Fill every missing tree hash bottom up, level by level (a cold tree: after
        decoding, restoring or extending), without per-node recursion."""
        hashes, nodes, h = self._hashes, self._nodes, self.suite.hash
        for x in range(0, len(nodes), 2):
            if hashes[x] is None:
                raw = None if nodes[x] is None else self.encoded(x)
                hashes[x] = h(_leaf_hash_input(x >> 1, raw))
        k = 1
        while (1 << k) - 1 < len(nodes):
            half = 1 << (k - 1)
            for x in range((1 << k) - 1, len(nodes), 1 << (k + 1)):
                if hashes[x] is None:
                    raw = None if nodes[x] is None else self.encoded(x)
                    left, right = hashes[x - half], hashes[x + half]
                    hashes[x] = h(_parent_hash_input(raw, left, right))  # type: ignore[arg-type]
            k += 1
        self._missing_hashes = 0

    def all_tree_hashes(self) -> list[bytes]:
        """§7.8: the tree hash of every node, by node index."""
        self.tree_hash()
        return [self.tree_hash(x) for x in range(len(self._nodes))]

    # ------------------------------------------------------------------ §7.9 parent hash

    def parent_hash(self, p: int, s: int) -> bytes:
        """§7.9: the parent hash of parent node ``p`` with copath child ``s``."""
        node = self.parent(p)
        if node is None:
            raise ParentHashError(f"node {p} is blank")
        sibling_hash = self.original_sibling_tree_hash(p, s)
        data = ParentHashInput(node.encryption_key, node.parent_hash, sibling_hash).encode()
        return self.suite.hash(data)

    def original_sibling_tree_hash(self, p: int, s: int) -> bytes:
        """§7.9: the tree hash of ``s`` with the unmerged leaves of ``p`` blanked and unlisted."""
        node = self.parent(p)
        span = tm.subtree_leaves(s)
        excluded = frozenset(u for u in node.unmerged_leaves if u in span) if node else frozenset()
        return self._hash_without(s, excluded)

    def _hash_without(self, x: int, excluded: frozenset[int]) -> bytes:
        if not excluded:
            return self.tree_hash(x)
        span = tm.subtree_leaves(x)
        inside = frozenset(u for u in excluded if u in span)
        if not inside:
            return self.tree_hash(x)
        if tm.is_leaf(x):
            return self.suite.hash(_leaf_hash_input(x >> 1, None))
        node = self._nodes[x]
        raw = None
        if isinstance(node, ParentNode):
            kept = tuple(u for u in node.unmerged_leaves if u not in inside)
            raw = dataclasses.replace(node, unmerged_leaves=kept).encode()
        left = self._hash_without(tm.left(x), inside)
        right = self._hash_without(tm.right(x), inside)
        return self.suite.hash(_parent_hash_input(raw, left, right))

    def verify_parent_hashes(self) -> None:
        """§7.9.2: every non-blank parent node is parent-hash valid (checked top down)."""
        for p in range(1, len(self._nodes), 2):
            node = self._nodes[p]
            if node is None:
                continue
            assert isinstance(node, ParentNode)
            left, right = tm.left(p), tm.right(p)
            links = self._links_down(p, node, left, right) + self._links_down(p, node, right, left)
            if links != 1:
                raise ParentHashError(f"parent node {p} is linked from {links} descendants")

    def _links_down(self, p: int, node: ParentNode, c: int, s: int) -> int:
        """1 when a node in the resolution of ``c`` holds a valid parent hash of ``p``."""
        span = tm.subtree_leaves(c)
        unmerged = {2 * u for u in node.unmerged_leaves if u in span}
        res = self.resolution(c)
        rest = [r for r in res if r not in unmerged]
        if len(rest) != 1 or len(res) != len(unmerged) + 1:
            return 0
        d = self._nodes[rest[0]]
        claimed = d.parent_hash if d is not None else None
        if not claimed:
            return 0
        return int(claimed == self.parent_hash(p, s))

    # ------------------------------------------------------------------ §12.4.3.1 integrity

    def verify_structure(self) -> None:
        """§12.4.3.1: unmerged leaves are sound and no encryption key appears twice."""
        self._check_unmerged_ranges()
        unmerged = {
            p: frozenset(node.unmerged_leaves)
            for p, node in enumerate(self._nodes)
            if isinstance(node, ParentNode)
        }
        for p, leaves in unmerged.items():
            for u in leaves:
                if self.leaf(u) is None:
                    raise TreeError(f"node {p} lists blank leaf {u} as unmerged")
                for q in tm.direct_path(2 * u, self._n_leaves):
                    if q == p:
                        break
                    if q in unmerged and u not in unmerged[q]:
                        raise TreeError(f"leaf {u} unmerged at {p} but not at {q}")
        seen: set[bytes] = set()
        for node in self._nodes:
            if node is None:
                continue
            if node.encryption_key in seen:
                raise TreeError("an encryption key appears in two nodes of the tree")
            seen.add(node.encryption_key)

    def _check_unmerged_ranges(self) -> None:
        """§7.1: unmerged leaves strictly increasing and inside the parent's subtree."""
        for p in range(1, len(self._nodes), 2):
            node = self._nodes[p]
            if not isinstance(node, ParentNode) or not node.unmerged_leaves:
                continue
            span = tm.subtree_leaves(p)
            previous = -1
            for u in node.unmerged_leaves:
                if u <= previous or u not in span:
                    raise TreeError(f"node {p} has unmerged leaf {u} out of order or subtree")
                previous = u

    # ------------------------------------------------------------------ mutation

    def _check_node(self, x: int) -> None:
        if x < 0 or x >= len(self._nodes):
            raise TreeError(f"node {x} is outside the tree of width {len(self._nodes)}")

    def _check_leaf(self, leaf_index: int) -> None:
        if leaf_index < 0 or leaf_index >= self._n_leaves:
            raise TreeError(f"leaf {leaf_index} is outside the tree of {self._n_leaves} leaves")

    def _invalidate(self, x: int) -> None:
        hashes, res = self._hashes, self._res
        for y in (x, *tm.direct_path(x, self._n_leaves)):
            if hashes[y] is not None:
                hashes[y] = None
                self._missing_hashes += 1
            res[y] = None

    def set_node(self, x: int, value: TreeNode) -> None:
        """Store ``value`` at node ``x``, invalidating the caches of its direct path."""
        self._check_node(x)
        if value is not None and isinstance(value, LeafNode) != tm.is_leaf(x):
            raise TreeError(f"node {x} cannot hold a {type(value).__name__}")
        if tm.is_leaf(x):
            self._replace_leaf_value(x, value)
        else:
            self._replace_parent_value(x, value)
        self._invalidate(x)

    def set_leaf(self, leaf_index: int, leaf: LeafNode | None) -> None:
        """Store ``leaf`` at ``leaf_index`` without touching its direct path."""
        self._check_leaf(leaf_index)
        self.set_node(2 * leaf_index, leaf)

    def blank_path(self, leaf_index: int) -> None:
        """§7.4: blank every node of the leaf's direct path (not the leaf itself)."""
        self._check_leaf(leaf_index)
        for p in tm.direct_path(2 * leaf_index, self._n_leaves):
            self._replace_parent_value(p, None)
        self._invalidate(2 * leaf_index)

    def _extend(self) -> None:
        """§7.7: double the tree with a blank right subtree under a new blank root."""
        grow = len(self._nodes) + 1
        self._nodes.extend([None] * grow)
        self._hashes.extend([None] * grow)
        self._missing_hashes += grow
        self._res.extend([None] * grow)
        self._raw.extend([None] * grow)
        self._n_leaves *= 2

    def _truncate(self) -> None:
        """§12.1.3: halve the tree while its right half has no non-blank leaf."""
        while self._n_leaves > 1:
            half = self._n_leaves // 2
            if any(n is not None for n in self._nodes[2 * half :: 2]):
                return
            keep = tm.node_width(half)
            if self._parent_keys is not None:  # keep is odd: [keep::2] are the dropped parents
                dropped = [n.encryption_key for n in self._nodes[keep::2] if n is not None]
                _bump(self._parent_keys, dropped, -1)
            del self._nodes[keep:]
            self._missing_hashes -= self._hashes[keep:].count(None)  # once per halving
            del self._hashes[keep:]
            del self._res[keep:]
            del self._raw[keep:]
            self._n_leaves = half

    def add_leaf(self, leaf: LeafNode) -> int:
        """§12.1.1: place ``leaf`` in the leftmost blank leaf (extending if none); its index."""
        # `is None` per slot: list.index(None) would call LeafNode.__eq__ on every member.
        index = next((i for i, n in enumerate(self._nodes[0::2]) if n is None), self._n_leaves)
        if index == self._n_leaves:
            self._extend()
        x = 2 * index
        self._replace_leaf_value(x, leaf)
        for p in tm.direct_path(x, self._n_leaves):
            node = self._nodes[p]
            if isinstance(node, ParentNode):
                merged = tuple(sorted((*node.unmerged_leaves, index)))
                self._nodes[p] = dataclasses.replace(node, unmerged_leaves=merged)
                self._raw[p] = None
        self._invalidate(x)
        return index

    def remove_leaf(self, leaf_index: int) -> None:
        """§12.1.3: blank the leaf and its direct path, then truncate."""
        if self.leaf(leaf_index) is None:
            raise TreeError(f"leaf {leaf_index} is blank or outside the tree")
        self.blank_path(leaf_index)
        self.set_leaf(leaf_index, None)
        self._truncate()

    def update_leaf(self, leaf_index: int, leaf: LeafNode) -> None:
        """§12.1.2: replace a member's leaf and blank its direct path."""
        if self.leaf(leaf_index) is None:
            raise TreeError(f"leaf {leaf_index} is blank or outside the tree")
        self.blank_path(leaf_index)
        self.set_leaf(leaf_index, leaf)


def _as_node(value: TreeNode) -> Node | None:
    if value is None:
        return None
    if isinstance(value, LeafNode):
        return Node.leaf(value)
    return Node.parent(value)


# TreeHashInput is framed by hand around the cached node encodings: building the structs
# (LeafNodeHashInput, ParentNodeHashInput) would re-encode every node; the tests check both agree.


def _leaf_hash_input(leaf_index: int, leaf: bytes | None) -> bytes:
    """§7.8: TreeHashInput{leaf, LeafNodeHashInput{leaf_index, optional<LeafNode>}}."""
    head = b"\x01" + leaf_index.to_bytes(4, "big")
    return head + b"\x00" if leaf is None else head + b"\x01" + leaf


def _parent_hash_input(node: bytes | None, left: bytes, right: bytes) -> bytes:
    """§7.8: TreeHashInput{parent, ParentNodeHashInput{optional<ParentNode>, left, right}}."""
    body = b"\x02\x00" if node is None else b"\x02\x01" + node
    return body + _opaque(left) + _opaque(right)


_SHORT_PREFIX = [encode_varint(n) for n in range(64)]


def _opaque(data: bytes) -> bytes:
    """``opaque<V>`` of a hash: a table lookup for the one-byte lengths hashes always have."""
    n = len(data)
    return (_SHORT_PREFIX[n] if n < 64 else encode_varint(n)) + data


def _decode_with_spans(data: bytes) -> tuple[list[Node | None], list[bytes | None]]:
    """§12.4.3.3: decode ``optional<Node> ratchet_tree<V>`` keeping each node value's bytes.

    The same layout as `moqmls.mls.structs.RATCHET_TREE`, read through the public `Reader`
    so that the span of every LeafNode/ParentNode is known.
    """
    outer = Reader(data)
    length = outer.varint()
    start = len(data) - outer.remaining
    outer.read(length)
    outer.finish()
    end = start + length
    r = Reader(data, start, end)
    nodes: list[Node | None] = []
    raw: list[bytes | None] = []
    while not r.at_end():
        present = r.uint(1)
        if present == 0:
            nodes.append(None)
            raw.append(None)
            continue
        if present != 1:
            raise InvalidOptionalError(f"optional presence octet {present}")
        value_start = end - r.remaining + 1  # after the node_type octet
        nodes.append(Node.read_from(r))
        raw.append(data[value_start : end - r.remaining])
    return nodes, raw
