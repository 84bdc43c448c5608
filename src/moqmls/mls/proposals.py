"""Proposal list validation and application (RFC 9420 §12.1-§12.3; SelfRemove from the MLS
extensions draft).

`apply_proposals` takes the proposals a Commit covers (already resolved from references, each
with its sender), checks every rule of §12.2 for a regular commit, and applies them to a *copy*
of the ratchet tree in the order of §12.3: GroupContextExtensions, Updates, SelfRemoves (the
extensions draft puts them after Updates and before Removes), Removes, Adds, then PSKs. The
caller's tree is never modified, so a committer can build a Commit without changing state and a
receiver can drop a bad Commit without undoing anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

from moqmls.mls.crypto import CipherSuite
from moqmls.mls.errors import KeyPackageError, LeafNodeValidationError, ProposalError, TreeError
from moqmls.mls.key_package import verify_key_package
from moqmls.mls.leaf_validation import check_own_fields, validate_leaf_node, verify_leaf_signature
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.structs import (
    Add,
    Extension,
    ExtensionType,
    GroupContext,
    GroupContextExtensions,
    KeyPackage,
    LeafNode,
    LeafNodeSource,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalType,
    PSKType,
    ReInit,
    Remove,
    RequiredCapabilities,
    ResumptionPSKUsage,
    Sender,
    SenderType,
    Update,
)

# §17.4 "Path Required" column (SelfRemove: Y); unknown types are treated as requiring a path.
PATH_NOT_REQUIRED = frozenset({ProposalType.ADD, ProposalType.PSK, ProposalType.REINIT})
DEFAULT_PROPOSAL_TYPES = frozenset(
    {
        ProposalType.ADD,
        ProposalType.UPDATE,
        ProposalType.REMOVE,
        ProposalType.PSK,
        ProposalType.REINIT,
        ProposalType.EXTERNAL_INIT,
        ProposalType.GROUP_CONTEXT_EXTENSIONS,
    }
)
DEFAULT_EXTENSION_TYPES = frozenset(int(t) for t in ExtensionType)
# The capability lists checked against every member (fields of Capabilities and MemberSummary).
CapabilityKind = Literal["proposals", "extensions", "credentials"]


@dataclass(frozen=True)
class CommittedProposal:
    """One proposal covered by a Commit, with who proposed it and how it was included."""

    proposal: Proposal
    sender: Sender
    by_reference: bool
    reference: bytes | None = None


@dataclass
class AppliedProposals:
    """The outcome of §12.3 on a copy of the tree: the new tree and what changed."""

    tree: RatchetTree
    extensions: tuple[Extension, ...]
    added: list[tuple[int, KeyPackage]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    updated: list[tuple[int, LeafNode]] = field(default_factory=list)
    psks: list[PreSharedKeyID] = field(default_factory=list)
    reinit: ReInit | None = None
    path_required: bool = True


def required_capabilities(extensions: Sequence[Extension]) -> RequiredCapabilities | None:
    """§11.1: the group's required_capabilities extension, if any."""
    for ext in extensions:
        if ext.extension_type == ExtensionType.REQUIRED_CAPABILITIES:
            try:
                return RequiredCapabilities.decode(ext.extension_data)
            except Exception as exc:
                raise ProposalError(f"malformed required_capabilities: {exc}") from exc
    return None


def path_required(proposals: Sequence[CommittedProposal]) -> bool:
    """§12.4: an empty Commit, or one covering any path-required proposal type."""
    if not proposals:
        return True
    return any(p.proposal.proposal_type not in PATH_NOT_REQUIRED for p in proposals)


def _member_leaf(sender: Sender) -> int:
    if sender.sender_type != SenderType.MEMBER or sender.leaf_index is None:
        raise ProposalError(f"a {sender.sender_type.name} sender cannot send this proposal")
    return sender.leaf_index


