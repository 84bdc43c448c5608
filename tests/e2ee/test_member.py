"""Decisions of the sans-I/O member (draft-jennings-moq-e2ee-mls; DESIGN.md), on fakes."""

from __future__ import annotations

import json

from moqmls.e2ee import events as ev
from moqmls.e2ee.member import Phase
from moqmls.e2ee.tracks import BASE_KEY_LABEL, TrackKind, serialize_namespace
from tests.e2ee.fakes import Sim


def _commits(sim: Sim) -> list[dict[str, object]]:
    return [json.loads(p.payload) for _, p in sim.published(TrackKind.COMMIT)]


def _grow(sim: Sim, n: int, spacing: float = 0.5) -> None:
    for i in range(n):
        sim.add(f"m{i}", at=i * spacing)
    sim.run(n * spacing + 2.0)


def test_first_member_creates_the_group_at_epoch_0() -> None:
    sim = Sim()
    a = sim.add("a")
    sim.run(0.5)
    assert a.phase is Phase.MEMBER and a.epoch == 0
    ops = [op for who, op in sim.lock.ops]
    assert isinstance(ops[0], ev.CreateOrJoin) and isinstance(ops[1], ev.Complete)
    # bootstrapping order: subscriptions, then the KeyPackage (object 0), then create_or_join
    kinds = [type(x).__name__ for _, x in sim.log[:6]]
    assert kinds == ["Subscribe"] * 4 + ["Publish", "LockCall"]
    key = sim.keys("a")[0]
    assert a.group is not None
    expected = a.group.export(BASE_KEY_LABEL, serialize_namespace(sim.media), 32)
    assert key == expected


def test_eight_members_join_one_by_one() -> None:
    sim = Sim()
    _grow(sim, 8)
    assert sim.converged()
    live = sim.live()
    assert len(live) == 8 and {m.epoch for m in live} == {7}
    # every member derives the same media key for the final epoch, and a different one per epoch
    finals = {sim.keys(m.sender_id)[7] for m in live}
    assert len(finals) == 1
    assert len(set(sim.keys("m0").values())) == 8
    # every commit was published once, on the committer's track with MoQT group = epoch
    commits = sim.published(TrackKind.COMMIT)
    assert [p.group for _, p in commits] == list(range(7))
    assert all(p.track == name.encode() and p.object == 0 for name, p in commits)
    # the lock's history is linear and matches the published commits
    assert [sim.lock.winners[e].commit_hash for e in range(7)] == [
        __import__("hashlib").sha256(p.payload).digest() for _, p in commits
    ]


def test_concurrent_joins_are_batched_without_fork() -> None:
    sim = Sim()
    sim.add("first")
    sim.run(0.5)
    for i in range(16):
        sim.add(f"j{i}", at=1.0)
    sim.run(5.0)
    assert sim.converged() and len(sim.live()) == 17
    epochs = sim.live()[0].epoch
    assert epochs < 16  # batching: fewer commits than joiners
    seen: dict[int, set[bytes]] = {}
    for m in sim.live():
        for e in sim.entered(m.sender_id):
            if e.commit_hash:
                seen.setdefault(e.epoch - 1, set()).add(e.commit_hash)
    assert seen and all(hashes == {sim.lock.winners[e].commit_hash} for e, hashes in seen.items())


def test_four_members_race_to_add_one_joiner_exactly_one_commit() -> None:
    sim = Sim(rank_stagger=0.0)  # no deferral: all four go for the lock at once
    _grow(sim, 4)
    before = len(_commits(sim))
    sim.add("late", at=sim.now + 0.1)
    sim.run(sim.now + 2.0)
    after = _commits(sim)[before:]
    assert len(after) == 1
    assert [a["id"] for a in after[0]["adds"]] == ["late"]  # type: ignore[index]
    assert sim.converged() and len(sim.live()) == 5
    assert sum(m.stats.lock_conflicts for m in sim.members.values()) >= 1


def test_lock_holder_crashing_before_complete_is_overtaken_after_the_lease() -> None:
    sim = Sim(rank_stagger=0.05)
    _grow(sim, 3)
    sim.lock_hook["m0"] = "crash-after-acquire"  # m0 has rank 0: it takes the lock first
    sim.add("late", at=sim.now + 0.1)
    sim.run(sim.now + 4.0)
    assert "m0" in sim.crashed
    live = {m.sender_id for m in sim.live()}
    assert "late" in live and sim.lock.epoch >= 3
    auths = {m.group.epoch_authenticator() for m in sim.live() if m.group}
    assert len(auths) == 1


