"""Every test vector of the Secure Objects editor's copy (appendix "Test Vectors") and the
SFrame vectors of RFC 9605 that exercise our AEADs and HKDF.

Expected values come only from the vector files; the draft's CTR-HMAC tags are checked
against an independent computation of the alternative construction they were made with.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from moqmls.secure_objects import (
    AuthenticationError,
    PlainObject,
    Property,
    SecureObject,
    TrackKeys,
    cipher_suite,
)
from moqmls.secure_objects.codec import (
    decode_plaintext,
    decode_properties,
    encode_plaintext,
    encode_properties,
)
from moqmls.secure_objects.schedule import (
    derive_key_salt,
    hkdf_expand,
    hkdf_extract,
    make_aad,
    make_ctr,
    make_nonce,
    serialize_full_track_name,
)
from moqmls.secure_objects.suites import AesCtrHmac

VECTORS = Path(__file__).parent.parent / "vectors"
SO = json.loads((VECTORS / "secure_objects" / "vectors.json").read_text())
SFRAME = json.loads((VECTORS / "sframe" / "test-vectors.json").read_text())

h = bytes.fromhex


def _ns(v: dict[str, Any]) -> tuple[bytes, ...]:
    return tuple(t.encode() for t in v["namespace_tuples"])


def test_every_category_is_present() -> None:
    counts = {k: len(v) for k, v in SO.items()}
    assert counts == {"full_track_name": 3, "key_derivation": 4, "nonce_aad": 3, "encryption": 4}


@pytest.mark.parametrize("v", SO["full_track_name"], ids=lambda v: v["track_name"])
def test_full_track_name(v: dict[str, Any]) -> None:
    got = serialize_full_track_name(_ns(v), v["track_name"].encode())
    assert got == h(v["serialized_full_track_name"])


@pytest.mark.parametrize("v", SO["key_derivation"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_key_derivation(v: dict[str, Any]) -> None:
    d = derive_key_salt(
        cipher_suite(v["cipher_suite"]),
        v["key_id"],
        h(v["track_base_key"]),
        h(v["serialized_full_track_name"]),
    )
    assert d.moq_secret == h(v["moq_secret"])
    assert d.moq_key_label == h(v["moq_key_label"])
    assert d.moq_salt_label == h(v["moq_salt_label"])
    assert d.moq_key == h(v["moq_key"])
    assert d.moq_salt == h(v["moq_salt"])


@pytest.mark.parametrize("v", SO["nonce_aad"], ids=lambda v: f"g{v['group_id']}")
def test_nonce_and_aad(v: dict[str, Any]) -> None:
    g, o = v["group_id"], v["object_id"]
    assert make_ctr(g, o) == h(v["ctr"])
    assert make_nonce(h(v["moq_salt"]), g, o) == h(v["nonce"])
    immutable = encode_properties([Property.key_id(v["key_id"])]) + h(
        v["serialized_immutable_properties"]
    )
    assert make_aad(g, o, v["publisher_priority"], immutable) == h(v["aad"])


def _inputs(v: dict[str, Any]) -> tuple[PlainObject, TrackKeys]:
    (epl,) = decode_properties(h(v["encrypted_properties_list"]))
    assert epl.type == 0x0A
    obj = PlainObject(
        group_id=v["group_id"],
        object_id=v["object_id"],
        payload=h(v["original_payload"]),
        publisher_priority=v["publisher_priority"],
        immutable_properties=decode_properties(h(v["immutable_properties"])),
        encrypted_properties=decode_properties(epl.value),
    )
    keys = TrackKeys(
        cipher_suite(v["cipher_suite"]),
        v["key_id"],
        h(v["track_base_key"]),
        _ns(v),
        v["track_name"].encode(),
    )
    return obj, keys


@pytest.mark.parametrize("v", SO["encryption"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_encryption_inputs(v: dict[str, Any]) -> None:
    """Serialization, keys, plaintext, nonce and AAD of every full-encryption entry."""
    obj, keys = _inputs(v)
    suite = cipher_suite(v["cipher_suite"])
    ftn = serialize_full_track_name(_ns(v), v["track_name"].encode())
    assert ftn == h(v["serialized_full_track_name"])
    d = derive_key_salt(suite, v["key_id"], h(v["track_base_key"]), ftn)
    assert (d.moq_secret, d.moq_key_label, d.moq_salt_label) == (
        h(v["moq_secret"]),
        h(v["moq_key_label"]),
        h(v["moq_salt_label"]),
    )
    assert (d.moq_key, d.moq_salt, keys.salt) == (h(v["moq_key"]), h(v["moq_salt"]), d.moq_salt)
    pt = encode_plaintext(obj.payload, obj.encrypted_properties)
    assert pt == h(v["plaintext"])
    assert decode_plaintext(pt) == (obj.payload, obj.encrypted_properties, 0)
    assert make_ctr(obj.group_id, obj.object_id) == h(v["ctr"])
    assert make_nonce(d.moq_salt, obj.group_id, obj.object_id) == h(v["nonce"])
    immutable = encode_properties([Property.key_id(v["key_id"]), *obj.immutable_properties])
    assert make_aad(obj.group_id, obj.object_id, obj.publisher_priority, immutable) == h(v["aad"])


GCM = [v for v in SO["encryption"] if v["cipher_suite"] in (4, 5)]
CTR_HMAC = [v for v in SO["encryption"] if v["cipher_suite"] in (1, 2)]


def test_encryption_entries_cover_four_suites() -> None:
    assert sorted(v["cipher_suite"] for v in SO["encryption"]) == [1, 2, 4, 5]


@pytest.mark.parametrize("v", GCM, ids=lambda v: f"suite{v['cipher_suite']}")
def test_gcm_ciphertext(v: dict[str, Any]) -> None:
    obj, keys = _inputs(v)
    sealed = keys.protect(obj)
    assert sealed.payload == h(v["ciphertext"])
    assert sealed.key_id == v["key_id"]
    assert encode_properties(sealed.immutable_properties) == h(v["aad"])[13:]
    received = SecureObject(
        obj.group_id,
        obj.object_id,
        obj.publisher_priority,
        sealed.immutable_properties,
        h(v["ciphertext"]),
    )
    assert keys.unprotect(received) == obj


@pytest.mark.parametrize("v", CTR_HMAC, ids=lambda v: f"suite{v['cipher_suite']}")
def test_draft_ctr_hmac_vectors_diverge_from_rfc9605(v: dict[str, Any]) -> None:
    """The draft's CTR-HMAC tags are HMAC(auth_key, AAD || nonce || CT), without RFC 9605
    §4.5.1's three 64-bit lengths. We follow RFC 9605 (proven by the SFrame vectors below), so
    our ciphertext shares the draft's CTR part and differs in the tag. Do not "fix" this."""
    obj, keys = _inputs(v)
    suite = cipher_suite(v["cipher_suite"])
    nt = suite.nt
    draft_ct = h(v["ciphertext"])
    ours = keys.protect(obj).payload
    assert len(ours) == len(draft_ct)
    assert ours[:-nt] == draft_ct[:-nt]  # AES-CTR part agrees
    assert ours[-nt:] != draft_ct[-nt:]

    auth_key = h(v["moq_key"])[suite.nka :]
    aad, nonce, inner = h(v["aad"]), h(v["nonce"]), draft_ct[:-nt]
    alternative = hmac.digest(auth_key, aad + nonce + inner, "sha256")[:nt]
    assert draft_ct[-nt:] == alternative
    lengths = len(aad).to_bytes(8, "big") + len(inner).to_bytes(8, "big") + nt.to_bytes(8, "big")
    rfc9605 = hmac.digest(auth_key, lengths + nonce + aad + inner, "sha256")[:nt]
    assert ours[-nt:] == rfc9605
    # And the draft's CTR part is the vector's plaintext under enc_key, counter nonce||0^32.
    enc_key = h(v["moq_key"])[: suite.nka]
    ctr = Cipher(algorithms.AES(enc_key), modes.CTR(nonce + bytes(4))).decryptor()
    assert ctr.update(inner) + ctr.finalize() == h(v["plaintext"])

    received = SecureObject(
        obj.group_id,
        obj.object_id,
        obj.publisher_priority,
        keys.protect(obj).immutable_properties,
        draft_ct,
    )
    with pytest.raises(AuthenticationError):
        keys.unprotect(received)


