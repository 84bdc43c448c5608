"""Signed receipts of Committed decisions (moqmls.lock.receipt), per store, over real HTTP.

The signed content is rebuilt here by hand from the layout the module docstring states, and
checked with `cryptography` directly, so the encoding is not only checked against itself.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sqlite3
import struct
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from moqmls.lock import (
    Acquired,
    BadReceiptSignatureError,
    Committed,
    LockClient,
    MalformedReceiptError,
    Receipt,
    ReceiptMismatchError,
    ServiceKey,
    UnknownReceiptKeyError,
    serve,
    verify_receipt,
)
from moqmls.lock.receipt import ReceiptSigner, key_table, new_signing_key
from moqmls.lock.sqlite import SQLiteStore
from tests.lock.lock_helpers import (
    assert_receipt_proves_only_this,
    commit_bytes,
    create_group,
    service_process,
)

LABEL = b"moqmls lock-service receipt v1"


def signed_content(
    group: str, epoch: int, commit_hash: bytes, committer: str, key_id: bytes
) -> bytes:
    """The signed bytes, written out from the documented struct (not from the codec)."""
    g, c = group.encode(), committer.encode()
    return (
        bytes([len(LABEL)])
        + LABEL
        + key_id
        + bytes([len(g)])
        + g
        + struct.pack(">Q", epoch)
        + commit_hash
        + struct.pack(">H", len(c))
        + c
    )


async def commit_one(
    client: LockClient, group: str, epoch: int, holder: str
) -> tuple[bytes, Committed]:
    got = await client.lock(group, epoch, holder)
    assert isinstance(got, Acquired)
    commit = commit_bytes(group, epoch, holder)
    done = await client.complete(got.token, commit=commit, welcome=b"w" + commit)
    assert isinstance(done, Committed) and done.epoch == epoch + 1
    return commit, done


async def test_every_committed_carries_a_receipt_the_published_key_verifies(
    client: LockClient, url: str
) -> None:
    await create_group(client, "rc")
    async with aiohttp.ClientSession() as http, http.get(url + "/v1/keys") as response:
        assert response.status == 200
        body = await response.json()
    [published] = body["keys"]
    assert published["alg"] == "Ed25519"
    raw = base64.b64decode(published["public_key"])
    assert bytes.fromhex(published["key_id"]) == hashlib.sha256(raw).digest()[:8]
    public = Ed25519PublicKey.from_public_bytes(raw)
    receipts = {}
    for epoch in range(3):
        holder = f"m{epoch}"
        commit, done = await commit_one(client, "rc", epoch, holder)
        assert done.receipt is not None
        digest = hashlib.sha256(commit).digest()
        content = signed_content("rc", epoch, digest, holder, bytes.fromhex(published["key_id"]))
        assert done.receipt == content[1 + len(LABEL) :] + done.receipt[-64:]
        public.verify(done.receipt[-64:], content)  # raises if it does not verify
        receipts[epoch] = done.receipt
        got = await client.verify_receipt(
            done.receipt, group="rc", epoch=epoch, committer=holder, commit_hash=digest
        )
        await assert_receipt_proves_only_this(client, done.receipt, "rc", epoch, holder, digest)
        assert (got.group, got.epoch, got.committer, got.commit_hash) == (
            "rc",
            epoch,
            holder,
            digest,
        )
    # the epoch record and the status history carry the very same receipts
    for epoch, receipt in receipts.items():
        record = await client.epoch("rc", epoch)
        assert record is not None and record.receipt == receipt
    status = await client.status("rc")
    assert {h.epoch: h.receipt for h in status.history} == receipts


async def test_a_repeated_complete_answers_the_same_receipt(client: LockClient) -> None:
    await create_group(client, "again")
    got = await client.lock("again", 0, "m")
    assert isinstance(got, Acquired)
    first = await client.complete(got.token, commit=b"c0")
    second = await client.complete(got.token, commit=b"c0")
    assert isinstance(first, Committed) and first.receipt is not None
    assert second == first


@pytest.fixture
def issued() -> tuple[ReceiptSigner, dict[bytes, bytes], bytes]:
    signer = ReceiptSigner(new_signing_key())
    receipt = signer.sign("team", 7, hashlib.sha256(b"commit").hexdigest(), "alice")
    return signer, key_table([signer.key]), receipt


def check(receipt: bytes, keys: dict[bytes, bytes], **overrides: object) -> Receipt:
    expected: dict[str, object] = {
        "group": "team",
        "epoch": 7,
        "committer": "alice",
        "commit_hash": hashlib.sha256(b"commit").digest(),
    } | overrides
    return verify_receipt(receipt, keys, **expected)  # type: ignore[arg-type]


def test_the_genuine_receipt_verifies(
    issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes],
) -> None:
    _, keys, receipt = issued
    assert check(receipt, keys).epoch == 7
    assert check(receipt, keys, commit_hash=None).commit_hash == hashlib.sha256(b"commit").digest()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("group", "other"),
        ("epoch", 8),
        ("commit_hash", hashlib.sha256(b"forged").digest()),
        ("committer", "mallory"),
        ("signature", bytes(64)),
    ],
)
def test_a_tampered_field_fails_the_signature(
    issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes], name: str, value: object
) -> None:
    _, keys, receipt = issued
    forged = dataclasses.replace(Receipt.decode(receipt), **{name: value}).encode()
    with pytest.raises(BadReceiptSignatureError):
        check(forged, keys)
    # also when the checker expects exactly the forged values
    if name in ("group", "epoch", "committer", "commit_hash"):
        with pytest.raises(BadReceiptSignatureError):
            check(forged, keys, **{name: value})


def test_a_flipped_signature_bit_fails(
    issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes],
) -> None:
    _, keys, receipt = issued
    flipped = receipt[:-1] + bytes([receipt[-1] ^ 1])
    with pytest.raises(BadReceiptSignatureError):
        check(flipped, keys)


def test_a_wrong_key_id_or_another_services_key_is_unknown(
    issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes],
) -> None:
    signer, keys, receipt = issued
    renamed = dataclasses.replace(Receipt.decode(receipt), key_id=b"\x00" * 8).encode()
    with pytest.raises(UnknownReceiptKeyError):
        check(renamed, keys)
    other = ReceiptSigner(new_signing_key())
    foreign = other.sign("team", 7, hashlib.sha256(b"commit").hexdigest(), "alice")
    with pytest.raises(UnknownReceiptKeyError):
        check(foreign, keys)
    # the other service's key under our key id: the signature cannot verify
    swapped = {signer.key.key_id: other.key.public_key}
    with pytest.raises(BadReceiptSignatureError):
        check(receipt, swapped)


@pytest.mark.parametrize(
    "overrides",
    [
        {"group": "another-group"},
        {"epoch": 6},
        {"committer": "bob"},
        {"commit_hash": hashlib.sha256(b"other commit").digest()},
    ],
)
def test_a_genuine_receipt_for_something_else_is_a_mismatch(
    issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes], overrides: dict[str, object]
) -> None:
    _, keys, receipt = issued
    with pytest.raises(ReceiptMismatchError):
        check(receipt, keys, **overrides)


def test_malformed_receipts(issued: tuple[ReceiptSigner, dict[bytes, bytes], bytes]) -> None:
    _, keys, receipt = issued
    for bad in (b"", receipt[:-1], receipt + b"\x00", receipt[:8] + b"\x00" + receipt[9:]):
        with pytest.raises(MalformedReceiptError):
            check(bad, keys)


@given(st.binary(max_size=300))
def test_decoding_any_bytes_is_a_receipt_or_a_precise_error(data: bytes) -> None:
    try:
        receipt = Receipt.decode(data)
    except MalformedReceiptError:
        return
    assert receipt.encode() == data


@given(
    st.text(min_size=1, max_size=20),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.text(min_size=1, max_size=40),
)
def test_encoding_round_trips(group: str, epoch: int, digest: bytes, committer: str) -> None:
    receipt = Receipt(b"k" * 8, group, epoch, digest, committer, b"s" * 64)
    assert Receipt.decode(receipt.encode()) == receipt


async def test_client_looks_an_unknown_key_id_up_once_more_then_refuses(client: LockClient) -> None:
    await create_group(client, "keys")
    _, done = await commit_one(client, "keys", 0, "m")
    assert done.receipt is not None
    foreign = ReceiptSigner(new_signing_key()).sign("keys", 0, "00" * 32, "m")
    with pytest.raises(UnknownReceiptKeyError):
        await client.verify_receipt(foreign, group="keys", epoch=0, committer="m", commit_hash=None)
    assert (await client.service_keys()) == (await client.service_keys(refresh=True))


async def test_two_service_processes_on_one_sqlite_file_sign_alike(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'shared.db'}"
    async with (
        service_process(store) as (url_a, _),
        service_process(store) as (url_b, _),
        LockClient(url_a) as a,
        LockClient(url_b) as b,
        LockClient(url_a) as member,
    ):
        await create_group(a, "shared")
        receipts = []
        for epoch, client in enumerate((a, b, a, b)):
            commit, done = await commit_one(client, "shared", epoch, f"h{epoch}")
            assert done.receipt is not None
            receipts.append((epoch, f"h{epoch}", hashlib.sha256(commit).digest(), done.receipt))
        assert await a.service_keys() == await b.service_keys()
        for epoch, holder, digest, receipt in receipts:  # one member, keys from one process
            await member.verify_receipt(
                receipt, group="shared", epoch=epoch, committer=holder, commit_hash=digest
            )


async def test_the_key_survives_a_restart_and_an_old_file_gains_the_receipt_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the epochs table as it was before receipts
    db.execute(
        'CREATE TABLE epochs ("group", "epoch", "commit_hash", "committer", "token", "commit",'
        ' "welcome", PRIMARY KEY ("group", "epoch"))'
    )
    db.commit()
    db.close()
    async with SQLiteStore(path) as store, serve(store) as url, LockClient(url) as client:
        await create_group(client, "old")
        _, done = await commit_one(client, "old", 0, "m")
        keys = await client.service_keys()
    async with SQLiteStore(path) as store, serve(store) as url, LockClient(url) as client:
        assert await client.service_keys() == keys
        record = await client.epoch("old", 0)
        assert record is not None and record.receipt == done.receipt
    assert isinstance(keys[0], ServiceKey)