def _check_list_shape(proposals: Sequence[CommittedProposal], committer: int) -> None:
    """§12.2: the rules on the list as a whole (counts, duplicates, committer's own)."""
    types = [p.proposal.proposal_type for p in proposals]
    if types.count(ProposalType.GROUP_CONTEXT_EXTENSIONS) > 1:
        raise ProposalError("more than one GroupContextExtensions proposal")
    if ProposalType.REINIT in types and len(types) > 1:
        raise ProposalError("a ReInit proposal must be the only proposal")
    if ProposalType.EXTERNAL_INIT in types:
        raise ProposalError("ExternalInit in a regular commit")
    touched: set[int] = set()
    psk_ids: set[bytes] = set()
    for p in proposals:
        kind, body = p.proposal.proposal_type, p.proposal.body
        if kind == ProposalType.UPDATE:
            leaf = _member_leaf(p.sender)
            if leaf == committer:
                raise ProposalError("the committer's own Update in its Commit")
            if not p.by_reference:
                raise ProposalError("an Update can only be committed by reference")
        elif kind == ProposalType.SELF_REMOVE:
            leaf = _member_leaf(p.sender)
            if not p.by_reference:
                raise ProposalError("a SelfRemove can only be committed by reference")
            if leaf == committer:
                raise ProposalError("the committer's own SelfRemove in its Commit")
        elif kind == ProposalType.REMOVE:
            assert isinstance(body, Remove)
            leaf = body.removed
            if leaf == committer:
                raise ProposalError("a Remove of the committer")
        elif kind == ProposalType.PSK:
            assert isinstance(body, PreSharedKey)
            key = body.psk.encode()
            if key in psk_ids:
                raise ProposalError("two PreSharedKey proposals for the same PSK")
            psk_ids.add(key)
            continue
        else:
            continue
        if leaf in touched:
            raise ProposalError(f"several Update/Remove proposals for leaf {leaf}")
        touched.add(leaf)


def _check_psk(suite: CipherSuite, psk: PreSharedKeyID) -> None:
    """§12.1.4: nonce length, and no reinit/branch resumption PSK in a proposal."""
    if len(psk.psk_nonce) != suite.hash_len:
        raise ProposalError(f"psk_nonce of {len(psk.psk_nonce)} bytes, need {suite.hash_len}")
    if psk.psktype == PSKType.RESUMPTION and psk.usage != ResumptionPSKUsage.APPLICATION:
        raise ProposalError("a PreSharedKey proposal with a reinit/branch resumption PSK")


def _check_supported(
    tree: RatchetTree, proposals: Sequence[CommittedProposal], added: set[int]
) -> None:
    """§12.2: non-default proposal types must be supported by every member that stays (the
    members this Commit adds or removes need not support them)."""
    custom = {p.proposal.proposal_type for p in proposals} - DEFAULT_PROPOSAL_TYPES
    lacking = _first_lacking(tree, "proposals", custom, exempt=added)
    if lacking is not None:
        index, missing = lacking
        raise ProposalError(f"member {index} does not support proposal types {missing}")


def _check_required_by_all(tree: RatchetTree, required: RequiredCapabilities | None) -> None:
    """§12.1.7: every member supports the (new) required capabilities."""
    if required is None:
        return
    checks: tuple[tuple[CapabilityKind, tuple[int, ...]], ...] = (
        ("extensions", required.extension_types),
        ("proposals", required.proposal_types),
        ("credentials", required.credential_types),
    )
    for kind, types in checks:
        lacking = _first_lacking(tree, kind, set(types))
        if lacking is not None:
            index, missing = lacking
            raise ProposalError(f"member {index} lacks required {kind} {missing}")


def _check_extensions_supported(tree: RatchetTree, extensions: Sequence[Extension]) -> None:
    """§13: non-default GroupContext extensions must be supported by every member."""
    custom = {e.extension_type for e in extensions} - DEFAULT_EXTENSION_TYPES
    lacking = _first_lacking(tree, "extensions", custom)
    if lacking is not None:
        index, missing = lacking
        raise ProposalError(f"member {index} does not support extensions {missing}")


