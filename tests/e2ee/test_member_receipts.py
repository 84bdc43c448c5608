"""The sans-I/O member with lock-service receipts (DESIGN.md "Lock service"), on fakes.

The fake lock service signs each Committed with a real `moqmls.lock.receipt` key; members
check receipts through the real `LockReceipts` port.
"""

from __future__ import annotations

from moqmls.e2ee import events as ev
from moqmls.e2ee.tracks import TrackKind
from moqmls.lock.receipt import ReceiptSigner, new_signing_key
from tests.e2ee.fakes import Sim, digest


def _grow(sim: Sim, n: int, spacing: float = 0.5) -> None:
    for i in range(n):
        sim.add(f"m{i}", at=i * spacing)
    sim.run(n * spacing + 2.0)


def _ops(sim: Sim, kind: type) -> list[tuple[str, ev.LockOp]]:
    return [(who, op) for who, op in sim.lock.ops if isinstance(op, kind)]


def test_with_receipts_no_member_asks_the_lock_service_who_won() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    _grow(sim, 6)
    assert sim.converged() and len(sim.live()) == 6
    assert _ops(sim, ev.QueryStatus) == []
    assert sorted(who for who, _ in _ops(sim, ev.FetchServiceKeys)) == [f"m{i}" for i in range(6)]
    # every commit and Welcome went out with the receipt of its own epoch
    for kind in (TrackKind.COMMIT, TrackKind.WELCOME):
        published = sim.published(kind)
        assert len(published) == 5
        for _, p in published:
            assert dict(p.properties) == {0x3805: sim.lock.receipt(p.group)}
    # m0 learnt the winners of the 4 commits it did not make... from their receipts
    verified = {m.sender_id: m.stats.receipts_verified for m in sim.live()}
    assert sum(verified.values()) >= 5 + 4 + 3 + 2 + 1 - 5  # each commit, every non-committer


def test_without_receipts_the_same_growth_asks_for_every_winner() -> None:
    sim = Sim(receipts=False, sync_interval=None)
    _grow(sim, 6)
    assert sim.converged()
    assert len(_ops(sim, ev.QueryStatus)) >= 5  # at least one check per commit
    assert _ops(sim, ev.FetchServiceKeys) == []


def _rogue(sim: Sim) -> tuple[bytes, int]:
    """A commit m1 builds for the current epoch without the lock (it never won)."""
    m1 = sim.members["m1"]
    assert m1.group is not None
    return m1.group.build_commit([], ["m2"]).commit, m1.epoch


def _inject_rogue(sim: Sim, receipt: bytes | None) -> None:
    rogue, epoch = _rogue(sim)
    namespace = sim.tracks.namespace(TrackKind.COMMIT)
    sim.inject(namespace, b"m1", epoch, 0, rogue, exclude="m1", receipt=receipt)


def test_a_rogue_commit_with_a_replayed_receipt_is_not_applied() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    _grow(sim, 3)
    epoch = sim.members["m0"].epoch
    _inject_rogue(sim, sim.lock.receipt(epoch - 1))  # genuine, for the epoch before
    sim.run(sim.now + 2.0)
    assert sim.converged() and len(sim.live()) == 3
    assert {m.epoch for m in sim.live()} == {epoch}
    rejected = sim.members["m0"].stats.receipts_rejected + sim.members["m2"].stats.receipts_rejected
    assert rejected == 2
    # it fell back to asking the lock service, which named no winner: dropped
    assert {who for who, _ in _ops(sim, ev.QueryStatus)} >= {"m0", "m2"}


def test_a_rogue_commit_signed_by_another_key_is_not_applied() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    _grow(sim, 3)
    epoch = sim.members["m0"].epoch
    rogue, _ = _rogue(sim)
    forged = ReceiptSigner(new_signing_key()).sign("g", epoch, digest(rogue).hex(), "m1")
    _inject_rogue(sim, forged)
    sim.run(sim.now + 2.0)
    assert sim.converged() and len(sim.live()) == 3
    assert {m.epoch for m in sim.live()} == {epoch}
    assert sim.members["m0"].stats.receipts_rejected == 1


def test_a_rogue_commit_without_a_receipt_is_not_applied_and_the_group_goes_on() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    _grow(sim, 3)
    epoch = sim.members["m0"].epoch
    _inject_rogue(sim, None)
    sim.run(sim.now + 2.0)
    assert {m.epoch for m in sim.live()} == {epoch}
    assert sim.members["m0"].stats.receipts_missing == 1
    sim.add("late")
    sim.run(sim.now + 2.0)
    assert sim.converged() and len(sim.live()) == 4


def test_keys_that_fail_at_first_are_asked_again_and_then_used() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    sim.lock.keys_fail = 1
    sim.add("m0")
    sim.run(3.0)  # keys_retry is 2 s
    assert len(_ops(sim, ev.FetchServiceKeys)) == 2
    sim.add("m1")
    sim.add("m2", at=sim.now + 0.5)
    sim.run(sim.now + 2.5)
    assert sim.converged() and len(sim.live()) == 3
    assert _ops(sim, ev.QueryStatus) == []


def test_a_committer_whose_complete_answer_was_lost_publishes_the_records_receipt() -> None:
    sim = Sim(receipts=True, sync_interval=None)
    _grow(sim, 3)
    sim.lock_hook["m0"] = "lose-complete-answer"  # m0, rank 0, commits the next join
    epoch = sim.lock.epoch  # the epoch the commit adding m3 is sent in
    sim.add("m3")
    sim.run(sim.now + 3.0)
    assert sim.converged() and len(sim.live()) == 4
    assert sim.lock.winners[epoch].committer == "m0"
    # m0 settled its unsure complete with one status query, then published with the receipt
    asked = [(who, op.epoch) for who, op in _ops(sim, ev.QueryStatus)]
    assert asked == [("m0", epoch)]
    for kind in (TrackKind.COMMIT, TrackKind.WELCOME):
        [(_, p)] = [(n, a) for n, a in sim.published(kind) if a.group == epoch]
        assert dict(p.properties) == {0x3805: sim.lock.receipt(epoch)}
