"""Runner for ``passive-client-welcome.json`` (RFC 9420 §12.4.3.1, test-vectors.md "Passive
Client Scenarios"): join from a Welcome (ratchet tree inside it or given separately, external
PSKs) and match the epoch authenticator. The other passive-client runners reuse `follow`."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.group import Group
from moqmls.mls.interop import Case, check, check_eq
from moqmls.mls.key_package import KeyPackagePrivate
from moqmls.mls.structs import MLSMessage


def _hex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def join(case: Case) -> Group:
    """Check the private keys against the KeyPackage, join, check the first authenticator."""
    suite = cipher_suite(case["cipher_suite"])
    message = MLSMessage.decode(bytes.fromhex(case["key_package"]))
    key_package = message.key_package
    check(key_package is not None, "key_package is an MLSMessage(KeyPackage)")
    assert key_package is not None
    signature_priv = bytes.fromhex(case["signature_priv"])
    encryption_priv = bytes.fromhex(case["encryption_priv"])
    init_priv = bytes.fromhex(case["init_priv"])
    leaf = key_package.leaf_node
    check_eq(suite.signature_public_key(signature_priv), leaf.signature_key, "signature_priv")
    check_eq(suite.hpke_public_key(encryption_priv), leaf.encryption_key, "encryption_priv")
    check_eq(suite.hpke_public_key(init_priv), key_package.init_key, "init_priv")
    private = KeyPackagePrivate(key_package, init_priv, encryption_priv, signature_priv)
    psks = {bytes.fromhex(p["psk_id"]): bytes.fromhex(p["psk"]) for p in case["external_psks"]}
    group = Group.join_from_welcome(
        bytes.fromhex(case["welcome"]),
        private,
        _hex(case["ratchet_tree"]),
        external_psks=psks,
    )
    check_eq(
        group.epoch_authenticator,
        bytes.fromhex(case["initial_epoch_authenticator"]),
        "initial_epoch_authenticator",
    )
    return group


def follow(case: Case) -> None:
    """Join, then apply every epoch's proposals and commit, matching each authenticator."""
    group = join(case)
    for number, epoch in enumerate(case["epochs"]):
        for proposal in epoch["proposals"]:
            group.process(bytes.fromhex(proposal))
        group.process(bytes.fromhex(epoch["commit"]))
        check_eq(
            group.epoch_authenticator,
            bytes.fromhex(epoch["epoch_authenticator"]),
            f"epoch_authenticator after epoch entry {number}",
        )


def run(case: Case) -> None:
    follow(case)