def test_committer_crashing_after_complete_strands_nobody() -> None:
    sim = Sim(liveness_timeout=None)
    _grow(sim, 3)
    sim.lock_hook["m0"] = "crash-after-complete"
    sim.add("late", at=sim.now + 0.1)
    sim.run(sim.now + 6.0)
    assert "m0" in sim.crashed
    late = sim.members["late"]
    assert late.is_member and late.epoch == sim.lock.epoch
    others = [sim.members["m1"], sim.members["m2"]]
    assert all(m.epoch == 3 for m in others)
    assert all(m.stats.recoveries_lock == 1 for m in others)  # nothing was ever published
    auths = {m.group.epoch_authenticator() for m in [*others, late] if m.group}
    assert len(auths) == 1


def test_disconnected_member_catches_up_by_fetch() -> None:
    sim = Sim(liveness_timeout=None)
    _grow(sim, 3)
    sim.partitioned.add("m2")
    for i in range(3):
        sim.add(f"x{i}", at=sim.now + 0.3 * (i + 1))
    sim.run(sim.now + 2.0)
    assert sim.members["m2"].epoch == 2
    sim.partitioned.discard("m2")
    sim.call("m2", lambda m, now: m.reconnected(now))
    sim.run(sim.now + 3.0)
    assert sim.converged()
    m2 = sim.members["m2"]
    assert m2.epoch == 5 and m2.stats.recoveries_fetch == 3


def test_leave_removes_the_member_and_it_gets_no_later_key() -> None:
    sim = Sim()
    _grow(sim, 4)
    sim.call("m2", lambda m, now: m.leave(now))
    sim.run(sim.now + 2.0)
    leaver = sim.members["m2"]
    assert leaver.phase is Phase.ENDED
    ended = [a for n, a in sim.log if n == "m2" and isinstance(a, ev.Ended)]
    assert [e.reason for e in ended] == ["left"]
    assert sim.converged() and {m.sender_id for m in sim.live()} == {"m0", "m1", "m3"}
    final = sim.live()[0].epoch
    assert max(sim.keys("m2")) < final
    proposals = sim.published(TrackKind.PROPOSAL)
    assert proposals and proposals[0][0] == "m2"


def test_vanished_member_is_removed_after_the_liveness_timeout() -> None:
    sim = Sim(heartbeat_interval=0.5, liveness_timeout=2.0)
    _grow(sim, 4)
    sim.crash("m3")
    sim.run(sim.now + 4.0)
    assert sim.converged() and {m.sender_id for m in sim.live()} == {"m0", "m1", "m2"}


def test_heartbeats_alone_do_not_trigger_commits() -> None:
    sim = Sim(heartbeat_interval=0.2, liveness_timeout=2.0)
    _grow(sim, 3)
    epoch = sim.lock.epoch
    sim.run(sim.now + 3.0)
    assert sim.lock.epoch == epoch


def test_application_remove_by_sender_id() -> None:
    sim = Sim()
    _grow(sim, 3)
    sim.call("m1", lambda m, now: m.remove("m2", now))
    sim.run(sim.now + 2.0)
    ended = [a.reason for n, a in sim.log if n == "m2" and isinstance(a, ev.Ended)]
    assert ended == ["removed"]
    assert sim.converged() and {m.sender_id for m in sim.live()} == {"m0", "m1"}
    # its later heartbeats (same KeyPackage) do not bring it back
    sim.run(sim.now + 5.0)
    assert {m.sender_id for m in sim.live()} == {"m0", "m1"}


def test_forged_and_garbage_objects_change_nothing() -> None:
    sim = Sim()
    _grow(sim, 3)
    m0 = sim.members["m0"]
    auth = m0.group.epoch_authenticator() if m0.group else b""
    epoch = m0.epoch
    t = sim.tracks
    garbage = b"\x00garbage"
    sim.inject(t.namespace(TrackKind.KEYPACKAGE), b"evil", 0, 0, garbage)
    kp_of_other = json.dumps({"id": "someone", "sig": "00"}).encode()
    sim.inject(t.namespace(TrackKind.KEYPACKAGE), b"evil", 0, 1, kp_of_other)
    sim.inject(t.namespace(TrackKind.COMMIT), b"m1", epoch, 0, garbage)
    sim.inject(t.namespace(TrackKind.COMMIT), b"evil", epoch + 1, 0, garbage)
    sim.inject(t.namespace(TrackKind.WELCOME), b"m1", epoch, 0, garbage)
    sim.inject(t.namespace(TrackKind.PROPOSAL), b"m1", epoch, 0, garbage)
    forged_leave = json.dumps({"leave": "m1", "epoch": epoch, "tag": "00"}).encode()
    sim.inject(t.namespace(TrackKind.PROPOSAL), b"m1", epoch, 1, forged_leave)
    # a replay of an old, genuine commit
    old = sim.published(TrackKind.COMMIT)[0][1]
    sim.inject(old.namespace, old.track, old.group, 0, old.payload)
    sim.run(sim.now + 3.0)
    assert m0.epoch == epoch and m0.group is not None
    assert m0.group.epoch_authenticator() == auth
    assert sim.converged() and len(sim.live()) == 3
    assert all(m.stats.dropped >= 3 for m in sim.live())
    assert all(m.stats.rejoins == 0 for m in sim.live())


