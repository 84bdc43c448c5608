"""The secret tree and its hash ratchets (RFC 9420 §9)."""

from __future__ import annotations

from moqmls.mls.crypto import CipherSuite


def derive_tree_secret(
    suite: CipherSuite, secret: bytes, label: bytes, generation: int, length: int
) -> bytes:
    """DeriveTreeSecret (RFC 9420 §9): ExpandWithLabel with the generation as context."""
    return suite.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)
