"""Runner for ``welcome.json`` (RFC 9420 §12.4.3.1): decrypt a Welcome with the KeyPackage's
init key, verify the GroupInfo signature and its confirmation tag from the joiner secret."""

from __future__ import annotations

from moqmls.mls.crypto import cipher_suite
from moqmls.mls.interop import Case, check, check_eq
from moqmls.mls.key_package import KeyPackagePrivate
from moqmls.mls.key_schedule import epoch_secrets_from_joiner, welcome_secret
from moqmls.mls.structs import MLSMessage, WireFormat
from moqmls.mls.welcome import open_group_info, open_group_secrets, verify_group_info


def run(case: Case) -> None:
    suite = cipher_suite(case["cipher_suite"])
    kp_message = MLSMessage.decode(bytes.fromhex(case["key_package"]))
    welcome_message = MLSMessage.decode(bytes.fromhex(case["welcome"]))
    check(kp_message.wire_format == WireFormat.MLS_KEY_PACKAGE, "key_package is a KeyPackage")
    check(welcome_message.wire_format == WireFormat.MLS_WELCOME, "welcome is a Welcome")
    assert kp_message.key_package is not None and welcome_message.welcome is not None
    welcome = welcome_message.welcome
    # Only the init key is needed to open the Welcome; the other private keys are not given.
    private = KeyPackagePrivate(kp_message.key_package, bytes.fromhex(case["init_priv"]), b"", b"")
    secrets = open_group_secrets(suite, welcome, private)
    check_eq(secrets.psks, (), "the vector's Welcome uses no PSKs")
    group_info = open_group_info(suite, welcome, welcome_secret(suite, secrets.joiner_secret, None))
    verify_group_info(suite, group_info, bytes.fromhex(case["signer_pub"]))
    context = group_info.group_context
    schedule = epoch_secrets_from_joiner(suite, secrets.joiner_secret, None, context.encode())
    tag = suite.mac(schedule.confirmation_key, context.confirmed_transcript_hash)
    check_eq(tag, group_info.confirmation_tag, "confirmation_tag")