def _first_lacking(
    tree: RatchetTree, kind: CapabilityKind, wanted: set[int], exempt: Collection[int] = ()
) -> tuple[int, list[int]] | None:
    """The first member outside ``exempt`` whose capabilities (``kind``: the field of
    Capabilities and of MemberSummary) lack some of ``wanted``, and what it lacks.

    The member summary answers "everyone has them" in O(|wanted| + |exempt|); only a failing
    check walks the members, to name one.
    """
    if not wanted:
        return None
    summary = tree.summary()
    counts: Counter[int] = getattr(summary, kind)
    exempt_offers = [_offered(tree.leaf(i), kind) for i in exempt]
    need = summary.members - len(exempt_offers)
    if all(counts[t] - sum(t in o for o in exempt_offers) == need for t in wanted):
        return None
    for index, leaf in tree.members():
        missing = wanted.difference(_offered(leaf, kind))
        if missing and index not in exempt:
            return index, sorted(missing)
    raise AssertionError("the member summary disagrees with the members")  # pragma: no cover


def _offered(leaf: LeafNode | None, kind: CapabilityKind) -> frozenset[int]:
    assert leaf is not None  # callers pass member leaves only
    return frozenset(getattr(leaf.capabilities, kind))


def check_proposal(
    suite: CipherSuite,
    context: GroupContext,
    tree: RatchetTree,
    proposal: Proposal,
    sender: Sender,
    now: int | None = None,
) -> None:
    """§12.1: the checks of one received proposal that hold whatever else is committed with it
    (the list rules of §12.2 and key uniqueness are checked when a Commit covers it)."""
    body = proposal.body
    if isinstance(body, Add):
        key_package = body.key_package
        try:
            verify_key_package(key_package, context.cipher_suite)
            verify_leaf_signature(suite, key_package.leaf_node, None, None)
            check_own_fields(key_package.leaf_node, required_capabilities(context.extensions), now)
        except (KeyPackageError, LeafNodeValidationError) as exc:
            raise ProposalError(f"invalid Add: {exc}") from exc
    elif isinstance(body, Update):
        leaf_index = _member_leaf(sender)
        if body.leaf_node.leaf_node_source != LeafNodeSource.UPDATE:
            raise ProposalError("an Update's leaf must have leaf_node_source update")
        try:
            verify_leaf_signature(suite, body.leaf_node, context.group_id, leaf_index)
        except LeafNodeValidationError as exc:
            raise ProposalError(f"invalid Update: {exc}") from exc
    elif isinstance(body, Remove):
        if tree.leaf(body.removed) is None:
            raise ProposalError(f"Remove of blank or absent leaf {body.removed}")
    elif isinstance(body, PreSharedKey):
        _check_psk(suite, body.psk)
    elif proposal.proposal_type == ProposalType.SELF_REMOVE:
        _member_leaf(sender)
    elif proposal.proposal_type == ProposalType.EXTERNAL_INIT:
        raise ProposalError("ExternalInit outside an external commit")
    elif isinstance(body, ReInit) and body.version < context.version:
        raise ProposalError("a ReInit to an older protocol version")


def apply_proposals(
    suite: CipherSuite,
    context: GroupContext,
    tree: RatchetTree,
    proposals: Sequence[CommittedProposal],
    committer: int,
    *,
    now: int | None = None,
) -> AppliedProposals:
    """§12.2 validation and §12.3 application of a regular Commit's proposals.

    Returns the new tree (a copy; ``tree`` is untouched) and what the proposals did. Raises a
    `ProposalError` (or a `LeafNodeValidationError`/`KeyPackageError`) on any invalid list.
    """
    _check_list_shape(proposals, committer)
    new_tree = tree.copy()
    by_type: dict[int, list[CommittedProposal]] = {}
    for p in proposals:
        by_type.setdefault(p.proposal.proposal_type, []).append(p)
    extensions = context.extensions
    result = AppliedProposals(new_tree, extensions, path_required=path_required(proposals))
    for p in by_type.get(ProposalType.GROUP_CONTEXT_EXTENSIONS, ()):
        assert isinstance(p.proposal.body, GroupContextExtensions)
        result.extensions = p.proposal.body.extensions
    required = required_capabilities(result.extensions)
    try:
        _apply_updates(suite, context, new_tree, by_type, required, now, result)
        _apply_removes(new_tree, by_type, result)
        _apply_adds(suite, context, new_tree, by_type, required, now, result)
    except TreeError as exc:
        raise ProposalError(str(exc)) from exc
    for p in by_type.get(ProposalType.PSK, ()):
        assert isinstance(p.proposal.body, PreSharedKey)
        _check_psk(suite, p.proposal.body.psk)
        result.psks.append(p.proposal.body.psk)
    for p in by_type.get(ProposalType.REINIT, ()):
        assert isinstance(p.proposal.body, ReInit)
        if p.proposal.body.version < context.version:
            raise ProposalError("a ReInit to an older protocol version")
        result.reinit = p.proposal.body
    if ProposalType.GROUP_CONTEXT_EXTENSIONS in by_type:
        _check_required_by_all(new_tree, required)
        _check_extensions_supported(new_tree, result.extensions)
    _check_supported(new_tree, proposals, {index for index, _ in result.added})
    return result


