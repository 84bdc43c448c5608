"""Runner for ``tree-operations.json``: Add, Update and Remove applied to a ratchet tree
(RFC 9420 §12.1.1-§12.1.3, §7.7 extension and truncation, §7.8 tree hash)."""

from __future__ import annotations

from typing import Any

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import CaseFailed, check_eq
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import Add, Proposal, Remove, Update


def run(case: dict[str, Any]) -> None:
    """Apply the proposal and compare the resulting tree and both tree hashes."""
    suite = cipher_suite(case["cipher_suite"])
    tree = RatchetTree.decode(suite, bytes.fromhex(case["tree_before"]))
    check_eq(tree.tree_hash(), bytes.fromhex(case["tree_hash_before"]), "tree_hash_before")
    before = tree.copy()
    proposal = Proposal.decode(bytes.fromhex(case["proposal"]))
    body = proposal.body
    if isinstance(body, Add):
        tree.add_leaf(body.key_package.leaf_node)
    elif isinstance(body, Update):
        tree.update_leaf(case["proposal_sender"], body.leaf_node)
    elif isinstance(body, Remove):
        tree.remove_leaf(body.removed)
    else:
        raise CaseFailed(f"unexpected proposal type {proposal.proposal_type}")
    check_eq(tree.encode(), bytes.fromhex(case["tree_after"]), "tree_after")
    check_eq(tree.tree_hash(), bytes.fromhex(case["tree_hash_after"]), "tree_hash_after")
    fresh = RatchetTree.decode(suite, bytes.fromhex(case["tree_after"]))
    check_eq(fresh.tree_hash(), tree.tree_hash(), "cached tree hash equals a fresh computation")
    check_eq(before.tree_hash(), bytes.fromhex(case["tree_hash_before"]), "copy left untouched")
