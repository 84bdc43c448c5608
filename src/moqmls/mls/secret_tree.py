"""The secret tree and its hash ratchets (RFC 9420 §9), and sender-data keys (§6.3.2).

Secrets are deleted as soon as they are consumed (§9.2): a parent's secret once both children
are derived, a leaf's once its two ratchets exist, a ratchet secret once the next generation's
is derived, a key and nonce once a message used them. Receivers keep the keys of skipped
generations for a bounded window (out-of-order delivery) and refuse generations too far ahead
of the ratchet. Lookups (`SecretTree.key_for`) never change state; only `consume` and
`next_key` do, so a message that fails to decrypt leaves the tree as it was.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from moqmls.mls import tree_math
from moqmls.mls.codec import (
    OPAQUE,
    UINT8,
    UINT32,
    UINT64,
    Optional,
    Struct,
    StructWire,
    Vector,
    wire,
)
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import (
    DecodeError,
    GenerationTooFarError,
    SecretReuseError,
    SecretTreeError,
)

MAX_GENERATION = (1 << 32) - 1
DEFAULT_MAX_FORWARD_DISTANCE = 1000
DEFAULT_OUT_OF_ORDER_WINDOW = 32


class RatchetType(enum.Enum):
    """The two hash ratchets of each leaf (§9.1)."""

    HANDSHAKE = b"handshake"
    APPLICATION = b"application"


@dataclass(frozen=True)
class RatchetKey:
    """ratchet_key_[i]_[j] and ratchet_nonce_[i]_[j] of one generation (§9.1)."""

    generation: int
    key: bytes
    nonce: bytes


def derive_tree_secret(
    suite: CipherSuite, secret: bytes, label: bytes, generation: int, length: int
) -> bytes:
    """DeriveTreeSecret (RFC 9420 §9): ExpandWithLabel with the generation as context."""
    return suite.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)


def sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """sender_data_key and sender_data_nonce (RFC 9420 §6.3.2) from the ciphertext sample."""
    sample = ciphertext[: suite.hash_len]
    key = suite.expand_with_label(sender_data_secret, b"key", sample, suite.aead_key_len)
    nonce = suite.expand_with_label(sender_data_secret, b"nonce", sample, suite.aead_nonce_len)
    return key, nonce


@dataclass
class HashRatchet:
    """One leaf's ratchet of one type (§9.1): the next generation's secret plus retained keys."""

    suite: CipherSuite
    next_generation: int
    secret: bytes | None  # None once generation 2^32-1 was derived: the ratchet is exhausted
    skipped: dict[int, RatchetKey] = field(default_factory=dict)

    def copy(self) -> HashRatchet:
        """An independent copy (the skipped keys are a fresh dict)."""
        return HashRatchet(self.suite, self.next_generation, self.secret, dict(self.skipped))

    def _key_at(self, secret: bytes, generation: int) -> RatchetKey:
        s = self.suite
        key = derive_tree_secret(s, secret, b"key", generation, s.aead_key_len)
        nonce = derive_tree_secret(s, secret, b"nonce", generation, s.aead_nonce_len)
        return RatchetKey(generation, key, nonce)

    def _next_secret(self, secret: bytes, generation: int) -> bytes:
        return derive_tree_secret(self.suite, secret, b"secret", generation, self.suite.hash_len)

    def _check_reachable(self, generation: int, max_forward: int) -> None:
        if not 0 <= generation <= MAX_GENERATION:
            raise SecretTreeError(f"generation {generation} is not a uint32")
        if generation in self.skipped:
            return
        if generation < self.next_generation or self.secret is None:
            raise SecretReuseError(f"generation {generation} was consumed or has expired")
        if generation - self.next_generation > max_forward:
            raise GenerationTooFarError(
                f"generation {generation} is more than {max_forward} ahead of "
                f"{self.next_generation}"
            )

    def peek(self, generation: int, max_forward: int) -> RatchetKey:
        """The key of ``generation`` without changing the ratchet."""
        self._check_reachable(generation, max_forward)
        if generation in self.skipped:
            return self.skipped[generation]
        secret = self.secret
        assert secret is not None  # _check_reachable refused an exhausted ratchet
        for j in range(self.next_generation, generation):
            secret = self._next_secret(secret, j)
        return self._key_at(secret, generation)

    def consume(self, generation: int, max_forward: int, window: int) -> RatchetKey:
        """The key of ``generation``, deleted afterwards; skipped keys stay for ``window``."""
        self._check_reachable(generation, max_forward)
        if generation in self.skipped:
            return self.skipped.pop(generation)
        secret = self.secret
        assert secret is not None
        for j in range(self.next_generation, generation):
            if generation - j < window:  # older ones would be evicted below at once
                self.skipped[j] = self._key_at(secret, j)
            secret = self._next_secret(secret, j)
        used = self._key_at(secret, generation)
        self.secret = self._next_secret(secret, generation) if generation < MAX_GENERATION else None
        self.next_generation = generation + 1
        oldest = self.next_generation - window
        for j in [j for j in self.skipped if j < oldest]:
            del self.skipped[j]
        return used


# -- saved state (not an RFC 9420 struct: this implementation's persistence format) ---------

# The ratchet kinds by their code in a saved state.
_KIND_CODES: tuple[RatchetType, ...] = (RatchetType.HANDSHAKE, RatchetType.APPLICATION)


@dataclass(frozen=True)
class SavedNodeSecret(Struct):
    """A tree-node secret not yet consumed."""

    node: int = wire(UINT32)
    secret: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class SavedRatchetKey(Struct):
    """A retained key of a skipped generation."""

    generation: int = wire(UINT32)
    key: bytes = wire(OPAQUE)
    nonce: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class SavedRatchet(Struct):
    """One leaf's ratchet of one kind (0 handshake, 1 application)."""

    leaf: int = wire(UINT32)
    kind: int = wire(UINT8)
    next_generation: int = wire(UINT64)
    secret: bytes | None = wire(Optional(OPAQUE))
    skipped: tuple[SavedRatchetKey, ...] = wire(Vector(StructWire(SavedRatchetKey)))