def _apply_updates(
    suite: CipherSuite,
    context: GroupContext,
    tree: RatchetTree,
    by_type: dict[int, list[CommittedProposal]],
    required: RequiredCapabilities | None,
    now: int | None,
    result: AppliedProposals,
) -> None:
    """§12.1.2: validate each Update's leaf (§7.3) and replace the sender's leaf."""
    for p in by_type.get(ProposalType.UPDATE, ()):
        leaf_index = _member_leaf(p.sender)
        assert isinstance(p.proposal.body, Update)
        leaf = p.proposal.body.leaf_node
        if tree.leaf(leaf_index) is None:
            raise ProposalError(f"Update from blank leaf {leaf_index}")
        validate_leaf_node(
            suite,
            leaf,
            source=LeafNodeSource.UPDATE,
            tree=tree,
            group_id=context.group_id,
            leaf_index=leaf_index,
            required=required,
            now=now,
            replaces=leaf_index,
        )
        tree.update_leaf(leaf_index, leaf)
        result.updated.append((leaf_index, leaf))


def _apply_removes(
    tree: RatchetTree, by_type: dict[int, list[CommittedProposal]], result: AppliedProposals
) -> None:
    """SelfRemove (its sender's leaf) then §12.1.3 Remove: blank the leaf, truncate."""
    targets = [_member_leaf(p.sender) for p in by_type.get(ProposalType.SELF_REMOVE, ())]
    for p in by_type.get(ProposalType.REMOVE, ()):
        assert isinstance(p.proposal.body, Remove)
        targets.append(p.proposal.body.removed)
    for leaf_index in targets:
        if tree.leaf(leaf_index) is None:
            raise ProposalError(f"Remove of blank or absent leaf {leaf_index}")
        tree.remove_leaf(leaf_index)
        result.removed.append(leaf_index)


def _apply_adds(
    suite: CipherSuite,
    context: GroupContext,
    tree: RatchetTree,
    by_type: dict[int, list[CommittedProposal]],
    required: RequiredCapabilities | None,
    now: int | None,
    result: AppliedProposals,
) -> None:
    """§12.1.1: validate each KeyPackage (§10.1, §7.3) and add its leaf, in list order.

    Validating against the tree after Updates, Removes and earlier Adds catches both "a client
    already in the group (unless removed)" and "two Adds for the same client" as key reuse.
    """
    for p in by_type.get(ProposalType.ADD, ()):
        assert isinstance(p.proposal.body, Add)
        key_package = p.proposal.body.key_package
        try:
            verify_key_package(key_package, context.cipher_suite)
            if key_package.version != context.version:
                raise KeyPackageError("KeyPackage version differs from the group's")
            validate_leaf_node(
                suite,
                key_package.leaf_node,
                source=LeafNodeSource.KEY_PACKAGE,
                tree=tree,
                group_id=None,
                leaf_index=None,
                required=required,
                now=now,
            )
        except (KeyPackageError, LeafNodeValidationError) as exc:
            raise ProposalError(f"invalid Add: {exc}") from exc
        # §12.4.3.1: a joiner must support every extension of the GroupContext.
        custom = {e.extension_type for e in result.extensions} - DEFAULT_EXTENSION_TYPES
        if not custom.issubset(key_package.leaf_node.capabilities.extensions):
            raise ProposalError("invalid Add: the new member lacks a group context extension")
        index = tree.add_leaf(key_package.leaf_node)
        result.added.append((index, key_package))
