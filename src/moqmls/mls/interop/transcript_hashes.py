"""Runner for ``transcript-hashes.json`` (RFC 9420 §8.2; test-vectors.md "Transcript Hashes")."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check, check_eq
from moqmls.mls.structs import AuthenticatedContent, ContentType
from moqmls.mls.transcript import update_transcript, verify_confirmation_tag


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    h = bytes.fromhex
    raw = h(case["authenticated_content"])
    content = AuthenticatedContent.decode(raw)
    check_eq(content.encode(), raw, "AuthenticatedContent re-encodes byte-exactly")
    check(content.content.content_type == ContentType.COMMIT, "content is a Commit")
    confirmed_after = h(case["confirmed_transcript_hash_after"])
    received = content.auth.confirmation_tag or b""
    valid = verify_confirmation_tag(suite, h(case["confirmation_key"]), confirmed_after, received)
    check(valid, "confirmation_tag is the MAC of the confirmed hash")
    hashes = update_transcript(suite, h(case["interim_transcript_hash_before"]), content)
    check_eq(hashes.confirmed, confirmed_after, "confirmed_transcript_hash_after")
    check_eq(hashes.interim, h(case["interim_transcript_hash_after"]), "interim after")
