"""Leaf node validation (RFC 9420 §7.3): each rule accepted when met, rejected when broken."""

from __future__ import annotations

import dataclasses

import pytest

from moqmls.mls.errors import LeafNodeValidationError
from moqmls.mls.leaf_validation import (
    leaf_signature_valid,
    leaf_tbs_bytes,
    sign_leaf_node,
    validate_leaf_node,
    validate_tree_leaves,
)
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import (
    Capabilities,
    Credential,
    Extension,
    LeafNode,
    LeafNodeSource,
    Lifetime,
    RequiredCapabilities,
)
from tests.mls.test_tree_support import GROUP_ID, SUITE, Member, make_member


def group_of(*members: Member) -> RatchetTree:
    tree = RatchetTree.with_creator(SUITE, members[0].leaf)
    for m in members[1:]:
        tree.add_leaf(m.leaf)
    return tree


def resigned(member: Member, leaf: LeafNode, index: int | None = None) -> LeafNode:
    group_id = None if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE else GROUP_ID
    return sign_leaf_node(SUITE, member.sig_priv, leaf, group_id, index)


def check_key_package_leaf(tree: RatchetTree, leaf: LeafNode, **kw: object) -> None:
    validate_leaf_node(
        SUITE,
        leaf,
        source=LeafNodeSource.KEY_PACKAGE,
        tree=tree,
        group_id=None,
        leaf_index=None,
        **kw,  # type: ignore[arg-type]
    )


def test_a_fresh_key_package_leaf_is_valid() -> None:
    tree = group_of(make_member("A"), make_member("B"))
    check_key_package_leaf(tree, make_member("C").leaf, now=1_700_000_000)


def test_signature_must_verify() -> None:
    tree = group_of(make_member("A"))
    leaf = make_member("C").leaf
    forged = dataclasses.replace(leaf, signature=bytes(len(leaf.signature)))
    with pytest.raises(LeafNodeValidationError, match="signature"):
        check_key_package_leaf(tree, forged)


def test_update_and_commit_signatures_bind_group_and_index() -> None:
    m = make_member("A")
    leaf = dataclasses.replace(m.leaf, leaf_node_source=LeafNodeSource.UPDATE, lifetime=None)
    leaf = resigned(m, leaf, 3)
    assert leaf_signature_valid(SUITE, leaf, GROUP_ID, 3)
    assert not leaf_signature_valid(SUITE, leaf, GROUP_ID, 4)
    assert not leaf_signature_valid(SUITE, leaf, b"other group", 3)
    assert not leaf_signature_valid(SUITE, leaf, None, None)


def test_leaf_node_source_must_match_where_it_appears() -> None:
    tree = group_of(make_member("A"))
    with pytest.raises(LeafNodeValidationError, match="leaf_node_source"):
        validate_leaf_node(
            SUITE,
            make_member("C").leaf,
            source=LeafNodeSource.COMMIT,
            tree=tree,
            group_id=GROUP_ID,
            leaf_index=1,
        )


def test_extensions_must_be_listed_in_capabilities() -> None:
    tree = group_of(make_member("A"))
    listed = Capabilities((1,), (1,), (0xFF00,), (), (1,))
    check_key_package_leaf(
        tree, make_member("C", capabilities=listed, extensions=(Extension(0xFF00, b""),)).leaf
    )
    unlisted = make_member("D", extensions=(Extension(0xFF00, b""),)).leaf
    with pytest.raises(LeafNodeValidationError, match="extension"):
        check_key_package_leaf(tree, unlisted)


def test_required_capabilities() -> None:
    tree = group_of(make_member("A"))
    required = RequiredCapabilities((0xFF01,), (), ())
    with pytest.raises(LeafNodeValidationError, match="required"):
        check_key_package_leaf(tree, make_member("C").leaf, required=required)
    caps = Capabilities((1,), (1,), (0xFF01,), (), (1,))
    check_key_package_leaf(tree, make_member("D", capabilities=caps).leaf, required=required)


def test_credential_type_support_both_ways() -> None:
    no_basic = Capabilities((1,), (1,), (), (), (2,))
    tree = group_of(make_member("A"))
    with pytest.raises(LeafNodeValidationError, match="credential"):
        check_key_package_leaf(tree, make_member("C", capabilities=no_basic).leaf)
    both = Capabilities((1,), (1,), (), (), (1, 2))
    odd_member = make_member("X", capabilities=Capabilities((1,), (1,), (), (), (1,)))
    tree2 = group_of(odd_member)
    check_key_package_leaf(tree2, make_member("C", capabilities=both).leaf)
    x509 = make_member("X509", capabilities=both)
    x509 = dataclasses.replace(
        x509,
        leaf=resigned(
            x509, dataclasses.replace(x509.leaf, credential=Credential(2, certificates=(b"c",)))
        ),
    )
    tree3 = group_of(make_member("A", capabilities=both), x509)
    with pytest.raises(LeafNodeValidationError, match="credential type 2"):
        check_key_package_leaf(tree3, make_member("basic-only").leaf)
    check_key_package_leaf(tree3, make_member("both", capabilities=both).leaf)


def test_lifetime_is_checked_when_a_time_is_given() -> None:
    tree = group_of(make_member("A"))
    leaf = make_member("C", lifetime=Lifetime(100, 200)).leaf
    check_key_package_leaf(tree, leaf, now=150)
    check_key_package_leaf(tree, leaf)
    with pytest.raises(LeafNodeValidationError, match="lifetime"):
        check_key_package_leaf(tree, leaf, now=201)


