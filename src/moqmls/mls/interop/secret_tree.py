"""Runner for ``secret-tree.json`` (RFC 9420 §9, §6.3.2; test-vectors.md "Secret Tree")."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check_eq
from moqmls.mls.secret_tree import RatchetType, SecretTree, sender_data_key_nonce


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    h = bytes.fromhex

    sd = case["sender_data"]
    key, nonce = sender_data_key_nonce(suite, h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    check_eq(key, h(sd["key"]), "sender_data key")
    check_eq(nonce, h(sd["nonce"]), "sender_data nonce")

    leaves = case["leaves"]
    tree = SecretTree(suite, h(case["encryption_secret"]), len(leaves))
    for leaf, entries in enumerate(leaves):
        for entry in entries:
            g = entry["generation"]
            for kind, name in (
                (RatchetType.HANDSHAKE, "handshake"),
                (RatchetType.APPLICATION, "application"),
            ):
                peeked = tree.key_for(leaf, kind, g)
                used = tree.consume(leaf, kind, g)
                check_eq(peeked, used, f"leaf {leaf} {name} gen {g}: peek == consume")
                check_eq(used.key, h(entry[f"{name}_key"]), f"leaf {leaf} {name}_key gen {g}")
                check_eq(used.nonce, h(entry[f"{name}_nonce"]), f"leaf {leaf} {name}_nonce gen {g}")
