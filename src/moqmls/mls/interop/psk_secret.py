"""Runner for ``psk_secret.json`` (RFC 9420 §8.4; test-vectors.md "Pre-Shared Keys")."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check_eq
from moqmls.mls.key_schedule import psk_secret
from moqmls.mls.structs import PreSharedKeyID, PSKType


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    h = bytes.fromhex
    psks = [
        (
            PreSharedKeyID(
                psktype=PSKType.EXTERNAL,
                psk_id=h(p["psk_id"]),
                usage=None,
                psk_group_id=None,
                psk_epoch=None,
                psk_nonce=h(p["psk_nonce"]),
            ).encode(),
            h(p["psk"]),
        )
        for p in case["psks"]
    ]
    check_eq(psk_secret(suite, psks), h(case["psk_secret"]), "psk_secret")
