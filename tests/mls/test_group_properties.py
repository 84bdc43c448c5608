"""Property tests of the group state machine (RFC 9420 §12, §14; SelfRemove): random sequences
of adds, removes, updates and self-removes among in-memory members.

After every step all members share the epoch, the epoch authenticator, the exporter output and
the member list, and application data reaches all of them; a removed member cannot process
anything of a later epoch; a Commit that is built but not merged leaves its committer
unchanged; and a mutated handshake message is rejected with an `MLSError` without changing the
receiver's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moqmls.mls.errors import MLSError
from moqmls.mls.group import ApplicationMessage, CommitProcessed, Group, PendingCommit
from moqmls.mls.key_package import make_key_package
from moqmls.mls.structs import WireFormat

OPS = ("add", "remove", "update", "self_remove", "proposed_update")


@dataclass
class World:
    """The live members (by leaf index) and the members removed so far with their states."""

    wire_format: WireFormat
    members: dict[int, Group] = field(default_factory=dict)
    removed: list[Group] = field(default_factory=list)
    joined: int = 0

    def add_client(self, committer: Group) -> PendingCommit:
        self.joined += 1
        kp, priv = make_key_package(b"client-%d" % self.joined)
        pending = committer.commit(adds=[kp])
        self.deliver(committer, pending)
        assert pending.welcome is not None
        joiner = Group.join_from_welcome(
            pending.welcome, priv, handshake_wire_format=self.wire_format
        )
        self.members[joiner.own_leaf_index] = joiner
        return pending

    def deliver(self, committer: Group, pending: PendingCommit) -> None:
        """Publish a commit: everyone else processes it, the committer merges it."""
        old_members = dict(self.members)
        committer.merge_pending(pending)
        for leaf, member in old_members.items():
            if member is committer:
                continue
            event = member.process(pending.commit)
            assert isinstance(event, CommitProcessed)
            if event.removed_self:
                assert not member.active
                self.removed.append(member)
                del self.members[leaf]
        for stale in self.removed:
            with pytest.raises(MLSError):
                stale.process(pending.commit)

    def check_agreement(self) -> None:
        groups = list(self.members.values())
        first = groups[0]
        for g in groups[1:]:
            assert g.epoch == first.epoch
            assert g.epoch_authenticator == first.epoch_authenticator
            assert g.export_secret(b"prop", b"ctx", 16) == first.export_secret(b"prop", b"ctx", 16)
            assert g.members == first.members
        assert sorted(self.members) == [m.leaf_index for m in first.members]
        # Application data from the newest leaf reaches every other member, once.
        sender = self.members[max(self.members)]
        message = sender.protect(b"after epoch %d" % sender.epoch)
        for g in groups:
            if g is not sender:
                event = g.process(message)
                assert event == ApplicationMessage(sender.own_leaf_index, message_text(sender), b"")
        for stale in self.removed:
            with pytest.raises(MLSError):
                stale.process(message)


def message_text(sender: Group) -> bytes:
    return b"after epoch %d" % sender.epoch


def _snapshot(group: Group) -> tuple[object, ...]:
    return (
        group.epoch,
        group.epoch_authenticator,
        group.export_secret(b"snap", b"", 16),
        group.members,
        group.tree_hash,
        group.pending_proposals,
    )


def _mutate(data: bytes, position: int, flip: int) -> bytes:
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ flip]) + data[i + 1 :]


step = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, 1000),  # who acts
    st.integers(0, 1000),  # whom it targets / who commits
    st.integers(0, 1 << 16),  # where to mutate the commit
    st.integers(1, 255),  # how to mutate it
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    wire_format=st.sampled_from([WireFormat.MLS_PRIVATE_MESSAGE, WireFormat.MLS_PUBLIC_MESSAGE]),
    steps=st.lists(step, min_size=1, max_size=7),
)
def test_random_operations_keep_members_in_sync(
    wire_format: WireFormat, steps: list[tuple[str, int, int, int, int]]
) -> None:
    world = World(wire_format)
    _, priv = make_key_package(b"creator")
    creator = Group.create(priv, group_id=b"prop-group", handshake_wire_format=wire_format)
    world.members[0] = creator
    world.add_client(creator)
    for op, actor_pick, target_pick, position, flip in steps:
        leaves = sorted(world.members)
        actor = world.members[leaves[actor_pick % len(leaves)]]
        others = [leaf for leaf in leaves if leaf != actor.own_leaf_index]
        if op != "add" and not others:
            op = "add"
        # A commit built and dropped leaves the committer as it was (§14).
        before = _snapshot(actor)
        actor.commit(force_path=True)
        assert _snapshot(actor) == before
        if op == "add" or len(world.members) < 2:
            pending = world.add_client(actor)
            _check_mutation_rejected(world, actor, pending, position, flip)
            world.check_agreement()
            continue
        target = world.members[others[target_pick % len(others)]]
        if op == "remove":
            pending = actor.commit(removes=[target.own_leaf_index])
        elif op == "update":
            pending = actor.commit(force_path=True)
        else:
            proposal = (
                target.propose_self_remove() if op == "self_remove" else target.propose_update()
            )
            for member in world.members.values():
                if member is not target:
                    member.process(proposal)
            pending = actor.commit()
        _check_mutation_rejected(world, actor, pending, position, flip)
        world.deliver(actor, pending)
        world.check_agreement()


def _check_mutation_rejected(
    world: World, committer: Group, pending: PendingCommit, position: int, flip: int
) -> None:
    receivers = [g for g in world.members.values() if g is not committer]
    if not receivers or pending.commit is None:
        return
    receiver = receivers[position % len(receivers)]
    before = receiver.to_bytes()
    with pytest.raises(MLSError):
        receiver.process(_mutate(pending.commit, position, flip))
    assert receiver.to_bytes() == before


@settings(max_examples=40, deadline=None)
@given(position=st.integers(0, 1 << 16), flip=st.integers(1, 255), public=st.booleans())
def test_any_mutated_commit_is_rejected_without_state_change(
    position: int, flip: int, public: bool
) -> None:
    wire_format = WireFormat.MLS_PUBLIC_MESSAGE if public else WireFormat.MLS_PRIVATE_MESSAGE
    alice, bob, carol = _three(wire_format)
    kp, _ = make_key_package(b"dave")
    pending = alice.commit(adds=[kp], removes=[2], force_path=True)
    before = bob.to_bytes()
    with pytest.raises(MLSError):
        bob.process(_mutate(pending.commit, position, flip))
    assert bob.to_bytes() == before
    alice.merge_pending(pending)
    bob.process(pending.commit)
    assert bob.epoch_authenticator == alice.epoch_authenticator
    del carol


_CACHE: dict[WireFormat, bytes] = {}


def _three(wire_format: WireFormat) -> list[Group]:
    """Alice, Bob, Carol in one group (built once per wire format, restored from bytes)."""
    if wire_format not in _CACHE:
        _, priv = make_key_package(b"alice")
        alice = Group.create(priv, handshake_wire_format=wire_format)
        world = World(wire_format, {0: alice})
        world.add_client(alice)
        world.add_client(alice)
        _CACHE[wire_format] = b"".join(
            len(s).to_bytes(4, "big") + s for s in (g.to_bytes() for g in world.members.values())
        )
    data, groups = _CACHE[wire_format], []
    while data:
        n = int.from_bytes(data[:4], "big")
        groups.append(Group.from_bytes(data[4 : 4 + n]))
        data = data[4 + n :]
    return groups