def test_non_winning_commit_is_dropped() -> None:
    sim = Sim()
    _grow(sim, 3)
    m1 = sim.members["m1"]
    assert m1.group is not None
    # a member-made commit for the current epoch that never went through the lock
    rogue = m1.group.build_commit([], ["m2"]).commit
    sim.inject(sim.tracks.namespace(TrackKind.COMMIT), b"m1", m1.epoch, 0, rogue, exclude="m1")
    sim.run(sim.now + 2.0)
    assert sim.converged() and len(sim.live()) == 3


def test_member_that_lost_its_state_rejoins_in_one_commit() -> None:
    sim = Sim()
    _grow(sim, 3)

    def lose_state(m: object, now: float) -> None:
        from moqmls.e2ee.member import Member

        assert isinstance(m, Member)
        m._rejoin(now, "test")

    sim.call("m2", lose_state)
    sim.run(sim.now + 3.0)
    assert sim.converged() and len(sim.live()) == 3
    last = _commits(sim)[-1]
    assert last["removes"] == ["m2"] and [a["id"] for a in last["adds"]] == ["m2"]  # type: ignore[index]


def test_welcome_for_someone_else_is_ignored_cheaply() -> None:
    sim = Sim()
    _grow(sim, 2)
    sim.add("j1", at=sim.now + 0.1)
    sim.add("j2", at=sim.now + 0.1)
    sim.run(sim.now + 3.0)
    assert sim.converged() and len(sim.live()) == 4
    assert all(m.stats.dropped == 0 for m in sim.members.values())


def test_bad_keypackage_for_mls_is_dropped_and_others_still_join() -> None:
    sim = Sim()
    _grow(sim, 2)
    bad = sim.add("bad", at=sim.now + 0.1)
    assert hasattr(bad.identity, "bad_kp")
    bad.identity.bad_kp = True
    sim.add("good", at=sim.now + 0.5)
    sim.run(sim.now + 3.0)
    assert {m.sender_id for m in sim.live()} == {"m0", "m1", "good"}


def test_leave_request_from_an_epoch_not_reached_yet_is_kept() -> None:
    sim = Sim()
    _grow(sim, 3)
    m0, m2 = sim.members["m0"], sim.members["m2"]
    assert m2.group is not None and m0.group is not None
    # m2 is one epoch ahead of m0 when m0 receives m2's leave request: simulate by asking
    # m2 to leave and delivering its request to m0 before m0 processes anything else
    before = m0.stats.dropped
    ahead = json.dumps(
        {"leave": "m2", "epoch": m0.epoch + 1, "tag": "not checked until that epoch"}
    ).encode()
    m0.handle(ev.ObjectReceived(TrackKind.PROPOSAL, "m2", m0.epoch + 1, 0, ahead), sim.now)
    assert m0.stats.dropped == before  # kept, not dropped
    assert m0._proposals and max(m0._proposals) == m0.epoch + 1


def test_an_answer_about_a_past_epoch_does_not_drop_buffered_commits() -> None:
    sim = Sim()
    _grow(sim, 3)
    m1 = sim.members["m1"]
    epoch = m1.epoch
    # a commit for the next epoch is buffered, then a lock answer about the *previous* epoch
    # (whose 'epoch' is only a lower bound) arrives: it must not count as "nothing won"
    sim.call("m0", lambda m, now: m.remove("m2", now))
    sim.run(sim.now + 0.02)  # m0 has committed; m1 has the commit buffered or applied
    stale = ev.Status(True, epoch, {}, epoch - 1, None, None, epoch_is_current=False)
    op = ev.QueryStatus(epoch - 1, True)
    m1._ops[999] = op
    m1.handle(ev.LockAnswer(999, stale), sim.now)
    sim.run(sim.now + 2.0)
    assert m1.stats.dropped == 0
    assert sim.converged() and {m.sender_id for m in sim.live()} == {"m0", "m1"}
