"""Runner for ``tree-validation.json``: resolutions, tree hashes, parent hashes and leaf
signatures of a ratchet tree as when joining (RFC 9420 §4.1, §7.3, §7.8, §7.9)."""

from __future__ import annotations

from typing import Any

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import check_eq
from moqmls.mls.leaf_validation import validate_tree_leaves, verify_leaf_signature
from moqmls.mls.ratchet_tree import RatchetTree


def run(case: dict[str, Any]) -> None:
    """Check every node's resolution and tree hash, then verify the tree as a joiner would."""
    suite = cipher_suite(case["cipher_suite"])
    tree = RatchetTree.decode(suite, bytes.fromhex(case["tree"]))
    check_eq(tree.width, len(case["tree_hashes"]), "number of nodes")
    for x, expected in enumerate(case["resolutions"]):
        check_eq(list(tree.resolution(x)), expected, f"resolution({x})")
    for x, expected in enumerate(case["tree_hashes"]):
        check_eq(tree.tree_hash(x), bytes.fromhex(expected), f"tree_hash({x})")
    tree.verify_parent_hashes()
    tree.verify_structure()
    group_id = bytes.fromhex(case["group_id"])
    for index, leaf in tree.members():
        verify_leaf_signature(suite, leaf, group_id, index)
    validate_tree_leaves(suite, tree, group_id)