@dataclass(frozen=True)
class SecretTreeState(Struct):
    """Everything a `SecretTree` holds, for saving a group's state (`SecretTree.state`)."""

    n_leaves: int = wire(UINT32)
    max_forward_distance: int = wire(UINT32)
    out_of_order_window: int = wire(UINT32)
    node_secrets: tuple[SavedNodeSecret, ...] = wire(Vector(StructWire(SavedNodeSecret)))
    ratchets: tuple[SavedRatchet, ...] = wire(Vector(StructWire(SavedRatchet)))


def _saved_ratchet(leaf: int, kind: RatchetType, r: HashRatchet) -> SavedRatchet:
    skipped = tuple(SavedRatchetKey(k.generation, k.key, k.nonce) for k in r.skipped.values())
    return SavedRatchet(leaf, _KIND_CODES.index(kind), r.next_generation, r.secret, skipped)


def _ratchet_from_saved(suite: CipherSuite, n_leaves: int, r: SavedRatchet) -> HashRatchet:
    if r.leaf >= n_leaves or r.kind >= len(_KIND_CODES):
        raise DecodeError(f"saved ratchet of leaf {r.leaf}, kind {r.kind} does not exist")
    if r.next_generation > MAX_GENERATION + 1:
        raise DecodeError(f"saved ratchet at generation {r.next_generation}")
    skipped = {k.generation: RatchetKey(k.generation, k.key, k.nonce) for k in r.skipped}
    return HashRatchet(suite, r.next_generation, r.secret, skipped)