# --- RFC 9605 (SFrame) vectors: the AEADs and HKDF we share with SFrame -------------------


@pytest.mark.parametrize("v", SFRAME["aes_ctr_hmac"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_aes_ctr_hmac(v: dict[str, Any]) -> None:
    aead = cipher_suite(v["cipher_suite"]).aead(h(v["key"]))
    assert aead.encrypt(h(v["nonce"]), h(v["pt"]), h(v["aad"])) == h(v["ct"])
    assert aead.decrypt(h(v["nonce"]), h(v["ct"]), h(v["aad"])) == h(v["pt"])
    with pytest.raises(InvalidTag):
        aead.decrypt(h(v["nonce"]), h(v["ct"]), h(v["aad"]) + b"x")


@pytest.mark.parametrize("v", SFRAME["aes_256_ctr_hmac"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_aes_256_ctr_hmac_construction(v: dict[str, Any]) -> None:
    """Suites 6-8 are not Secure Objects suites, but the same construction must fit them."""
    from cryptography.hazmat.primitives import hashes

    key, pt, ct = h(v["key"]), h(v["pt"]), h(v["ct"])
    assert key[:32] == h(v["enc_key"]) and key[32:] == h(v["auth_key"])
    aead = AesCtrHmac(key, 32, hashes.SHA512(), len(ct) - len(pt))
    assert aead.encrypt(h(v["nonce"]), pt, h(v["aad"])) == ct
    assert aead.decrypt(h(v["nonce"]), ct, h(v["aad"])) == pt


@pytest.mark.parametrize("v", SFRAME["sframe"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_cipher_level(v: dict[str, Any]) -> None:
    """HKDF, nonce formation and the AEAD of each suite, as SFrame's own vectors exercise them."""
    suite = cipher_suite(v["cipher_suite"])
    secret = hkdf_extract(suite.hash, b"", h(v["base_key"]))
    assert secret == h(v["sframe_secret"])
    key = hkdf_expand(suite.hash, secret, h(v["sframe_key_label"]), suite.nk)
    salt = hkdf_expand(suite.hash, secret, h(v["sframe_salt_label"]), suite.nn)
    assert (key, salt) == (h(v["sframe_key"]), h(v["sframe_salt"]))
    # SFrame's nonce is salt XOR CTR as Nn bytes; ours with Group ID 0 is the same.
    assert make_nonce(salt, 0, v["ctr"]) == h(v["nonce"])
    aad, metadata, ct = h(v["aad"]), h(v["metadata"]), h(v["ct"])
    header = aad[: len(aad) - len(metadata)]
    assert aad == header + metadata and ct.startswith(header)
    aead = suite.aead(key)
    assert aead.encrypt(h(v["nonce"]), h(v["pt"]), aad) == ct[len(header) :]
    assert aead.decrypt(h(v["nonce"]), ct[len(header) :], aad) == h(v["pt"])


def test_sframe_sections_cover_all_five_suites() -> None:
    assert sorted(v["cipher_suite"] for v in SFRAME["sframe"]) == [1, 2, 3, 4, 5]
    assert sorted(v["cipher_suite"] for v in SFRAME["aes_ctr_hmac"]) == [1, 2, 3]
