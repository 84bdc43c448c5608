"""Runner for ``key-schedule.json`` (RFC 9420 §8; test-vectors.md "Key Schedule")."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check_eq
from moqmls.mls.key_schedule import epoch_secrets, external_key_pair, mls_exporter
from moqmls.mls.structs import GroupContext, ProtocolVersion

_SECRETS = (
    "joiner_secret",
    "welcome_secret",
    "init_secret",
    "sender_data_secret",
    "encryption_secret",
    "exporter_secret",
    "epoch_authenticator",
    "external_secret",
    "confirmation_key",
    "membership_key",
    "resumption_psk",
)


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    h = bytes.fromhex
    group_id = h(case["group_id"])
    init_secret = h(case["initial_init_secret"])
    for epoch, e in enumerate(case["epochs"]):
        context = GroupContext(
            version=ProtocolVersion.MLS10,
            cipher_suite=suite.suite_id,
            group_id=group_id,
            epoch=epoch,
            tree_hash=h(e["tree_hash"]),
            confirmed_transcript_hash=h(e["confirmed_transcript_hash"]),
            extensions=(),
        ).encode()
        check_eq(context, h(e["group_context"]), f"epoch {epoch} group_context")
        secrets = epoch_secrets(
            suite, init_secret, h(e["commit_secret"]), h(e["psk_secret"]), context
        )
        for name in _SECRETS:
            check_eq(getattr(secrets, name), h(e[name]), f"epoch {epoch} {name}")
        _, external_pub = external_key_pair(suite, secrets.external_secret)
        check_eq(external_pub, h(e["external_pub"]), f"epoch {epoch} external_pub")
        x = e["exporter"]
        exported = mls_exporter(
            suite, secrets.exporter_secret, x["label"].encode(), h(x["context"]), x["length"]
        )
        check_eq(exported, h(x["secret"]), f"epoch {epoch} exporter")
        init_secret = secrets.init_secret
