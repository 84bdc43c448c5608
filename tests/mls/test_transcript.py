"""Transcript hashes (RFC 9420 §8.2) computed independently from the raw vector bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from moqmls.mls.codec import encode_varint
from moqmls.mls.crypto import cipher_suite
from moqmls.mls.errors import ValidationError
from moqmls.mls.structs import AuthenticatedContent, ContentType
from moqmls.mls.transcript import (
    confirmation_tag,
    confirmed_input,
    interim_transcript_hash,
    update_transcript,
    verify_confirmation_tag,
)

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "mls" / "transcript-hashes.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS, ids=lambda c: f"suite{c['cipher_suite']}")
def test_confirmed_input_is_the_content_prefix(case: dict[str, object]) -> None:
    """AuthenticatedContent = ConfirmedTranscriptHashInput || opaque confirmation_tag<V>."""
    raw = bytes.fromhex(str(case["authenticated_content"]))
    content = AuthenticatedContent.decode(raw)
    tag = content.auth.confirmation_tag
    assert tag is not None
    prefix = raw[: len(raw) - len(encode_varint(len(tag))) - len(tag)]
    assert confirmed_input(content) == prefix
    suite = cipher_suite(int(str(case["cipher_suite"])))
    before = bytes.fromhex(str(case["interim_transcript_hash_before"]))
    hashes = update_transcript(suite, before, content)
    name = {32: "sha256", 48: "sha384", 64: "sha512"}[suite.hash_len]
    assert hashes.confirmed == hashlib.new(name, before + prefix).digest()
    tag_input = encode_varint(len(tag)) + tag
    assert hashes.interim == hashlib.new(name, hashes.confirmed + tag_input).digest()


def test_interim_depends_on_the_tag_and_tag_on_the_key() -> None:
    suite = cipher_suite(0x0001)
    confirmed = b"\x11" * 32
    assert interim_transcript_hash(suite, confirmed, b"a") != interim_transcript_hash(
        suite, confirmed, b"b"
    )
    tag = confirmation_tag(suite, b"k1", confirmed)
    assert tag == hmac.digest(b"k1", confirmed, hashlib.sha256)
    assert verify_confirmation_tag(suite, b"k1", confirmed, tag)
    assert not verify_confirmation_tag(suite, b"k2", confirmed, tag)
    assert not verify_confirmation_tag(suite, b"k1", confirmed, tag[:-1])


def test_only_commits_with_a_tag_enter_the_transcript() -> None:
    case = VECTORS[0]
    content = AuthenticatedContent.decode(bytes.fromhex(case["authenticated_content"]))
    suite = cipher_suite(case["cipher_suite"])
    untagged = dataclasses.replace(
        content, auth=dataclasses.replace(content.auth, confirmation_tag=None)
    )
    with pytest.raises(ValidationError):
        update_transcript(suite, b"", untagged)
    proposal_like = dataclasses.replace(
        content, content=dataclasses.replace(content.content, content_type=ContentType.PROPOSAL)
    )
    with pytest.raises(ValidationError):
        confirmed_input(proposal_like)
