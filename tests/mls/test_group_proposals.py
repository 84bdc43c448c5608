"""Proposal list validation and application (RFC 9420 §12.2-§12.3, SelfRemove) checked rule by
rule on the tree of a real three-member group."""

from __future__ import annotations

import pytest

from moqmls.mls.errors import ProposalError
from moqmls.mls.group import Group
from moqmls.mls.key_package import KeyPackagePrivate, make_key_package
from moqmls.mls.proposals import AppliedProposals, CommittedProposal, apply_proposals
from moqmls.mls.structs import (
    Add,
    Extension,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProtocolVersion,
    ReInit,
    Remove,
    SelfRemove,
    Sender,
    Update,
)


@pytest.fixture(scope="module")
def trio() -> tuple[Group, list[KeyPackagePrivate]]:
    privs = [make_key_package(name)[1] for name in (b"alice", b"bob", b"carol")]
    alice = Group.create(privs[0], group_id=b"rules")
    for priv in privs[1:]:
        pending = alice.commit(adds=[_kp_bytes(priv)])
        alice.merge_pending(pending)
    return alice, privs


def _kp_bytes(priv: KeyPackagePrivate) -> bytes:
    from moqmls.mls.structs import MLSMessage

    return MLSMessage.of(priv.key_package).encode()


def _apply(group: Group, items: list[CommittedProposal], committer: int = 0) -> AppliedProposals:
    state = group._state
    return apply_proposals(state.suite, state.context, state.tree, items, committer)


def _by(leaf: int, body: object, by_reference: bool = True) -> CommittedProposal:
    return CommittedProposal(Proposal.of(body), Sender.member(leaf), by_reference)  # type: ignore[arg-type]


def _fresh_add(name: bytes) -> Add:
    return Add(make_key_package(name)[1].key_package)


def test_adds_fill_the_leftmost_blank_after_removes(trio: tuple[Group, list[KeyPackagePrivate]]):
    alice, _ = trio
    before = alice._state.tree.tree_hash()
    applied = _apply(alice, [_by(0, _fresh_add(b"dave"), False), _by(0, Remove(1), False)])
    assert applied.removed == [1]
    assert [i for i, _ in applied.added] == [1]
    assert applied.path_required  # a Remove needs a path
    assert alice._state.tree.tree_hash() == before  # the group's own tree is untouched


def test_add_only_commit_needs_no_path(trio: tuple[Group, list[KeyPackagePrivate]]) -> None:
    alice, _ = trio
    applied = _apply(alice, [_by(0, _fresh_add(b"erin"), False)])
    assert applied.path_required is False
    assert [i for i, _ in applied.added] == [3]


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(lambda p: [_by(0, Remove(0), False)], id="remove-committer"),
        pytest.param(lambda p: [_by(1, Remove(2)), _by(0, Remove(2), False)], id="double-remove"),
        pytest.param(lambda p: [_by(0, SelfRemove())], id="committer-self-remove"),
        pytest.param(lambda p: [_by(1, SelfRemove(), False)], id="self-remove-by-value"),
        pytest.param(lambda p: [_by(1, SelfRemove()), _by(0, Remove(1), False)], id="self+remove"),
        pytest.param(lambda p: [_by(0, Update(p[0].key_package.leaf_node))], id="committer-update"),
        pytest.param(lambda p: [_by(0, Add(p[1].key_package), False)], id="add-existing"),
        pytest.param(
            lambda p: [_by(0, _fresh_add(b"x"), False), _by(0, ExternalInit(b"k"), False)],
            id="external-init",
        ),
        pytest.param(
            lambda p: [
                _by(0, GroupContextExtensions(()), False),
                _by(0, GroupContextExtensions(()), False),
            ],
            id="two-gce",
        ),
        pytest.param(
            lambda p: [
                _by(0, ReInit(b"new", ProtocolVersion.MLS10, 1, ()), False),
                _by(0, Remove(2), False),
            ],
            id="reinit-not-alone",
        ),
        pytest.param(
            lambda p: [_by(0, PreSharedKey(PreSharedKeyID.external(b"id", b"short")), False)],
            id="psk-nonce-length",
        ),
        pytest.param(lambda p: [_by(0, Remove(7), False)], id="remove-absent-leaf"),
        pytest.param(
            lambda p: [
                _by(0, GroupContextExtensions((Extension(0xFF00, b""),)), False),
            ],
            id="unsupported-extension",
        ),
    ],
)
def test_invalid_lists_are_rejected(
    trio: tuple[Group, list[KeyPackagePrivate]], items: object
) -> None:
    alice, privs = trio
    with pytest.raises(ProposalError):
        _apply(alice, items(privs))  # type: ignore[operator]


def test_re_adding_a_removed_client_in_the_same_commit_is_valid(
    trio: tuple[Group, list[KeyPackagePrivate]],
) -> None:
    alice, privs = trio
    again = make_key_package(b"bob", signature_priv=privs[1].signature_priv)[1]
    applied = _apply(alice, [_by(0, Add(again.key_package), False), _by(0, Remove(1), False)])
    assert applied.removed == [1] and [i for i, _ in applied.added] == [1]
