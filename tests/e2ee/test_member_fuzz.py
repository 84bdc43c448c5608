"""Any bytes on any track leave a member's real MLS state untouched (draft-jennings-moq-e2ee-mls).

The sans-I/O member over the real MLS adapter, two members in one epoch; hypothesis feeds
arbitrary payloads, MoQT groups and object ids on every track, as any relay client could.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqmls.e2ee import events as ev
from moqmls.e2ee.member import Member, MemberConfig, Phase
from moqmls.e2ee.mls_adapter import MLSIdentity
from moqmls.e2ee.tracks import GroupTracks, TrackKind

TRACKS = GroupTracks("fuzz")


def _answer(member: Member, result: ev.LockResult, now: float) -> list[ev.LockCall]:
    calls = [a for a in member.pop_actions() if isinstance(a, ev.LockCall)]
    for call in calls:
        member.handle(ev.LockAnswer(call.op_id, result), now)
    return calls


def _two_members() -> tuple[Member, Member]:
    config = MemberConfig(verify_winners=False)
    a = Member(MLSIdentity("alice"), TRACKS, config, [TRACKS.media_namespace(b"v")])
    a.start(0.0)
    _answer(a, ev.Create("t0"), 0.0)  # create_or_join -> Create
    _answer(a, ev.Committed(0), 0.0)  # complete -> the group exists at epoch 0
    assert a.phase is Phase.MEMBER
    b_identity = MLSIdentity("bob")
    a.handle(ev.ObjectReceived(TrackKind.KEYPACKAGE, "bob", 0, 0, b_identity.key_package()), 0.1)
    a.tick(1.0)
    _answer(a, ev.Acquired("t1"), 1.0)  # lock(0)
    publishes: list[ev.Publish] = []
    for call in [x for x in a.pop_actions() if isinstance(x, ev.LockCall)]:
        a.handle(ev.LockAnswer(call.op_id, ev.Committed(1)), 1.0)
        publishes = [x for x in a.pop_actions() if isinstance(x, ev.Publish)]
    welcome = next(p for p in publishes if p.namespace == TRACKS.namespace(TrackKind.WELCOME))
    b = Member(b_identity, TRACKS, config, [TRACKS.media_namespace(b"v")])
    b.start(0.0)
    _answer(b, ev.Join(0), 0.0)
    b.handle(ev.ObjectReceived(TrackKind.WELCOME, "alice", 0, 0, welcome.payload), 1.1)
    assert b.is_member and b.epoch == a.epoch == 1
    return a, b


ALICE, BOB = _two_members()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(list(TrackKind)),
    sender=st.sampled_from(["alice", "bob", "mallory", ""]),
    group=st.integers(min_value=0, max_value=2**62),
    obj=st.integers(min_value=0, max_value=2**62),
    payload=st.binary(max_size=300),
)
def test_arbitrary_objects_change_nothing(
    kind: TrackKind, sender: str, group: int, obj: int, payload: bytes
) -> None:
    for member in (ALICE, BOB):
        assert member.group is not None
        before = (member.epoch, member.group.epoch_authenticator(), member.members())
        member.handle(ev.ObjectReceived(kind, sender, group, obj, payload), 2.0)
        member.pop_actions()
        assert member.is_member
        assert (member.epoch, member.group.epoch_authenticator(), member.members()) == before
