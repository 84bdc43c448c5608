"""Runner for ``treekem.json``: merging, decrypting and creating UpdatePaths (RFC 9420 §7.4-§7.6,
§7.9) for every sender of the case, from every other member's private view."""

from __future__ import annotations

from typing import Any

from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.interop import check, check_eq
from moqmls.mls.leaf_validation import verify_leaf_signature
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import GroupContext, ProtocolVersion, UpdatePath
from moqmls.mls.treekem import (
    PrivateTree,
    create_update_path,
    decrypt_update_path,
    merge_update_path,
    node_key_pair,
)


def _private_views(
    suite: CipherSuite, tree: RatchetTree, entries: list[dict[str, Any]]
) -> dict[int, tuple[PrivateTree, bytes]]:
    """Each member's PrivateTree (checked against the tree) and signature private key."""
    views: dict[int, tuple[PrivateTree, bytes]] = {}
    for entry in entries:
        index = entry["index"]
        leaf = tree.leaf(index)
        check(leaf is not None, f"private state for blank leaf {index}")
        assert leaf is not None
        enc_priv = bytes.fromhex(entry["encryption_priv"])
        check_eq(suite.hpke_public_key(enc_priv), leaf.encryption_key, f"leaf {index} key")
        private = PrivateTree.for_leaf(index, leaf.encryption_key, enc_priv)
        for item in entry["path_secrets"]:
            node = item["node"]
            pub, priv = node_key_pair(suite, bytes.fromhex(item["path_secret"]))
            check(tree.node(node) is not None, f"leaf {index}: private key for blank {node}")
            check_eq(pub, tree.public_key(node), f"leaf {index}: public key of node {node}")
            private.keys[node] = (pub, priv)
        views[index] = (private, bytes.fromhex(entry["signature_priv"]))
    return views


def run(case: dict[str, Any]) -> None:
    """Process each UpdatePath as every other member, then create and process a fresh one."""
    suite = cipher_suite(case["cipher_suite"])
    group_id = bytes.fromhex(case["group_id"])
    tree = RatchetTree.decode(suite, bytes.fromhex(case["ratchet_tree"]))
    views = _private_views(suite, tree, case["leaves_private"])

    def context_for(tree_hash: bytes) -> bytes:
        return GroupContext(
            ProtocolVersion.MLS10,
            case["cipher_suite"],
            group_id,
            case["epoch"],
            tree_hash,
            bytes.fromhex(case["confirmed_transcript_hash"]),
            (),
        ).encode()

    for entry in case["update_paths"]:
        sender = entry["sender"]
        path = UpdatePath.decode(bytes.fromhex(entry["update_path"]))
        merged = tree.copy()
        merge_update_path(merged, sender, path)
        verify_leaf_signature(suite, path.leaf_node, group_id, sender)
        check_eq(merged.tree_hash(), bytes.fromhex(entry["tree_hash_after"]), "tree_hash_after")
        context = context_for(merged.tree_hash())
        commit_secret = bytes.fromhex(entry["commit_secret"])
        for j, (private, _) in views.items():
            if j == sender:
                continue
            got = decrypt_update_path(merged, private, sender, path, context)
            expected = entry["path_secrets"][j]
            check_eq(got.path_secret.hex(), expected, f"sender {sender}: path secret of leaf {j}")
            check_eq(got.commit_secret, commit_secret, f"sender {sender}: commit secret at {j}")

        staged = tree.copy()
        created = create_update_path(staged, sender, views[sender][1], group_id, context_for)
        fresh = tree.copy()
        merge_update_path(fresh, sender, created.update_path)
        check_eq(fresh.tree_hash(), staged.tree_hash(), "receiver's tree equals committer's")
        fresh.verify_parent_hashes()
        new_context = context_for(fresh.tree_hash())
        for j, (private, _) in views.items():
            if j == sender:
                continue
            got = decrypt_update_path(fresh, private, sender, created.update_path, new_context)
            check_eq(got.commit_secret, created.commit_secret, f"new path: commit secret at {j}")