def test_keys_must_be_unique_among_members() -> None:
    a = make_member("A")
    tree = group_of(a, make_member("B"))
    c = make_member("C")
    same_sig = resigned(a, dataclasses.replace(c.leaf, signature_key=a.leaf.signature_key))
    with pytest.raises(LeafNodeValidationError, match="signature key"):
        check_key_package_leaf(tree, same_sig)
    same_enc = resigned(c, dataclasses.replace(c.leaf, encryption_key=a.leaf.encryption_key))
    with pytest.raises(LeafNodeValidationError, match="encryption key"):
        check_key_package_leaf(tree, same_enc)


def test_update_must_change_the_encryption_key() -> None:
    a = make_member("A")
    tree = group_of(a, make_member("B"))
    stale = dataclasses.replace(a.leaf, leaf_node_source=LeafNodeSource.UPDATE, lifetime=None)
    stale = resigned(a, stale, 0)
    with pytest.raises(LeafNodeValidationError, match="change"):
        validate_leaf_node(
            SUITE,
            stale,
            source=LeafNodeSource.UPDATE,
            tree=tree,
            group_id=GROUP_ID,
            leaf_index=0,
            replaces=0,
        )
    fresh_pub = SUITE.generate_key_pair()[1]
    fresh = resigned(a, dataclasses.replace(stale, encryption_key=fresh_pub), 0)
    validate_leaf_node(
        SUITE,
        fresh,
        source=LeafNodeSource.UPDATE,
        tree=tree,
        group_id=GROUP_ID,
        leaf_index=0,
        replaces=0,
    )


def test_whole_tree_validation_on_join() -> None:
    members = [make_member(n) for n in "ABCD"]
    tree = group_of(*members)
    validate_tree_leaves(SUITE, tree, GROUP_ID)
    twin = make_member("E")
    dup = resigned(
        twin, dataclasses.replace(twin.leaf, encryption_key=members[0].leaf.encryption_key)
    )
    tree.add_leaf(dup)
    with pytest.raises(LeafNodeValidationError, match="repeats"):
        validate_tree_leaves(SUITE, tree, GROUP_ID)


@pytest.fixture(scope="module")
def big_members() -> list[Member]:
    """Enough members for the two-thread signature verification (64 leaves and more)."""
    return [make_member(f"m{i}") for i in range(80)]


def _forged(member: Member) -> LeafNode:
    """The member's leaf with another identity but the old signature."""
    return dataclasses.replace(member.leaf, credential=Credential.basic(b"forged"))


def _with_lifetime(member: Member, lifetime: Lifetime) -> LeafNode:
    return resigned(member, dataclasses.replace(member.leaf, lifetime=lifetime))


@pytest.mark.parametrize(
    ("bad", "reported"),
    [
        pytest.param({70: "forged"}, "leaf 70: signature", id="upper-half"),
        pytest.param({5: "forged"}, "leaf 5: signature", id="lower-half"),
        pytest.param({70: "forged", 5: "forged"}, "leaf 5: signature", id="lowest-first"),
        # Leaf by leaf, in index order: leaf 3's lifetime before leaf 60's signature, and
        # leaf 3's signature before its own lifetime.
        pytest.param({60: "forged", 3: "expired"}, "lifetime", id="fields-in-order"),
        pytest.param({3: "expired-forged"}, "leaf 3: signature", id="signature-first"),
    ],
)
def test_whole_tree_errors_do_not_depend_on_threads(
    big_members: list[Member], bad: dict[int, str], reported: str
) -> None:
    expired = Lifetime(0, 10)
    leaves = [m.leaf for m in big_members]
    for index, kind in bad.items():
        member = big_members[index]
        if kind == "forged":
            leaves[index] = _forged(member)
        elif kind == "expired":
            leaves[index] = _with_lifetime(member, expired)
        else:
            leaves[index] = dataclasses.replace(_with_lifetime(member, expired), signature=b"x")
    tree = RatchetTree.with_creator(SUITE, leaves[0])
    for leaf in leaves[1:]:
        tree.add_leaf(leaf)
    for _ in range(3):
        with pytest.raises(LeafNodeValidationError, match=reported):
            validate_tree_leaves(SUITE, tree, GROUP_ID, now=1_700_000_000)


def test_whole_large_tree_is_valid(big_members: list[Member]) -> None:
    validate_tree_leaves(SUITE, group_of(*big_members), GROUP_ID, now=1_700_000_000)


@pytest.mark.parametrize("source", list(LeafNodeSource))
def test_tbs_sliced_from_the_encoding_equals_the_struct(source: LeafNodeSource) -> None:
    leaf = make_member("A").leaf
    if source == LeafNodeSource.UPDATE:
        leaf = dataclasses.replace(leaf, leaf_node_source=source, lifetime=None)
    elif source == LeafNodeSource.COMMIT:
        leaf = dataclasses.replace(leaf, leaf_node_source=source, lifetime=None, parent_hash=b"p")
    expected = leaf.tbs(GROUP_ID, 7).encode()
    assert leaf_tbs_bytes(leaf, GROUP_ID, 7, leaf.encode()) == expected
    assert leaf_tbs_bytes(leaf, GROUP_ID, 7) == expected
