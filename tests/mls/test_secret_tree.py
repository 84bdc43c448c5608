"""The secret tree (RFC 9420 §9): deletion of consumed secrets, out-of-order window, limits.

Expected keys come from the secret-tree vectors or from `reference_key`, a direct transcription
of §9's formulas that walks leaf ranges (not node indices) and shares no code with the module.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.errors import (
    DecodeError,
    GenerationTooFarError,
    SecretReuseError,
    SecretTreeError,
)
from moqmls.mls.secret_tree import (
    RatchetKey,
    RatchetType,
    SavedNodeSecret,
    SecretTree,
    SecretTreeState,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "mls" / "secret-tree.json"
SUITE = cipher_suite(0x0001)
SECRET = bytes(range(32))
H, A = RatchetType.HANDSHAKE, RatchetType.APPLICATION


def reference_key(
    suite: CipherSuite, secret: bytes, n_leaves: int, leaf: int, label: bytes, generation: int
) -> tuple[bytes, bytes]:
    """§9: descend left/right by halving the leaf range, then ratchet ``generation`` times."""
    lo, hi = 0, n_leaves
    while hi - lo > 1:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if leaf < mid:
            secret, hi = suite.expand_with_label(secret, b"tree", b"left", suite.hash_len), mid
        else:
            secret, lo = suite.expand_with_label(secret, b"tree", b"right", suite.hash_len), mid
    ratchet = suite.expand_with_label(secret, label, b"", suite.hash_len)
    for j in range(generation):
        ratchet = suite.expand_with_label(ratchet, b"secret", j.to_bytes(4, "big"), suite.hash_len)
    g = generation.to_bytes(4, "big")
    key = suite.expand_with_label(ratchet, b"key", g, suite.aead_key_len)
    nonce = suite.expand_with_label(ratchet, b"nonce", g, suite.aead_nonce_len)
    return key, nonce


def ref(leaf: int, kind: RatchetType, generation: int, n_leaves: int = 8) -> tuple[bytes, bytes]:
    return reference_key(SUITE, SECRET, n_leaves, leaf, kind.value, generation)


def pair(k: RatchetKey) -> tuple[bytes, bytes]:
    return k.key, k.nonce


def test_reference_matches_the_vectors() -> None:
    """Keeps the reference honest: it reproduces the official values."""
    for case in json.loads(VECTORS.read_text()):
        suite = cipher_suite(case["cipher_suite"])
        secret = bytes.fromhex(case["encryption_secret"])
        n = len(case["leaves"])
        for leaf, entries in enumerate(case["leaves"]):
            for e in entries:
                key, nonce = reference_key(suite, secret, n, leaf, b"application", e["generation"])
                assert (key.hex(), nonce.hex()) == (e["application_key"], e["application_nonce"])


@pytest.mark.parametrize("n_leaves", [1, 2, 4, 8, 16])
def test_keys_match_reference_for_every_leaf(n_leaves: int) -> None:
    tree = SecretTree(SUITE, SECRET, n_leaves)
    for leaf in range(n_leaves):
        for kind in RatchetType:
            assert pair(tree.consume(leaf, kind, 3)) == ref(leaf, kind, 3, n_leaves)


def test_second_use_of_a_generation_fails() -> None:
    tree = SecretTree(SUITE, SECRET, 8)
    assert pair(tree.consume(2, A, 0)) == ref(2, A, 0)
    with pytest.raises(SecretReuseError):
        tree.consume(2, A, 0)
    with pytest.raises(SecretReuseError):
        tree.key_for(2, A, 0)
    # The other ratchet of the leaf is independent.
    assert pair(tree.consume(2, H, 0)) == ref(2, H, 0)


def test_out_of_order_within_window() -> None:
    tree = SecretTree(SUITE, SECRET, 8, out_of_order_window=4)
    assert pair(tree.consume(1, A, 5)) == ref(1, A, 5)
    assert pair(tree.consume(1, A, 3)) == ref(1, A, 3)
    assert pair(tree.consume(1, A, 4)) == ref(1, A, 4)
    with pytest.raises(SecretReuseError):
        tree.consume(1, A, 3)
    # Generation 0 fell out of the 4-generation window when 5 was consumed: deleted.
    with pytest.raises(SecretReuseError):
        tree.consume(1, A, 0)
    assert pair(tree.consume(1, A, 2)) == ref(1, A, 2)
    assert pair(tree.consume(1, A, 6)) == ref(1, A, 6)


def test_window_expires_old_skipped_keys() -> None:
    tree = SecretTree(SUITE, SECRET, 8, out_of_order_window=4)
    tree.consume(0, A, 2)  # keeps 0 and 1
    tree.consume(0, A, 9)  # window now covers 6..8 only
    for gone in (0, 1, 5):
        with pytest.raises(SecretReuseError):
            tree.consume(0, A, gone)
    assert pair(tree.consume(0, A, 6)) == ref(0, A, 6)


def test_too_far_ahead_is_refused_without_changing_state() -> None:
    tree = SecretTree(SUITE, SECRET, 8, max_forward_distance=10)
    with pytest.raises(GenerationTooFarError):
        tree.key_for(3, H, 11)
    with pytest.raises(GenerationTooFarError):
        tree.consume(3, H, 11)
    assert pair(tree.consume(3, H, 10)) == ref(3, H, 10)
    with pytest.raises(GenerationTooFarError):
        tree.consume(3, H, 22)
    assert pair(tree.consume(3, H, 21)) == ref(3, H, 21)


@pytest.mark.parametrize("n_leaves", [0, 3, 5, 12])
def test_tree_sizes_must_be_full(n_leaves: int) -> None:
    with pytest.raises(SecretTreeError):
        SecretTree(SUITE, SECRET, n_leaves)


@pytest.mark.parametrize("leaf", [-1, 8, 100])
def test_leaf_outside_tree(leaf: int) -> None:
    tree = SecretTree(SUITE, SECRET, 8)
    with pytest.raises(SecretTreeError):
        tree.consume(leaf, A, 0)


def test_generation_beyond_uint32() -> None:
    tree = SecretTree(SUITE, SECRET, 1)
    with pytest.raises(SecretTreeError):
        tree.key_for(0, A, 1 << 32)
    with pytest.raises(SecretTreeError):
        tree.key_for(0, A, -1)


def test_key_for_does_not_change_state() -> None:
    tree = SecretTree(SUITE, SECRET, 8)
    peeked = tree.key_for(4, A, 7)
    assert pair(peeked) == ref(4, A, 7)
    assert tree.key_for(4, A, 7) == peeked
    assert pair(tree.consume(4, A, 0)) == ref(4, A, 0)  # nothing before 7 was skipped
    assert tree.consume(4, A, 7) == peeked


def test_node_secrets_are_deleted_once_used() -> None:
    tree = SecretTree(SUITE, SECRET, 8)
    root = 7
    tree.key_for(0, A, 0)
    assert set(tree._nodes) == {root}  # a lookup derives nothing permanently
    tree.consume(0, A, 0)
    # Root, node 3, node 1 and leaf 0 are gone; their other children (11, 5, 2) remain.
    assert set(tree._nodes) == {11, 5, 2}
    tree.consume(1, A, 0)
    assert set(tree._nodes) == {11, 5}
    for leaf in range(8):
        tree.consume(leaf, H, 0)
    assert tree._nodes == {}
    # Every leaf still has its ratchets, and nothing else of the tree is kept.
    assert pair(tree.consume(7, A, 1)) == ref(7, A, 1)


def test_next_key_is_sequential_and_never_reused() -> None:
    sender = SecretTree(SUITE, SECRET, 8)
    keys = [sender.next_key(6, A) for _ in range(3)]
    assert [k.generation for k in keys] == [0, 1, 2]
    assert [pair(k) for k in keys] == [ref(6, A, g) for g in range(3)]
    with pytest.raises(SecretReuseError):
        sender.consume(6, A, 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=25))
def test_random_delivery_order(order: list[int]) -> None:
    """Each generation decrypts at most once; the ones that do give the reference key."""
    window = 8
    tree = SecretTree(SUITE, SECRET, 2, out_of_order_window=window)
    used: set[int] = set()
    highest = -1
    for g in order:
        expired = g < highest - window + 1 or g in used
        if expired:
            with pytest.raises(SecretReuseError):
                tree.consume(1, A, g)
            continue
        assert pair(tree.consume(1, A, g)) == ref(1, A, g, 2)
        used.add(g)
        highest = max(highest, g)


def test_copy_and_restore_are_independent() -> None:
    tree = SecretTree(SUITE, SECRET, 8, out_of_order_window=4)
    tree.consume(5, A, 3)  # keeps 0..2 of leaf 5
    staged = tree.copy()
    staged.consume(5, A, 1)
    staged.consume(2, H, 0)
    # The original still has generation 1 and leaf 2 untouched.
    assert pair(tree.consume(5, A, 1)) == ref(5, A, 1)
    assert pair(tree.consume(2, H, 0)) == ref(2, H, 0)
    restored = SecretTree.restore(SUITE, 8, tree.node_secrets, tree.ratchets)
    with pytest.raises(SecretReuseError):
        restored.consume(5, A, 1)
    assert pair(restored.consume(5, A, 2)) == ref(5, A, 2)
    assert pair(restored.consume(6, A, 0)) == ref(6, A, 0)
    assert pair(tree.consume(5, A, 2)) == ref(5, A, 2)  # restore copied, did not share


def test_saved_state_round_trips_through_bytes() -> None:
    tree = SecretTree(SUITE, SECRET, 8, max_forward_distance=50, out_of_order_window=4)
    tree.consume(5, A, 3)  # keeps 0..2 of leaf 5
    tree.next_key(2, H)
    data = tree.state().encode()
    restored = SecretTree.from_state(SUITE, SecretTreeState.decode(data))
    assert restored.state().encode() == data
    assert (restored.max_forward_distance, restored.out_of_order_window) == (50, 4)
    with pytest.raises(SecretReuseError):
        restored.consume(5, A, 3)
    assert pair(restored.consume(5, A, 1)) == ref(5, A, 1)  # a retained skipped key
    assert pair(restored.next_key(2, H)) == ref(2, H, 1)
    assert pair(restored.consume(7, A, 0)) == ref(7, A, 0)  # derived from a saved node secret
    with pytest.raises(GenerationTooFarError):
        restored.consume(6, H, 51)


def _bad_states() -> list[SecretTreeState]:
    good = SecretTree(SUITE, SECRET, 4)
    good.consume(1, A, 2)
    state = good.state()
    ratchet = state.ratchets[0]
    return [
        dataclasses.replace(state, n_leaves=3),
        dataclasses.replace(state, n_leaves=0),
        dataclasses.replace(state, node_secrets=(SavedNodeSecret(7, SECRET),)),
        dataclasses.replace(state, ratchets=(dataclasses.replace(ratchet, kind=2),)),
        dataclasses.replace(state, ratchets=(dataclasses.replace(ratchet, leaf=4),)),
        dataclasses.replace(
            state, ratchets=(dataclasses.replace(ratchet, next_generation=1 << 40),)
        ),
    ]


@pytest.mark.parametrize("bad", _bad_states())
def test_inconsistent_saved_state_is_a_decode_error(bad: SecretTreeState) -> None:
    with pytest.raises(DecodeError):
        SecretTree.from_state(SUITE, SecretTreeState.decode(bad.encode()))
