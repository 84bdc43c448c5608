"""The group state machine (RFC 9420 §11, §12, §14; SelfRemove from the MLS extensions draft)
among in-memory members: lifecycle, commit staging, replay, removal, persistence."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moqmls.mls.errors import (
    CommitError,
    DecodeError,
    GroupStateError,
    MLSError,
    ProposalError,
    SecretReuseError,
    WelcomeError,
)
from moqmls.mls.group import (
    ApplicationMessage,
    CommitProcessed,
    Group,
    ProposalReceived,
    _check_new_keys_unique,
    _SavedGroup,
    message_epoch,
)
from moqmls.mls.key_package import make_key_package
from moqmls.mls.structs import MLSMessage, ParentNode, ProposalType, WireFormat


def _group_of(names: list[bytes], **options: object) -> list[Group]:
    """A group built by its first member adding the others one commit at a time."""
    _, creator_priv = make_key_package(names[0])
    first = Group.create(creator_priv, group_id=b"test-group", **options)  # type: ignore[arg-type]
    groups = [first]
    for name in names[1:]:
        kp, priv = make_key_package(name)
        pending = first.commit(adds=[kp])
        first.merge_pending(pending)
        for other in groups[1:]:
            other.process(pending.commit)
        assert pending.welcome is not None
        groups.append(Group.join_from_welcome(pending.welcome, priv))
    return groups


def _agree(groups: list[Group]) -> None:
    first = groups[0]
    for g in groups[1:]:
        assert g.epoch == first.epoch
        assert g.epoch_authenticator == first.epoch_authenticator
        assert g.export_secret(b"test", b"ctx", 32) == first.export_secret(b"test", b"ctx", 32)
        assert g.members == first.members


def test_create_add_and_join_agree() -> None:
    groups = _group_of([b"alice", b"bob", b"carol"])
    _agree(groups)
    assert groups[0].epoch == 2
    assert [m.identity for m in groups[0].members] == [b"alice", b"bob", b"carol"]
    assert [g.own_leaf_index for g in groups] == [0, 1, 2]


def test_application_message_decrypts_once() -> None:
    alice, bob = _group_of([b"alice", b"bob"])
    ciphertext = alice.protect(b"hello", b"aad")
    event = bob.process(ciphertext)
    assert event == ApplicationMessage(0, b"hello", b"aad")
    before = bob.to_bytes()
    with pytest.raises(SecretReuseError):
        bob.process(ciphertext)
    assert bob.to_bytes() == before


def test_commit_without_merge_changes_nothing() -> None:
    alice, bob = _group_of([b"alice", b"bob"], handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE)
    kp, _ = make_key_package(b"carol")
    before = alice.to_bytes()
    pending = alice.commit(adds=[kp])
    assert pending.welcome is not None
    assert alice.to_bytes() == before
    # The lost commit is dropped; a new one from the other member goes through.
    other = bob.commit(force_path=True)
    bob.merge_pending(other)
    alice.process(other.commit)
    _agree([alice, bob])
    with pytest.raises(GroupStateError):
        alice.merge_pending(pending)


def test_private_commit_not_merged_keeps_epoch_state() -> None:
    alice, bob = _group_of([b"alice", b"bob"])
    epoch, auth, members = alice.epoch, alice.epoch_authenticator, alice.members
    alice.commit(force_path=True)
    assert (alice.epoch, alice.epoch_authenticator, alice.members) == (epoch, auth, members)
    pending = alice.commit(force_path=True)
    alice.merge_pending(pending)
    bob.process(pending.commit)
    _agree([alice, bob])


def test_update_remove_and_self_remove() -> None:
    alice, bob, carol, dave = _group_of([b"alice", b"bob", b"carol", b"dave"])
    update = carol.propose_update()
    for g in (alice, bob, dave):
        event = g.process(update)
        assert isinstance(event, ProposalReceived) and event.proposal_type == ProposalType.UPDATE
    pending = alice.commit(removes=[1])
    alice.merge_pending(pending)
    events = [g.process(pending.commit) for g in (carol, dave)]
    assert all(isinstance(e, CommitProcessed) and e.updated == (2,) for e in events)
    removed = bob.process(pending.commit)
    assert isinstance(removed, CommitProcessed) and removed.removed_self and not bob.active
    _agree([alice, carol, dave])
    leave = dave.propose_self_remove()
    assert message_epoch(leave) == alice.epoch
    for g in (alice, carol):
        event = g.process(leave)
        assert isinstance(event, ProposalReceived) and event.target == 3
    pending = carol.commit()
    carol.merge_pending(pending)
    alice.process(pending.commit)
    gone = dave.process(pending.commit)
    assert isinstance(gone, CommitProcessed) and gone.removed_self
    _agree([alice, carol])
    assert [m.identity for m in alice.members] == [b"alice", b"carol"]
    with pytest.raises(GroupStateError):
        bob.process(alice.protect(b"after removal"))


def test_removed_member_cannot_read_later_epochs() -> None:
    alice, bob, carol = _group_of([b"alice", b"bob", b"carol"])
    pending = alice.commit(removes=[2])
    alice.merge_pending(pending)
    bob.process(pending.commit)
    # carol never saw her removal: she is a whole epoch behind and cannot catch up.
    before = carol.to_bytes()
    with pytest.raises(MLSError):
        carol.process(alice.protect(b"secret"))
    later = bob.commit(force_path=True)
    bob.merge_pending(later)
    with pytest.raises(MLSError):
        carol.process(later.commit)
    assert carol.to_bytes() == before


def test_own_proposal_cannot_be_committed_by_self_and_is_skipped() -> None:
    alice, bob = _group_of([b"alice", b"bob"])
    alice.propose_update()
    pending = alice.commit()  # our own Update is never included; a path replaces it
    alice.merge_pending(pending)
    event = bob.process(pending.commit)
    assert isinstance(event, CommitProcessed) and event.updated == ()
    _agree([alice, bob])


def test_remove_of_non_member_is_rejected() -> None:
    alice, _bob = _group_of([b"alice", b"bob"])
    with pytest.raises(ProposalError):
        alice.propose_remove(5)
    with pytest.raises(MLSError):
        alice.commit(removes=[5])


def test_welcome_without_tree_needs_it_separately() -> None:
    alice = _group_of([b"alice"], ratchet_tree_in_welcome=False)[0]
    kp, priv = make_key_package(b"bob")
    pending = alice.commit(adds=[kp])
    alice.merge_pending(pending)
    assert pending.welcome is not None
    with pytest.raises(WelcomeError):
        Group.join_from_welcome(pending.welcome, priv)
    bob = Group.join_from_welcome(pending.welcome, priv, alice.ratchet_tree())
    _agree([alice, bob])


def test_welcome_for_someone_else_is_rejected() -> None:
    alice = _group_of([b"alice"])[0]
    kp, _ = make_key_package(b"bob")
    _, other_priv = make_key_package(b"eve")
    pending = alice.commit(adds=[kp])
    assert pending.welcome is not None
    with pytest.raises(WelcomeError):
        Group.join_from_welcome(pending.welcome, other_priv)


def test_save_and_restore() -> None:
    alice, bob = _group_of([b"alice", b"bob"])
    bob.process(alice.protect(b"one"))
    bob.process(alice.propose_update())
    restored = Group.from_bytes(bob.to_bytes())
    assert restored.to_bytes() == bob.to_bytes()
    assert restored.process(alice.protect(b"two")) == ApplicationMessage(0, b"two", b"")
    pending = restored.commit()  # commits alice's cached Update by reference
    restored.merge_pending(pending)
    event = alice.process(pending.commit)
    assert isinstance(event, CommitProcessed) and event.updated == (0,)
    _agree([alice, restored])


def test_restore_rejects_garbage() -> None:
    alice = _group_of([b"alice"])[0]
    data = alice.to_bytes()
    for bad in (b"", data[:-1], data + b"\0", b"\xff" * 40):
        with pytest.raises(MLSError):
            Group.from_bytes(bad)


def test_restore_checks_the_tree_against_the_context() -> None:
    """A saved ratchet tree (or secret tree) that is not the saved epoch's is refused, and so is
    a saved value outside its range."""
    three = _group_of([b"alice", b"bob", b"carol"])[0]
    two = _group_of([b"dave", b"erin"])[0]
    saved = _SavedGroup.decode(three.to_bytes())
    other = _SavedGroup.decode(two.to_bytes())
    wrong_tree = dataclasses.replace(saved, ratchet_tree=other.ratchet_tree)
    wrong_secrets = dataclasses.replace(saved, secret_tree=other.secret_tree)
    no_wire_format = dataclasses.replace(saved, handshake_wire_format=0x7777)
    not_a_member = dataclasses.replace(saved, own_leaf=3)
    for bad in (wrong_tree, wrong_secrets, no_wire_format, not_a_member):
        with pytest.raises(DecodeError):
            Group.from_bytes(bad.encode())


def test_update_path_keys_must_be_new_to_the_tree() -> None:
    """§12.4.2: no UpdatePath key may already sit at another node (leaf or parent)."""
    alice, bob, _carol = _group_of(
        [b"alice", b"bob", b"carol"], handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE
    )
    pending = alice.commit(force_path=True)
    public = MLSMessage.decode(pending.commit).public_message
    assert public is not None and public.content.commit is not None
    path = public.content.commit.path
    assert path is not None
    bob.process(pending.commit)
    merged = bob._state.tree  # the tree with alice's path merged in
    _check_new_keys_unique(merged, path)
    carol_leaf = merged.leaf(2)
    assert carol_leaf is not None
    reused_by_leaf = merged.copy()
    reused_by_leaf.set_leaf(
        2, dataclasses.replace(carol_leaf, encryption_key=path.nodes[0].encryption_key)
    )
    reused_by_parent = merged.copy()  # node 5 is the parent of leaves 2 and 3, off alice's path
    reused_by_parent.set_node(5, ParentNode(path.leaf_node.encryption_key, b"", ()))
    for tree in (reused_by_leaf, reused_by_parent):
        with pytest.raises(CommitError):
            _check_new_keys_unique(tree, path)


def test_echoed_own_messages_are_rejected() -> None:
    alice, bob = _group_of([b"alice", b"bob"], handshake_wire_format=WireFormat.MLS_PUBLIC_MESSAGE)
    pending = alice.commit(force_path=True)
    with pytest.raises(GroupStateError):
        alice.process(pending.commit)
    proposal = alice.propose_remove(1)
    with pytest.raises(GroupStateError):
        alice.process(proposal)
    del bob


def test_handshake_private_message_is_processed_once() -> None:
    alice, bob, carol = _group_of([b"alice", b"bob", b"carol"])
    proposal = carol.propose_update()
    assert isinstance(bob.process(proposal), ProposalReceived)
    before = bob.to_bytes()
    with pytest.raises(SecretReuseError):
        bob.process(proposal)
    assert bob.to_bytes() == before
    del alice


def test_expired_key_package_is_refused_when_time_is_given() -> None:
    from moqmls.mls.structs import Lifetime

    alice = _group_of([b"alice"])[0]
    kp, _ = make_key_package(b"old", lifetime=Lifetime(1_000, 2_000))
    with pytest.raises(MLSError):
        alice.commit(adds=[kp], now=5_000)
    assert alice.commit(adds=[kp], now=1_500).welcome is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_mls_errors_only(data: bytes) -> None:
    group = _FUZZ_TARGET
    before = group.epoch_authenticator
    with pytest.raises(MLSError):
        group.process(data)
    with pytest.raises(MLSError):
        Group.join_from_welcome(data, _FUZZ_PRIV)
    assert group.epoch_authenticator == before


_FUZZ_TARGET = _group_of([b"fuzz-a", b"fuzz-b"])[1]
_FUZZ_PRIV = make_key_package(b"fuzz-c")[1]


def test_after_a_committed_reinit_the_group_sends_nothing() -> None:
    from moqmls.mls.proposals import CommittedProposal
    from moqmls.mls.structs import Proposal, ProtocolVersion, ReInit, Sender

    alice, bob = _group_of([b"alice", b"bob"])
    reinit = ReInit(b"next-group", ProtocolVersion.MLS10, 1, ())
    # The public API has no ReInit (this project never reinitialises); build one directly.
    item = CommittedProposal(Proposal.of(reinit), Sender.member(0), False)
    applied, kept = alice._apply_valid([item], 1, None)
    pending = alice._build_commit(
        alice._state, kept, applied, False, alice.handshake_wire_format, b""
    )
    alice.merge_pending(pending)
    assert isinstance(bob.process(pending.commit), CommitProcessed)
    _agree([alice, bob])
    for group in (alice, Group.from_bytes(bob.to_bytes())):
        with pytest.raises(GroupStateError):
            group.protect(b"no more")
        with pytest.raises(GroupStateError):
            group.commit()


def test_joiners_must_support_the_group_context_extensions() -> None:
    from moqmls.mls.key_package import default_capabilities
    from moqmls.mls.structs import Extension

    custom = Extension(0xF000, b"app")
    capable = dataclasses.replace(default_capabilities(1), extensions=(0xF000,))
    _, creator = make_key_package(b"alice", capabilities=capable)
    alice = Group.create(creator, group_id=b"ext", extensions=[custom])
    plain_kp, _ = make_key_package(b"bob")
    with pytest.raises(ProposalError):
        alice.commit(adds=[plain_kp])
    kp, priv = make_key_package(b"carol", capabilities=capable)
    pending = alice.commit(adds=[kp])
    alice.merge_pending(pending)
    assert pending.welcome is not None
    carol = Group.join_from_welcome(pending.welcome, priv)
    assert carol.group_context.extensions == (custom,)
    _agree([alice, carol])


_SAVED = _FUZZ_TARGET.to_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SAVED) - 1), st.integers(0, 255)), max_size=3))
def test_mutated_saved_state_restores_or_raises_mls_errors_only(
    flips: list[tuple[int, int]],
) -> None:
    """A damaged saved state is refused with an MLSError, or restores into a group whose
    operations fail (if at all) with MLSErrors too."""
    data = bytearray(_SAVED)
    for position, value in flips:
        data[position] = value
    try:
        group = Group.from_bytes(bytes(data))
    except MLSError:
        return
    for operation in (
        lambda: group.protect(b"m"),
        lambda: group.commit(),
        lambda: group.export_secret(b"label", b"ctx", 32),
        lambda: group.to_bytes(),
    ):
        with contextlib.suppress(MLSError):
            operation()
