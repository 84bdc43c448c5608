"""Races over the real HTTP service, per store: one winner per epoch, one creator per group."""

from __future__ import annotations

import hashlib

from moqmls.lock import Join, LockClient, verify_receipt
from moqmls.lock.receipt import key_table
from tests.lock.lock_helpers import (
    assert_create_race,
    commit_bytes,
    create_group,
    race_create,
    race_epochs,
)


async def test_eight_racers_300_epochs_one_commit_each(url: str) -> None:
    clients = [LockClient(url) for _ in range(8)]
    try:
        await create_group(clients[0], "race")
        log = await race_epochs(clients, "race", 300)
        status = await clients[0].status("race")
        record = await clients[1].epoch("race", 137)
        keys = key_table(await clients[2].service_keys())
    finally:
        for c in clients:
            await c.close()
    epochs = sorted(e for e, _, _ in log.wins)
    assert epochs == list(range(300)), "exactly one Committed per epoch"
    assert status.exists and status.epoch == 300
    expected = [(e, h, holder) for e, holder, h in sorted(log.wins)]
    history = [(h.epoch, h.commit_hash, h.committer) for h in status.history]
    assert history == expected, "the history is the linear chain of the winners"
    for h in status.history:  # each entry's receipt is the one its winner got, and verifies
        assert h.receipt is not None and h.receipt == log.receipts[h.epoch]
        verify_receipt(
            h.receipt,
            keys,
            group="race",
            epoch=h.epoch,
            committer=h.committer,
            commit_hash=bytes.fromhex(h.commit_hash),
        )
    winner = dict((e, holder) for e, holder, _ in log.wins)[137]
    commit = commit_bytes("race", 137, winner)
    assert record is not None
    assert (record.commit, record.welcome) == (commit, b"w" + commit)
    assert record.commit_hash == hashlib.sha256(commit).hexdigest()
    assert record.receipt == log.receipts[137]
    assert len({holder for _, holder, _ in log.wins}) > 1, "several racers won epochs"
    assert log.locked > 0, "racers did contend"


async def test_twenty_racers_create_or_join_one_create(url: str) -> None:
    clients = [LockClient(url) for _ in range(20)]
    try:
        answers = await race_create(clients, "fresh")
        again = await clients[3].create_or_join("fresh", "late")
        status = await clients[0].status("fresh")
    finally:
        for c in clients:
            await c.close()
    assert_create_race(answers)
    assert again == Join(0)
    assert status.exists and status.epoch == 0 and status.history == ()
