"""Proposal list validation and application (RFC 9420 §12.2-§12.3, SelfRemove) checked rule by
rule on the tree of a real three-member group."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from moqmls.mls.errors import ProposalError
from moqmls.mls.group import Group
from moqmls.mls.key_package import KeyPackagePrivate, default_capabilities, make_key_package
from moqmls.mls.proposals import AppliedProposals, CommittedProposal, apply_proposals
from moqmls.mls.structs import (
    Add,
    Capabilities,
    Extension,
    ExtensionType,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalType,
    ProtocolVersion,
    ReInit,
    Remove,
    RequiredCapabilities,
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


# -- support of custom proposal types, extensions and required capabilities (§12.2, §12.1.7)

_CUSTOM_EXTENSION = 0xFF00


def _caps(*, self_remove: bool, extension: bool) -> Capabilities:
    base = default_capabilities(0x0001)
    return dataclasses.replace(
        base,
        proposals=(ProposalType.SELF_REMOVE,) if self_remove else (),
        extensions=(_CUSTOM_EXTENSION,) if extension else (),
    )


@pytest.fixture(scope="module")
def mixed() -> Group:
    """alice and bob support SelfRemove and extension 0xFF00; carol (leaf 2) supports neither."""
    full = _caps(self_remove=True, extension=True)
    alice = Group.create(make_key_package(b"alice", capabilities=full)[1], group_id=b"caps")
    for name, caps in ((b"bob", full), (b"carol", _caps(self_remove=False, extension=False))):
        pending = alice.commit(adds=[make_key_package(name, capabilities=caps)[0]])
        alice.merge_pending(pending)
    return alice


def _lacking_add(name: bytes) -> Add:
    caps = _caps(self_remove=False, extension=False)
    return Add(make_key_package(name, capabilities=caps)[1].key_package)


def _required(extensions: tuple[int, ...] = (), proposals: tuple[int, ...] = ()) -> Extension:
    data = RequiredCapabilities(extensions, proposals, ()).encode()
    return Extension(ExtensionType.REQUIRED_CAPABILITIES, data)


@pytest.mark.parametrize(
    ("items", "lacking"),
    [
        # A custom proposal type needs every staying member's support...
        pytest.param(lambda: [_by(1, SelfRemove())], 2, id="self-remove-carol-stays"),
        # ...but not of the members the commit removes or adds.
        pytest.param(
            lambda: [_by(1, SelfRemove()), _by(0, Remove(2), False)], None, id="carol-removed"
        ),
        pytest.param(
            lambda: [_by(1, SelfRemove()), _by(0, Remove(2), False), _by(0, _lacking_add(b"d"))],
            None,
            id="lacking-newcomer",
        ),
        pytest.param(
            lambda: [_by(0, GroupContextExtensions((Extension(_CUSTOM_EXTENSION, b""),)), False)],
            2,
            id="extension-carol-lacks",
        ),
        pytest.param(
            lambda: [
                _by(0, GroupContextExtensions((Extension(_CUSTOM_EXTENSION, b""),)), False),
                _by(0, Remove(2), False),
            ],
            None,
            id="extension-all-support",
        ),
        pytest.param(
            lambda: [_by(0, GroupContextExtensions((_required(proposals=(0x000A,)),)), False)],
            2,
            id="required-proposal-carol-lacks",
        ),
        pytest.param(
            lambda: [
                _by(
                    0, GroupContextExtensions((_required(extensions=(_CUSTOM_EXTENSION,)),)), False
                ),
                _by(0, Remove(2), False),
            ],
            None,
            id="required-extension-all-support",
        ),
    ],
)
def test_support_is_checked_against_every_staying_member(
    mixed: Group, items: Callable[[], list[CommittedProposal]], lacking: int | None
) -> None:
    if lacking is None:
        _apply(mixed, items())
    else:
        with pytest.raises(ProposalError, match=f"member {lacking} "):
            _apply(mixed, items())