class SecretTree:
    """The secret tree of one epoch (§9): node secrets derived lazily, deleted once used."""

    def __init__(
        self,
        suite: CipherSuite,
        encryption_secret: bytes,
        n_leaves: int,
        *,
        max_forward_distance: int = DEFAULT_MAX_FORWARD_DISTANCE,
        out_of_order_window: int = DEFAULT_OUT_OF_ORDER_WINDOW,
    ) -> None:
        if n_leaves < 1 or n_leaves & (n_leaves - 1):
            # §7.8: the ratchet tree (and so the secret tree) is always full.
            raise SecretTreeError(f"{n_leaves} leaves: a tree has a power-of-two leaf count")
        self.suite = suite
        self.n_leaves = n_leaves
        self.max_forward_distance = max_forward_distance
        self.out_of_order_window = out_of_order_window
        self._nodes: dict[int, bytes] = {tree_math.root(n_leaves): encryption_secret}
        self._ratchets: dict[tuple[int, RatchetType], HashRatchet] = {}

    @classmethod
    def restore(
        cls,
        suite: CipherSuite,
        n_leaves: int,
        node_secrets: Mapping[int, bytes],
        ratchets: Mapping[tuple[int, RatchetType], HashRatchet],
        *,
        max_forward_distance: int = DEFAULT_MAX_FORWARD_DISTANCE,
        out_of_order_window: int = DEFAULT_OUT_OF_ORDER_WINDOW,
    ) -> SecretTree:
        """A tree rebuilt from `node_secrets` and `ratchets` of a saved one."""
        tree = cls(
            suite,
            b"",
            n_leaves,
            max_forward_distance=max_forward_distance,
            out_of_order_window=out_of_order_window,
        )
        tree._nodes = dict(node_secrets)
        tree._ratchets = {k: r.copy() for k, r in ratchets.items()}
        return tree

    @property
    def node_secrets(self) -> Mapping[int, bytes]:
        """The tree-node secrets not yet consumed, by node index (for saving state)."""
        return MappingProxyType(self._nodes)

    @property
    def ratchets(self) -> Mapping[tuple[int, RatchetType], HashRatchet]:
        """The leaves' ratchets created so far (for saving state; do not mutate)."""
        return MappingProxyType(self._ratchets)

    def state(self) -> SecretTreeState:
        """The whole tree (unconsumed secrets, ratchets, limits) as a saveable value."""
        return SecretTreeState(
            self.n_leaves,
            self.max_forward_distance,
            self.out_of_order_window,
            tuple(SavedNodeSecret(x, secret) for x, secret in sorted(self._nodes.items())),
            tuple(_saved_ratchet(leaf, kind, r) for (leaf, kind), r in self._ratchets.items()),
        )

    @classmethod
    def from_state(cls, suite: CipherSuite, saved: SecretTreeState) -> SecretTree:
        """The tree saved by `state`; an inconsistent state raises `DecodeError`."""
        n = saved.n_leaves
        if n < 1 or n & (n - 1):
            raise DecodeError(f"saved secret tree of {n} leaves")
        if any(t.node >= tree_math.node_width(n) for t in saved.node_secrets):
            raise DecodeError(f"saved secret tree has a node beyond its {n} leaves")
        tree = cls(
            suite,
            b"",
            n,
            max_forward_distance=saved.max_forward_distance,
            out_of_order_window=saved.out_of_order_window,
        )
        tree._nodes = {t.node: t.secret for t in saved.node_secrets}
        for r in saved.ratchets:
            ratchet = _ratchet_from_saved(suite, n, r)  # checks r.kind before it is used
            tree._ratchets[(r.leaf, _KIND_CODES[r.kind])] = ratchet
        return tree

    def copy(self) -> SecretTree:
        """An independent copy, for staging changes that may be abandoned."""
        return SecretTree.restore(
            self.suite,
            self.n_leaves,
            self._nodes,
            self._ratchets,
            max_forward_distance=self.max_forward_distance,
            out_of_order_window=self.out_of_order_window,
        )

    def _path_from_stored(self, leaf_node: int) -> tuple[int, bytes, list[int]]:
        """The deepest stored node on the root-to-leaf path, its secret, the nodes below it."""
        path = [tree_math.root(self.n_leaves)]
        while path[-1] != leaf_node:
            x = path[-1]
            path.append(tree_math.left(x) if leaf_node < x else tree_math.right(x))
        for i in range(len(path) - 1, -1, -1):
            secret = self._nodes.get(path[i])
            if secret is not None:
                return path[i], secret, path[i + 1 :]
        raise SecretReuseError(f"leaf {leaf_node // 2}'s tree secret was already consumed")

    def _children(self, x: int, secret: bytes) -> tuple[int, bytes, int, bytes]:
        s = self.suite
        left, right = tree_math.left(x), tree_math.right(x)
        return (
            left,
            s.expand_with_label(secret, b"tree", b"left", s.hash_len),
            right,
            s.expand_with_label(secret, b"tree", b"right", s.hash_len),
        )

    def _leaf_secret(self, leaf: int, store: bool) -> bytes:
        """tree_node_[leaf]_secret; with ``store`` the walk keeps siblings, deletes parents."""
        if not 0 <= leaf < self.n_leaves:
            raise SecretTreeError(f"leaf {leaf} is outside a tree of {self.n_leaves} leaves")
        target = tree_math.leaf_to_node(leaf)
        x, secret, below = self._path_from_stored(target)
        for child in below:
            left, left_secret, right, right_secret = self._children(x, secret)
            if store:
                del self._nodes[x]
                self._nodes[left] = left_secret
                self._nodes[right] = right_secret
            x, secret = child, (left_secret if child == left else right_secret)
        if store:
            del self._nodes[target]
        return secret

    def _ratchet(self, leaf: int, kind: RatchetType, store: bool) -> HashRatchet:
        existing = self._ratchets.get((leaf, kind))
        if existing is not None:
            return existing
        leaf_secret = self._leaf_secret(leaf, store)
        s = self.suite
        made = {
            k: HashRatchet(s, 0, s.expand_with_label(leaf_secret, k.value, b"", s.hash_len))
            for k in RatchetType
        }
        if store:
            for k, ratchet in made.items():
                self._ratchets[(leaf, k)] = ratchet
        return made[kind]

    def key_for(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        """The key and nonce of a received message's generation; the tree is not changed."""
        ratchet = self._ratchet(leaf, kind, store=False)
        return ratchet.peek(generation, self.max_forward_distance)

    def consume(self, leaf: int, kind: RatchetType, generation: int) -> RatchetKey:
        """Take the key of ``generation`` (after it decrypted a message) and delete it."""
        ratchet = self._ratchet(leaf, kind, store=True)
        return ratchet.consume(generation, self.max_forward_distance, self.out_of_order_window)

    def next_key(self, leaf: int, kind: RatchetType) -> RatchetKey:
        """The sender's next key and nonce (§9.1), consumed at once so it is never reused."""
        ratchet = self._ratchet(leaf, kind, store=True)
        return ratchet.consume(ratchet.next_generation, 0, self.out_of_order_window)
