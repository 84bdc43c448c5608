"""TreeKEM (RFC 9420 §7.4-§7.6, §7.9, §12.4.3.1) with real keys, read against the RFC's examples."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls import tree_math as tm
from moqmls.mls.errors import ParentHashError, UpdatePathError
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import HPKECiphertext, LeafNode, ParentNode, UpdatePath
from moqmls.mls.treekem import (
    CreatedPath,
    PrivateTree,
    create_update_path,
    decrypt_update_path,
    merge_update_path,
    node_key_pair,
)
from tests.mls.test_tree_support import (
    GROUP_ID,
    SUITE,
    Member,
    context_for,
    make_member,
    tree_of,
)


class Group:
    """Members with their own copies of the public tree and their private TreeKEM state."""

    def __init__(self, creator: Member) -> None:
        self.members: dict[int, Member] = {0: creator}
        self.trees: dict[int, RatchetTree] = {0: RatchetTree.with_creator(SUITE, creator.leaf)}
        self.privates: dict[int, PrivateTree] = {0: creator.private_tree(0)}
        self.epoch = 0

    def add(self, member: Member) -> int:
        """An Add without a path, applied by everyone; the joiner copies the tree."""
        index = -1
        for tree in self.trees.values():
            index = tree.add_leaf(member.leaf)
        any_tree = next(iter(self.trees.values()))
        self.members[index] = member
        self.trees[index] = any_tree.copy()
        self.privates[index] = member.private_tree(index)
        return index

    def remove(self, index: int) -> None:
        for tree in self.trees.values():
            tree.remove_leaf(index)
        for table in (self.members, self.trees, self.privates):
            del table[index]  # type: ignore[attr-defined]
        for j, private in self.privates.items():
            private.prune(self.trees[j])

    def update(self, index: int, member: Member) -> None:
        """An Update proposal committed without a path: new leaf, direct path blanked."""
        for tree in self.trees.values():
            tree.update_leaf(index, member.leaf)
        self.members[index] = member
        self.privates[index] = member.private_tree(index)
        for j, private in self.privates.items():
            private.prune(self.trees[j])

    def commit(self, sender: int, new: tuple[int, ...] = ()) -> CreatedPath:
        """A path commit by ``sender``; every other old member merges and decrypts it."""
        self.epoch += 1
        make_context = context_for(self.epoch)
        staged = self.trees[sender].copy()
        created = create_update_path(
            staged, sender, self.members[sender].sig_priv, GROUP_ID, make_context, new
        )
        self.trees[sender] = staged
        self.privates[sender] = created.private
        for j in self.members:
            if j == sender:
                continue
            merge_update_path(self.trees[j], sender, created.update_path, new)
            assert self.trees[j].tree_hash() == staged.tree_hash()
            if j in new:
                secret = created.path_secret_for(j)
                assert secret is not None
                x = tm.common_ancestor(2 * j, 2 * sender)
                self.privates[j].absorb_path_secret(SUITE, self.trees[j], x, secret)
                continue
            context = make_context(self.trees[j].tree_hash())
            got = decrypt_update_path(
                self.trees[j], self.privates[j], sender, created.update_path, context, new
            )
            assert got.commit_secret == created.commit_secret
            self.privates[j] = got.private
        return created

    def assert_tree_invariant(self, parent_hashes: bool = True) -> None:
        """§4.2: each member holds exactly the keys of non-blank nodes on its path it has merged."""
        for j, private in self.privates.items():
            tree = self.trees[j]
            for x in list(private.keys):
                assert private.private_key(tree, x) is not None, (j, x)
            for x in tm.direct_path(2 * j, tree.n_leaves):
                node = tree.parent(x)
                if node is not None and j not in node.unmerged_leaves:
                    assert private.private_key(tree, x) is not None, (j, x)
            if parent_hashes:
                tree.verify_parent_hashes()
            tree.verify_structure()


def four_members_with_c_unmerged_at_z() -> Group:
    """§7.4 "A full tree with one unmerged leaf": X, Y, Z set and C unmerged at Z and Y.

    The protocol cannot produce C unmerged at Z in a 4-leaf tree (removing the previous C
    blanks Z), so the state is laid out directly, with real keys, as the RFC draws it.
    """
    a, b, c, d = (make_member(n) for n in "ABCD")
    pairs = {x: node_key_pair(SUITE, bytes([x]) * SUITE.hash_len) for x in (1, 3, 5)}
    slots: dict[int, LeafNode | ParentNode] = {0: a.leaf, 2: b.leaf, 4: c.leaf, 6: d.leaf}
    slots[1] = ParentNode(pairs[1][0], b"", ())
    slots[3] = ParentNode(pairs[3][0], b"", (2,))
    slots[5] = ParentNode(pairs[5][0], b"", (2,))
    group = Group(a)
    tree = tree_of(slots, 7)
    for i, member in enumerate((a, b, c, d)):
        group.members[i] = member
        group.trees[i] = tree.copy()
        group.privates[i] = member.private_tree(i)
    for i, held in ((0, (1, 3)), (1, (1, 3)), (3, (5, 3))):
        group.privates[i].keys.update({x: pairs[x] for x in held})
    return group


def test_update_path_of_section_7_4_example() -> None:
    group = four_members_with_c_unmerged_at_z()
    tree = group.trees[1]
    z = tree.parent(5)
    assert z is not None and z.unmerged_leaves == (2,)
    assert tree.filtered_direct_path(1) == (1, 3)
    created = group.commit(1)
    x_node, y_node = created.update_path.nodes
    # | node_pub[0] | E(pk(A)) |  and  | node_pub[1] | E(pk(Z)), E(pk(C)) |
    assert len(x_node.encrypted_path_secret) == 1
    assert len(y_node.encrypted_path_secret) == 2
    # A learns X' and Y'; D learns only Y' (X' is not its ancestor).
    assert set(group.privates[0].keys) == {0, 1, 3}
    assert set(group.privates[3].keys) == {6, 5, 3}
    group.assert_tree_invariant(parent_hashes=False)  # Z was laid out without a parent hash
    assert group.privates[2].private_key(group.trees[2], 3) is not None  # C merged at Y' now


def test_commit_secret_agreed_through_adds_removes_and_paths() -> None:
    group = Group(make_member("m0"))
    for i in range(1, 6):
        group.add(make_member(f"m{i}"))
    secrets = {group.commit(0).commit_secret}
    group.assert_tree_invariant()
    new = group.add(make_member("m6"))
    secrets.add(group.commit(3, new=(new,)).commit_secret)
    group.assert_tree_invariant()
    group.remove(1)
    secrets.add(group.commit(5).commit_secret)
    group.assert_tree_invariant()
    group.add(make_member("m7"))  # unmerged leaf under parents set by paths
    group.assert_tree_invariant()  # parent hashes still hold (original sibling tree hash)
    secrets.add(group.commit(new).commit_secret)
    group.assert_tree_invariant()
    assert len(secrets) == 4


def test_new_member_is_excluded_and_gets_the_path_secret_of_the_common_ancestor() -> None:
    group = Group(make_member("A"))
    group.add(make_member("B"))
    group.commit(0)
    new = group.add(make_member("C"))
    staged = group.trees[0].copy()
    created = create_update_path(
        staged, 0, group.members[0].sig_priv, GROUP_ID, context_for(9), exclude=(new,)
    )
    root_node = created.update_path.nodes[-1]
    assert len(root_node.encrypted_path_secret) == 0  # C is the whole copath resolution
    assert created.path_secret_for(new) == created.path_secrets[tm.root(staged.n_leaves)]
    group.commit(0, new=(new,))
    assert tm.root(group.trees[new].n_leaves) in group.privates[new].keys
    group.assert_tree_invariant()


def test_single_member_path_has_no_nodes() -> None:
    group = Group(make_member("solo"))
    created = group.commit(0)
    assert created.update_path.nodes == ()
    assert len(created.commit_secret) == SUITE.hash_len


def _staged_path(group: Group, sender: int) -> tuple[UpdatePath, bytes]:
    staged = group.trees[sender].copy()
    created = create_update_path(
        staged, sender, group.members[sender].sig_priv, GROUP_ID, context_for(99)
    )
    return created.update_path, staged.tree_hash()


def test_wrong_parent_hash_is_rejected_and_leaves_the_tree_alone() -> None:
    group = four_members_with_c_unmerged_at_z()
    path, _ = _staged_path(group, 1)
    leaf = dataclasses.replace(path.leaf_node, parent_hash=b"\x00" * SUITE.hash_len)
    receiver = group.trees[0]
    before = receiver.tree_hash()
    with pytest.raises(ParentHashError):
        merge_update_path(receiver, 1, dataclasses.replace(path, leaf_node=leaf))
    assert receiver.tree_hash() == before


def test_node_and_ciphertext_counts_are_checked() -> None:
    group = four_members_with_c_unmerged_at_z()
    path, _ = _staged_path(group, 1)
    receiver = group.trees[0]
    before = receiver.tree_hash()
    with pytest.raises(UpdatePathError, match="nodes"):
        merge_update_path(receiver, 1, dataclasses.replace(path, nodes=path.nodes[:1]))
    short = dataclasses.replace(path.nodes[1], encrypted_path_secret=())
    with pytest.raises(UpdatePathError, match="ciphertexts"):
        merge_update_path(receiver, 1, dataclasses.replace(path, nodes=(path.nodes[0], short)))
    with pytest.raises(UpdatePathError, match="blank"):
        merge_update_path(receiver, 3 if receiver.leaf(3) is None else 7, path)
    assert receiver.tree_hash() == before


def test_corrupted_ciphertext_fails_decryption_cleanly() -> None:
    group = four_members_with_c_unmerged_at_z()
    path, tree_hash = _staged_path(group, 1)
    ct = path.nodes[0].encrypted_path_secret[0]
    bad = HPKECiphertext(ct.kem_output, bytes([ct.ciphertext[0] ^ 1]) + ct.ciphertext[1:])
    node0 = dataclasses.replace(path.nodes[0], encrypted_path_secret=(bad,))
    tampered = dataclasses.replace(path, nodes=(node0, *path.nodes[1:]))
    receiver = group.trees[0].copy()
    merge_update_path(receiver, 1, tampered)
    private = group.privates[0]
    keys_before = dict(private.keys)
    context = context_for(99)(tree_hash)
    with pytest.raises(UpdatePathError, match="decrypt"):
        decrypt_update_path(receiver, private, 1, tampered, context)
    assert private.keys == keys_before
    with pytest.raises(UpdatePathError):
        decrypt_update_path(receiver, private, 1, path, b"wrong context")


def test_tampered_parent_node_breaks_parent_hash_validity() -> None:
    group = Group(make_member("A"))
    for name in "BCD":
        group.add(make_member(name))
    group.commit(0)
    group.commit(3)
    tree = group.trees[0].copy()
    tree.verify_parent_hashes()
    y = tree.parent(3)
    assert y is not None
    other_pub = SUITE.generate_key_pair()[1]
    tree.set_node(3, dataclasses.replace(y, encryption_key=other_pub))
    with pytest.raises(ParentHashError):
        tree.verify_parent_hashes()


def test_private_state_forgets_replaced_keys() -> None:
    group = four_members_with_c_unmerged_at_z()
    private = group.privates[0].copy()
    tree = group.trees[0].copy()
    assert private.private_key(tree, 3) is not None
    tree.update_leaf(3, make_member("D2").leaf)  # blanks Z and Y
    assert private.private_key(tree, 3) is None
    private.prune(tree)
    assert 3 not in private.keys and 0 in private.keys


_STEPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "update", "commit"]), st.integers(0, 99)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(_STEPS)
def test_random_histories_keep_the_tree_invariant(steps: list[tuple[str, int]]) -> None:
    """Any interleaving of adds, removes, updates and path commits keeps every member's view
    equal, every commit secret agreed, parent hashes valid and the tree invariant (§4.2)."""
    group = Group(make_member("m0"))
    fresh = 0
    for op, pick in steps:
        indices = sorted(group.members)
        chosen = indices[pick % len(indices)]
        if op == "add" or len(indices) == 1:
            fresh += 1
            new = group.add(make_member(f"n{fresh}"))
            if pick % 2:
                group.commit(chosen if chosen != new else indices[0], new=(new,))
        elif op == "remove" and chosen != indices[0]:
            group.remove(chosen)
        elif op == "update":
            replacement = make_member(f"u{pick}")
            group.update(chosen, replacement)
        else:
            group.commit(chosen)
        hashes = {tree.tree_hash() for tree in group.trees.values()}
        assert len(hashes) == 1
        group.assert_tree_invariant()
