"""The ratchet tree (RFC 9420 §4.1, §7.7, §7.8, §12.1.1-§12.1.3, §12.4.3.3), case by case."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls import tree_math as tm
from moqmls.mls.errors import MLSError, TreeError
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import (
    LeafNodeHashInput,
    Node,
    NodeType,
    ParentNodeHashInput,
    TreeHashInput,
    encode_ratchet_tree,
)
from tests.mls.test_tree_support import SUITE, fake_leaf, fake_parent, tree_of

A, B, C, D, E, F, G, H = (fake_leaf(n) for n in "ABCDEFGH")


def resolution_tree() -> RatchetTree:
    """§4.1 "A tree with blanks and unmerged leaves": X[B] over A B _ D, Y over E F."""
    return tree_of(
        {0: A, 2: B, 6: D, 8: E, 10: F, 14: H, 3: fake_parent("X", (1,)), 9: fake_parent("Y")},
        15,
    )


def test_resolutions_of_section_4_1() -> None:
    tree = resolution_tree()
    assert tree.resolution(3) == (3, 2)  # [X, B]
    assert tree.resolution(4) == ()  # blank leaf 2
    assert tree.resolution(12) == ()  # blank leaf 6
    assert tree.resolution(7) == (3, 2, 9, 14)  # [X, B, Y, H]


def filtered_path_tree() -> RatchetTree:
    """§4.1 "A complete tree with five members": T, W, X, Y set; U, V, Z, H blank."""
    parents = {1: fake_parent("T"), 7: fake_parent("W"), 9: fake_parent("X")}
    parents[11] = fake_parent("Y")
    return tree_of({0: A, 2: B, 8: E, 10: F, 12: G, **parents}, 15)


def test_filtered_direct_paths_of_section_4_1() -> None:
    tree = filtered_path_tree()
    assert tree.filtered_direct_path(0) == (1, 7)  # A: T, W
    assert tree.filtered_direct_path(1) == (1, 7)  # B: T, W
    assert tree.filtered_direct_path(4) == (9, 11, 7)  # E: X, Y, W
    assert tree.filtered_direct_path(5) == (9, 11, 7)  # F: X, Y, W
    assert tree.filtered_direct_path(6) == (11, 7)  # G: Y, W


def test_extending_the_tree_for_a_third_member() -> None:
    # §7.7 "Extending the tree to make room for a third member".
    tree = tree_of({0: A, 2: B, 1: fake_parent("X")}, 3)
    assert tree.add_leaf(C) == 2
    assert (tree.n_leaves, tree.width) == (4, 7)
    assert tree.leaf(2) == C
    assert tree.node(3) is None and tree.node(5) is None
    assert tree.parent(1) == fake_parent("X")  # C is not under X: nothing unmerged


def test_add_marks_the_new_leaf_unmerged_on_non_blank_ancestors() -> None:
    # §12.1.1 on §7.4's "A full tree with one unmerged leaf": C lands under Z and Y.
    tree = tree_of(
        {0: A, 2: B, 6: D, 1: fake_parent("X"), 3: fake_parent("Y"), 5: fake_parent("Z")}, 7
    )
    assert tree.add_leaf(C) == 2
    z, y, x = tree.parent(5), tree.parent(3), tree.parent(1)
    assert z is not None and z.unmerged_leaves == (2,)
    assert y is not None and y.unmerged_leaves == (2,)
    assert x is not None and x.unmerged_leaves == ()
    assert tree.resolution(5) == (5, 4)  # Z[C]


def test_add_uses_the_leftmost_blank_leaf_and_keeps_unmerged_sorted() -> None:
    tree = tree_of({0: A, 4: C, 3: fake_parent("Y", (2,))}, 7)
    assert tree.add_leaf(B) == 1
    assert tree.add_leaf(D) == 3
    y = tree.parent(3)
    assert y is not None and y.unmerged_leaves == (1, 2, 3)
    assert tree.add_leaf(E) == 4 and tree.n_leaves == 8


def test_remove_blanks_the_path_and_truncates() -> None:
    # §7.7 "Cleaning up after removing member C".
    tree = tree_of({0: A, 2: B, 4: C, 1: fake_parent("X"), 3: fake_parent("Y")}, 7)
    tree.remove_leaf(2)
    assert (tree.n_leaves, tree.width) == (2, 3)
    assert tree.parent(1) == fake_parent("X")
    assert list(tree.members()) == [(0, A), (1, B)]


def test_remove_in_the_middle_keeps_the_size() -> None:
    tree = tree_of(
        {0: A, 2: B, 4: C, 6: D, 1: fake_parent("X"), 3: fake_parent("Y"), 5: fake_parent("Z")},
        7,
    )
    tree.remove_leaf(1)
    assert tree.n_leaves == 4
    assert tree.leaf(1) is None and tree.node(1) is None and tree.node(3) is None
    assert tree.parent(5) == fake_parent("Z")


def test_truncation_to_the_smallest_power_of_two_above_the_last_member() -> None:
    # §12.1.3: rightmost non-blank leaf L=2 leaves 2^d > 2, i.e. 4 leaves.
    tree = tree_of({0: A, 4: C, 12: G}, 15)
    tree.remove_leaf(6)
    assert tree.n_leaves == 4
    tree.remove_leaf(2)
    assert tree.n_leaves == 1 and tree.width == 1


def test_update_replaces_the_leaf_and_blanks_its_path() -> None:
    tree = tree_of({0: A, 2: B, 4: C, 1: fake_parent("X"), 3: fake_parent("Y")}, 7)
    tree.update_leaf(1, fake_leaf("B2"))
    assert tree.leaf(1) == fake_leaf("B2")
    assert tree.node(1) is None and tree.node(3) is None
    with pytest.raises(TreeError):
        tree.update_leaf(3, fake_leaf("nobody"))


def test_export_drops_trailing_blanks_and_round_trips() -> None:
    tree = tree_of({0: A, 4: C}, 7)
    nodes = tree.to_nodes()
    assert len(nodes) == 5 and nodes[-1] == Node.leaf(C)
    again = RatchetTree.decode(SUITE, tree.encode())
    assert again.to_nodes() == nodes and again.n_leaves == 4


@pytest.mark.parametrize(
    "nodes",
    [
        [],
        [Node.leaf(A), None],
        [Node.leaf(A), Node.leaf(B), Node.leaf(C)],
        [Node.parent(fake_parent("X"))],
        [Node.leaf(A), Node.parent(fake_parent("X", (1, 0))), Node.leaf(B)],
        [Node.leaf(A), Node.parent(fake_parent("X", (2,))), Node.leaf(B)],
    ],
    ids=["empty", "trailing-blank", "leaf-at-parent", "parent-at-leaf", "unsorted", "outside"],
)
def test_malformed_ratchet_tree_extensions(nodes: list[Node | None]) -> None:
    with pytest.raises(TreeError):
        RatchetTree.from_nodes(SUITE, nodes)


def test_structure_checks_of_section_12_4_3_1() -> None:
    blank_unmerged = tree_of({0: A, 1: fake_parent("X", (1,))}, 3)
    with pytest.raises(TreeError, match="blank leaf"):
        blank_unmerged.verify_structure()
    gap = tree_of({0: A, 2: B, 4: C, 1: fake_parent("X"), 3: fake_parent("Y", (1,))}, 7)
    with pytest.raises(TreeError, match="not at"):
        gap.verify_structure()
    twice = tree_of({0: A, 2: B, 1: fake_parent("A")}, 3)  # parent key "enc-A" == leaf A's
    with pytest.raises(TreeError, match="two nodes"):
        twice.verify_structure()
    resolution_tree().verify_structure()


def test_copy_is_independent() -> None:
    tree = resolution_tree()
    before = tree.tree_hash()
    members_before = tree.summary().members
    twin = tree.copy()
    twin.add_leaf(C)
    twin.remove_leaf(0)
    assert tree.tree_hash() == before
    assert tree.summary().members == members_before
    assert twin.summary().members == members_before
    assert twin.summary().signature_keys[A.signature_key] == 0
    assert tree.leaf(2) is None and tree.leaf(0) == A
    assert twin.tree_hash() != before


def _naive_key_count(tree: RatchetTree, key: bytes) -> int:
    nodes = [tree.node(x) for x in range(tree.width)]
    return sum(1 for node in nodes if node is not None and node.encryption_key == key)


def test_key_counts_follow_every_change() -> None:
    """`key_count` (leaves and parents holding a key) stays right through every mutation."""
    tree = resolution_tree()
    keys = [f"enc-{name}".encode() for name in "ABCDEFGHXYZ"]

    def agree(t: RatchetTree) -> None:
        assert [t.key_count(k) for k in keys] == [_naive_key_count(t, k) for k in keys]

    agree(tree)  # builds the counts; from here on they are maintained
    twin = tree.copy()
    tree.set_node(5, fake_parent("Z"))
    tree.set_node(3, fake_parent("A"))  # a parent reusing a leaf's key: counted twice
    assert tree.key_count(b"enc-A") == 2
    agree(tree)
    tree.update_leaf(0, fake_leaf("C"))  # blanks X (node 3, on leaf 0's path) again
    agree(tree)
    tree.set_node(11, fake_parent("G"))
    for leaf in (4, 5, 7):
        tree.remove_leaf(leaf)  # the right half empties: the tree truncates to 4 leaves
    assert tree.width == 7
    agree(tree)
    agree(twin)
    assert twin.key_count(b"enc-X") == 1 and twin.key_count(b"enc-Z") == 0


def naive_tree_hash(tree: RatchetTree, x: int) -> bytes:
    """§7.8 computed from scratch with the TreeHashInput struct, no caches."""
    if tm.is_leaf(x):
        data = TreeHashInput(NodeType.LEAF, leaf_node=LeafNodeHashInput(x // 2, tree.leaf(x // 2)))
    else:
        inner = ParentNodeHashInput(
            tree.parent(x), naive_tree_hash(tree, tm.left(x)), naive_tree_hash(tree, tm.right(x))
        )
        data = TreeHashInput(NodeType.PARENT, parent_node=inner)
    return SUITE.hash(data.encode())


_OPS = st.lists(st.tuples(st.sampled_from(["add", "remove", "update"]), st.integers(0, 40)))


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_cached_hashes_match_a_fresh_computation(ops: list[tuple[str, int]]) -> None:
    tree = RatchetTree.with_creator(SUITE, fake_leaf("creator"))
    tree.tree_hash()
    tree.summary()  # maintained incrementally from here on
    for counter, (op, arg) in enumerate(ops):
        members = [i for i, _ in tree.members()]
        if op == "add" or len(members) < 2:
            tree.add_leaf(fake_leaf(f"m{counter}"))
        elif op == "remove":
            tree.remove_leaf(members[arg % len(members)])
        else:
            tree.update_leaf(members[arg % len(members)], fake_leaf(f"u{counter}"))
        # The count of missing hashes (which picks the bulk sweep) is kept, not recounted.
        assert tree._missing_hashes == tree._hashes.count(None)
        if arg % 3:  # sometimes leave the caches cold across several operations
            tree.tree_hash()  # fill the caches so later operations must invalidate them
            assert tree._missing_hashes == tree._hashes.count(None)
        tree = tree.copy() if arg % 5 == 0 else tree
    assert tree.tree_hash() == naive_tree_hash(tree, tree.root)
    assert tree.encode() == encode_ratchet_tree(tree.to_nodes())
    assert tree.summary() == RatchetTree.decode(SUITE, tree.encode()).summary()
    fresh = RatchetTree.decode(SUITE, tree.encode())
    assert fresh.all_tree_hashes() == tree.all_tree_hashes()
    assert [fresh.resolution(x) for x in range(fresh.width)] == [
        tree.resolution(x) for x in range(tree.width)
    ]


def test_bulk_and_incremental_hashing_agree_on_a_larger_tree() -> None:
    """Past the bulk-sweep threshold (a cold tree of 100 leaves) and back to incremental."""
    tree = RatchetTree.with_creator(SUITE, fake_leaf("creator"))
    for i in range(99):
        tree.add_leaf(fake_leaf(f"m{i}"))
    assert tree._missing_hashes == tree._hashes.count(None) > 64
    assert tree.tree_hash() == naive_tree_hash(tree, tree.root)
    assert tree._missing_hashes == 0
    for i in range(60, 100):
        tree.remove_leaf(i)  # truncates back to 64 leaves
    tree.update_leaf(3, fake_leaf("u3"))
    assert tree._missing_hashes == tree._hashes.count(None)
    assert tree.tree_hash() == naive_tree_hash(tree, tree.root)


def test_leaf_accessors_never_raise_for_out_of_range() -> None:
    tree = resolution_tree()
    assert tree.leaf(99) is None and tree.leaf(-1) is None
    with pytest.raises(TreeError):
        tree.node(99)
    with pytest.raises(TreeError):
        tree.remove_leaf(2)
    assert tree.member_count() == 6
    assert tree.find_leaf(D) == 3 and tree.find_leaf(G) is None


_VALID = tree_of(
    {0: A, 2: B, 6: D, 3: fake_parent("X", (1,)), 9: fake_parent("Y"), 8: E}, 15
).encode()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_ratchet_trees_raise_only_mls_errors(data: st.DataObject) -> None:
    raw = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[pos:]
        else:
            raw.insert(pos, data.draw(st.integers(0, 255)))
    try:
        tree = RatchetTree.decode(SUITE, bytes(raw))
        tree.tree_hash()
        tree.verify_structure()
        tree.verify_parent_hashes()
    except MLSError:
        pass
