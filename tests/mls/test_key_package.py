"""KeyPackages (RFC 9420 §10): creation, parsing, validation, KeyPackageRef."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.errors import DecodeError, KeyPackageError, MLSError
from moqmls.mls.key_package import (
    key_package_ref,
    make_key_package,
    parse_key_package,
    verify_key_package,
)
from moqmls.mls.leaf_validation import leaf_signature_valid
from moqmls.mls.structs import (
    Extension,
    LeafNodeSource,
    Lifetime,
    MLSMessage,
    ProposalType,
    WireFormat,
)


@pytest.mark.parametrize("suite_id", [1, 2, 3, 5, 7])
def test_made_key_package_is_valid_and_matches_its_private_half(suite_id: int) -> None:
    data, private = make_key_package(b"alice", suite_id)
    kp = parse_key_package(data)
    suite = cipher_suite(suite_id)
    assert kp == private.key_package
    assert kp.cipher_suite == suite_id
    assert kp.leaf_node.leaf_node_source == LeafNodeSource.KEY_PACKAGE
    assert kp.leaf_node.credential.identity == b"alice"
    assert suite.hpke_public_key(private.init_priv) == kp.init_key
    assert suite.hpke_public_key(private.encryption_priv) == kp.leaf_node.encryption_key
    assert suite.signature_public_key(private.signature_priv) == kp.leaf_node.signature_key
    assert kp.init_key != kp.leaf_node.encryption_key
    assert leaf_signature_valid(suite, kp.leaf_node, None, None)
    assert ProposalType.SELF_REMOVE in kp.leaf_node.capabilities.proposals


def test_key_package_ref_is_the_ref_hash_of_the_encoding() -> None:
    """§5.2: Hash(RefHashInput{opaque label<V>, opaque value<V>}), varints written by hand."""
    _, private = make_key_package(b"bob")
    suite = cipher_suite(1)
    label = b"MLS 1.0 KeyPackage Reference"
    encoded = private.key_package.encode()
    n = len(encoded)
    assert 0x40 <= n < 0x4000
    ref_input = bytes([len(label)]) + label + bytes([0x40 | (n >> 8), n & 0xFF]) + encoded
    assert key_package_ref(suite, private.key_package) == hashlib.sha256(ref_input).digest()


def test_signature_key_is_reused_when_given() -> None:
    _, first = make_key_package(b"carol")
    _, second = make_key_package(b"carol", signature_priv=first.signature_priv)
    assert first.key_package.leaf_node.signature_key == second.key_package.leaf_node.signature_key
    assert first.key_package.init_key != second.key_package.init_key


def test_tampered_key_package_is_rejected() -> None:
    _, private = make_key_package(b"dave")
    kp = private.key_package
    forged = dataclasses.replace(kp, init_key=cipher_suite(1).generate_key_pair()[1])
    with pytest.raises(KeyPackageError):
        verify_key_package(forged, 1)
    with pytest.raises(KeyPackageError):
        verify_key_package(kp, 2)
    same_keys = dataclasses.replace(kp, init_key=kp.leaf_node.encryption_key)
    with pytest.raises(KeyPackageError):
        verify_key_package(same_keys, 1)


def test_parse_rejects_other_messages() -> None:
    _, private = make_key_package(b"erin")
    kp = private.key_package
    message = MLSMessage.of(kp)
    assert message.wire_format == WireFormat.MLS_KEY_PACKAGE
    with pytest.raises(DecodeError):
        parse_key_package(b"\x00\x01\x00\x03")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzzed_key_packages_raise_mls_errors(data: st.DataObject) -> None:
    raw, _ = _CACHED
    i = data.draw(st.integers(0, len(raw) - 1))
    mutated = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]
    cut = data.draw(st.integers(0, len(mutated)))
    for candidate in (mutated, mutated[:cut]):
        with pytest.raises(MLSError):
            parse_key_package(candidate)


_CACHED = make_key_package(b"fuzz")


def _resigned(private: object, leaf: object) -> bytes:
    """A KeyPackage around ``leaf`` whose own signature is valid again."""
    kp = private.key_package  # type: ignore[attr-defined]
    unsigned = dataclasses.replace(kp, leaf_node=leaf, signature=b"")
    signature = cipher_suite(1).sign_with_label(
        private.signature_priv,  # type: ignore[attr-defined]
        b"KeyPackageTBS",
        unsigned.tbs().encode(),
    )
    return MLSMessage.of(dataclasses.replace(unsigned, signature=signature)).encode()


def test_leaf_rules_are_checked_without_a_group() -> None:
    _, private = make_key_package(b"frank", lifetime=Lifetime(100, 200))
    kp = private.key_package
    data = MLSMessage.of(kp).encode()
    assert parse_key_package(data) == kp
    assert parse_key_package(data, now=150) == kp
    with pytest.raises(KeyPackageError):
        parse_key_package(data, now=201)
    bad_leaf = dataclasses.replace(kp.leaf_node, signature=bytes(64))
    with pytest.raises(KeyPackageError):
        parse_key_package(_resigned(private, bad_leaf))
    undeclared = dataclasses.replace(kp.leaf_node, extensions=(Extension(0xF0F0, b""),))
    with pytest.raises(KeyPackageError):
        parse_key_package(_resigned(private, undeclared))
