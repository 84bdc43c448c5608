"""Runner for ``crypto-basics.json`` (RFC 9420 §5, §8; test-vectors.md "Crypto Basics")."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check, check_eq
from moqmls.mls.secret_tree import derive_tree_secret


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    h = bytes.fromhex

    v = case["ref_hash"]
    out = suite.ref_hash(v["label"].encode(), h(v["value"]))
    check_eq(out, h(v["out"]), "ref_hash")

    v = case["expand_with_label"]
    out = suite.expand_with_label(h(v["secret"]), v["label"].encode(), h(v["context"]), v["length"])
    check_eq(out, h(v["out"]), "expand_with_label")

    v = case["derive_secret"]
    out = suite.derive_secret(h(v["secret"]), v["label"].encode())
    check_eq(out, h(v["out"]), "derive_secret")

    v = case["derive_tree_secret"]
    out = derive_tree_secret(
        suite, h(v["secret"]), v["label"].encode(), v["generation"], v["length"]
    )
    check_eq(out, h(v["out"]), "derive_tree_secret")

    v = case["sign_with_label"]
    label, content, pub = v["label"].encode(), h(v["content"]), h(v["pub"])
    check(suite.verify_with_label(pub, label, content, h(v["signature"])), "vector signature")
    check_eq(suite.signature_public_key(h(v["priv"])), pub, "signature public key of priv")
    own = suite.sign_with_label(h(v["priv"]), label, content)
    check(suite.verify_with_label(pub, label, content, own), "own signature verifies")

    v = case["encrypt_with_label"]
    label, context, priv = v["label"].encode(), h(v["context"]), h(v["priv"])
    plaintext = h(v["plaintext"])
    check_eq(suite.hpke_public_key(priv), h(v["pub"]), "HPKE public key of priv")
    out = suite.decrypt_with_label(priv, label, context, h(v["kem_output"]), h(v["ciphertext"]))
    check_eq(out, plaintext, "decrypt_with_label of the vector")
    kem_output, ciphertext = suite.encrypt_with_label(h(v["pub"]), label, context, plaintext)
    out = suite.decrypt_with_label(priv, label, context, kem_output, ciphertext)
    check_eq(out, plaintext, "decrypt_with_label of own encryption")
