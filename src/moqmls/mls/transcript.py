"""Transcript hashes and the confirmation tag (RFC 9420 §8.2, §6.1)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from moqmls.mls.codec import encode_varint
from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import ValidationError
from moqmls.mls.structs import (
    AuthenticatedContent,
    ConfirmedTranscriptHashInput,
    ContentType,
)


@dataclass(frozen=True)
class TranscriptHashes:
    """The confirmed and interim transcript hashes after one commit (§8.2)."""

    confirmed: bytes
    interim: bytes


def confirmed_transcript_hash(
    suite: CipherSuite, interim_before: bytes, confirmed_input: bytes
) -> bytes:
    """Hash(interim_transcript_hash_[n-1] || ConfirmedTranscriptHashInput_[n]) (§8.2)."""
    return suite.hash(interim_before + confirmed_input)


def interim_transcript_hash(suite: CipherSuite, confirmed: bytes, confirmation_tag: bytes) -> bytes:
    """Hash(confirmed_transcript_hash_[n] || InterimTranscriptHashInput_[n]) (§8.2)."""
    return suite.hash(confirmed + encode_varint(len(confirmation_tag)) + confirmation_tag)


def confirmation_tag(suite: CipherSuite, confirmation_key: bytes, confirmed: bytes) -> bytes:
    """confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash) (§6.1)."""
    return suite.mac(confirmation_key, confirmed)


def verify_confirmation_tag(
    suite: CipherSuite, confirmation_key: bytes, confirmed: bytes, tag: bytes
) -> bool:
    """Whether ``tag`` is the confirmation tag of ``confirmed`` (§6.1), in constant time."""
    return hmac.compare_digest(confirmation_tag(suite, confirmation_key, confirmed), tag)


def confirmed_input(content: AuthenticatedContent) -> bytes:
    """ConfirmedTranscriptHashInput of a commit's AuthenticatedContent (§8.2)."""
    if content.content.content_type != ContentType.COMMIT:
        raise ValidationError("transcript hashes absorb only commits")
    return ConfirmedTranscriptHashInput(
        wire_format=content.wire_format,
        content=content.content,
        signature=content.auth.signature,
    ).encode()


def update_transcript(
    suite: CipherSuite, interim_before: bytes, content: AuthenticatedContent
) -> TranscriptHashes:
    """Both transcript hashes after absorbing a commit's AuthenticatedContent (§8.2)."""
    tag = content.auth.confirmation_tag
    if tag is None:
        raise ValidationError("a commit without a confirmation_tag")
    confirmed = confirmed_transcript_hash(suite, interim_before, confirmed_input(content))
    return TranscriptHashes(confirmed, interim_transcript_hash(suite, confirmed, tag))
