"""The MLS group state machine and its application API (RFC 9420 §8, §11, §12, §14; SelfRemove
from the MLS extensions draft).

A `Group` is one member's view of one group. It is sans-I/O: bytes in, bytes and small event
dataclasses out, time passed in where a lifetime is checked. Every operation is all-or-nothing:
incoming messages are processed against staged copies and the state is swapped only when
everything checked out, and generating a Commit never changes the epoch state (§14) — it returns
a `PendingCommit` that `merge_pending` applies once the application (the lock service) accepted
it, or that is simply dropped.

Example::

    from moqmls.mls.group import Group, make_key_package

    alice_kp, alice_priv = make_key_package(b"alice")
    bob_kp, bob_priv = make_key_package(b"bob")
    alice = Group.create(alice_priv, group_id=b"room-1")
    pending = alice.commit(adds=[bob_kp])           # nothing changed yet
    alice.merge_pending(pending)                    # the lock service accepted the commit
    bob = Group.join_from_welcome(pending.welcome, bob_priv)
    assert bob.epoch_authenticator == alice.epoch_authenticator
    ciphertext = alice.protect(b"hello")
    event = bob.process(ciphertext)                 # ApplicationMessage(sender=0, data=b"hello")
    leave = bob.propose_self_remove()               # SelfRemove proposal (PublicMessage)
    alice.process(leave)                            # ProposalReceived(...)
    pending = alice.commit()                        # commits the pending SelfRemove by reference
    alice.merge_pending(pending)
    key = alice.export_secret(b"label", b"context", 32)
    saved = alice.to_bytes(); alice = Group.from_bytes(saved)

Handshake messages are PrivateMessages by default (``handshake_wire_format``); SelfRemove
proposals are PublicMessages as the extensions draft requires. Welcomes carry the ratchet tree
in the ``ratchet_tree`` extension unless ``ratchet_tree_in_welcome=False``. A PrivateMessage
decrypts once: its key is deleted from the secret tree after use (§9.2), so a replay fails.
Building a PrivateMessage Commit uses up one generation of the committer's own handshake ratchet
(so that a Commit rebuilt after a lost race never reuses a key and nonce); nothing else changes.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from moqmls.mls import tree_math as tm
from moqmls.mls.codec import (
    OPAQUE,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Optional,
    Struct,
    StructWire,
    Vector,
    guard_decode,
    wire,
)
from moqmls.mls.crypto import CipherSuite, cipher_suite
from moqmls.mls.errors import (
    CommitError,
    ConfirmationTagError,
    DecodeError,
    FramingError,
    GroupStateError,
    MissingPSKError,
    ProposalError,
    TreeError,
    UnknownProposalError,
    ValidationError,
    WelcomeError,
)
from moqmls.mls.framing import (
    open_private_message,
    open_public_message,
    protect_private,
    ratchet_type,
    sign_content,
    to_public_message,
    verify_content,
)
from moqmls.mls.key_package import (
    KeyPackagePrivate,
    decode_key_package,
    make_key_package,
    parse_key_package,
)
from moqmls.mls.key_schedule import (
    EpochSecrets,
    epoch_secrets,
    epoch_secrets_from_joiner,
    mls_exporter,
    psk_secret,
    welcome_secret,
)
from moqmls.mls.leaf_validation import sign_leaf_node, validate_leaf_node, validate_tree_leaves
from moqmls.mls.proposals import (
    DEFAULT_EXTENSION_TYPES,
    AppliedProposals,
    CommittedProposal,
    apply_proposals,
    check_proposal,
    required_capabilities,
)
from moqmls.mls.ratchet_tree import RatchetTree
from moqmls.mls.secret_tree import RatchetType, SecretTree, SecretTreeState
from moqmls.mls.structs import (
    Add,
    AuthenticatedContent,
    Commit,
    ContentType,
    Extension,
    ExtensionType,
    FramedContent,
    FramedContentAuthData,
    GroupContext,
    GroupInfo,
    LeafNode,
    LeafNodeSource,
    MLSMessage,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ProposalOrRefType,
    ProtocolVersion,
    PSKType,
    ReInit,
    Remove,
    ResumptionPSKUsage,
    SelfRemove,
    Sender,
    SenderType,
    Update,
    UpdatePath,
    Welcome,
    WireFormat,
)
from moqmls.mls.transcript import (
    confirmation_tag,
    confirmed_input,
    interim_transcript_hash,
    update_transcript,
)
from moqmls.mls.treekem import (
    CreatedPath,
    PrivateTree,
    create_update_path,
    decrypt_update_path,
    merge_update_path,
)
from moqmls.mls.welcome import (
    NewMember,
    build_welcome,
    open_group_info,
    open_group_secrets,
    sign_group_info,
    verify_group_info,
)

__all__ = [
    "ApplicationMessage",
    "CommitProcessed",
    "Event",
    "Group",
    "KeyPackagePrivate",
    "Member",
    "PendingCommit",
    "ProposalReceived",
    "make_key_package",
    "message_epoch",
]

RESUMPTION_PSK_WINDOW = 16


# --------------------------------------------------------------------------- public values


@dataclass(frozen=True)
class Member:
    """One member of the group: its leaf, its (basic credential) identity and signature key."""

    leaf_index: int
    identity: bytes
    signature_key: bytes


@dataclass(frozen=True)
class ApplicationMessage:
    """Application data from a member (§15)."""

    sender: int
    data: bytes
    authenticated_data: bytes


@dataclass(frozen=True)
class ProposalReceived:
    """A proposal was validated and cached for the next Commit (§12.1).

    ``target`` is the leaf a Remove or SelfRemove would remove (the sender's, for SelfRemove).
    """

    sender: int
    proposal_type: int
    reference: bytes
    target: int | None


@dataclass(frozen=True)
class CommitProcessed:
    """Another member's Commit was applied; the group is now at ``epoch``.

    When ``removed_self`` is true this member was removed and the group is no longer usable.
    """

    committer: int
    epoch: int
    added: tuple[int, ...]
    removed: tuple[int, ...]
    updated: tuple[int, ...]
    removed_self: bool


Event = ApplicationMessage | ProposalReceived | CommitProcessed


# --------------------------------------------------------------------------- internal state


@dataclass(frozen=True)
class CachedProposal:
    """A proposal received (or sent) in the current epoch, retrievable by reference."""

    proposal: Proposal
    sender: Sender
    # For our own Update: the private key of the leaf it proposes.
    leaf_private_key: bytes | None = None


@dataclass
class EpochState:
    """Everything one member knows in one epoch. Replaced wholesale by a Commit."""

    suite: CipherSuite
    context: GroupContext
    tree: RatchetTree
    private: PrivateTree
    signature_priv: bytes
    secrets: EpochSecrets
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    secret_tree: SecretTree
    proposals: dict[bytes, CachedProposal] = field(default_factory=dict)
    # resumption PSKs of this and recent epochs, by epoch (§8.6)
    resumption_psks: dict[int, bytes] = field(default_factory=dict)
    # the ReInit this epoch's Commit covered: no more messages may be sent (§12.4.2, §11.2)
    reinit: ReInit | None = None
    member_list: tuple[Member, ...] | None = None

    @property
    def own_leaf(self) -> int:
        return self.private.leaf_index

    def encoded_context(self) -> bytes:
        return self.context.encode()


@dataclass(frozen=True)
class PendingCommit:
    """A Commit built by `Group.commit`, not yet applied (§14).

    ``commit`` is the MLSMessage to publish once the Commit is accepted, ``welcome`` the
    MLSMessage(Welcome) for the members it adds (None when it adds nobody). Pass the object to
    `Group.merge_pending` after acceptance, or drop it.
    """

    commit: bytes
    welcome: bytes | None
    epoch: int
    staged: EpochState = field(repr=False)
    base: EpochState = field(repr=False)


def _new_secret_tree(suite: CipherSuite, secrets: EpochSecrets, tree: RatchetTree) -> SecretTree:
    return SecretTree(suite, secrets.encryption_secret, tree.n_leaves)


def _extension(extensions: Sequence[Extension], extension_type: int) -> bytes | None:
    for ext in extensions:
        if ext.extension_type == extension_type:
            return ext.extension_data
    return None


def _decode_message(data: bytes) -> MLSMessage:
    message = guard_decode(lambda: MLSMessage.decode(data))
    if message.version != ProtocolVersion.MLS10:
        raise DecodeError(f"unsupported protocol version {message.version}")
    return message


def message_epoch(data: bytes) -> int:
    """The epoch a PublicMessage or PrivateMessage says it belongs to (no crypto, no state)."""
    message = _decode_message(data)
    if message.public_message is not None:
        return message.public_message.content.epoch
    if message.private_message is not None:
        return message.private_message.epoch
    raise FramingError(f"{message.wire_format.name} is not a group message")


# --------------------------------------------------------------------------- the group


class Group:
    """One member's state of an MLS group. See the module docstring for a walk-through."""

    def __init__(
        self,
        state: EpochState,
        *,
        external_psks: Mapping[bytes, bytes] | None = None,
        handshake_wire_format: WireFormat = WireFormat.MLS_PRIVATE_MESSAGE,
        ratchet_tree_in_welcome: bool = True,
        active: bool = True,
    ) -> None:
        self._state = state
        self._external_psks = dict(external_psks or {})
        self.handshake_wire_format = handshake_wire_format
        self.ratchet_tree_in_welcome = ratchet_tree_in_welcome
        self._active = active

    # ------------------------------------------------------------------ creation (§11)

    @classmethod
    def create(
        cls,
        key_package: KeyPackagePrivate,
        group_id: bytes | None = None,
        extensions: Sequence[Extension] = (),
        *,
        external_psks: Mapping[bytes, bytes] | None = None,
        handshake_wire_format: WireFormat = WireFormat.MLS_PRIVATE_MESSAGE,
        ratchet_tree_in_welcome: bool = True,
    ) -> Group:
        """§11: a one-member group at epoch 0 whose creator's leaf is the KeyPackage's."""
        kp = key_package.key_package
        suite = cipher_suite(kp.cipher_suite)
        tree = RatchetTree.with_creator(suite, kp.leaf_node)
        context = GroupContext(
            ProtocolVersion.MLS10,
            kp.cipher_suite,
            group_id if group_id is not None else os.urandom(suite.hash_len),
            0,
            tree.tree_hash(),
            b"",
            tuple(extensions),
        )
        # §11: "Epoch secret: a fresh random value"; a random joiner secret yields one.
        secrets = epoch_secrets_from_joiner(
            suite, os.urandom(suite.hash_len), None, context.encode()
        )
        tag = confirmation_tag(suite, secrets.confirmation_key, b"")
        private = PrivateTree.for_leaf(0, kp.leaf_node.encryption_key, key_package.encryption_priv)
        state = EpochState(
            suite,
            context,
            tree,
            private,
            key_package.signature_priv,
            secrets,
            interim_transcript_hash(suite, b"", tag),
            tag,
            _new_secret_tree(suite, secrets, tree),
            resumption_psks={0: secrets.resumption_psk},
        )
        return cls(
            state,
            external_psks=external_psks,
            handshake_wire_format=handshake_wire_format,
            ratchet_tree_in_welcome=ratchet_tree_in_welcome,
        )

    # ------------------------------------------------------------------ reading

    @property
    def cipher_suite(self) -> CipherSuite:
        return self._state.suite

    @property
    def group_id(self) -> bytes:
        return self._state.context.group_id

    @property
    def epoch(self) -> int:
        return self._state.context.epoch

    @property
    def epoch_authenticator(self) -> bytes:
        """§8.7: the epoch authenticator of the current epoch."""
        return self._state.secrets.epoch_authenticator

    @property
    def own_leaf_index(self) -> int:
        return self._state.own_leaf

    @property
    def active(self) -> bool:
        """False once this member was removed from the group."""
        return self._active

    @property
    def group_context(self) -> GroupContext:
        return self._state.context

    @property
    def tree_hash(self) -> bytes:
        return self._state.context.tree_hash

    @property
    def members(self) -> tuple[Member, ...]:
        """The members, in leaf order (computed once per epoch: the tree is fixed within one)."""
        state = self._state
        if state.member_list is None:
            state.member_list = tuple(
                Member(index, leaf.credential.identity or b"", leaf.signature_key)
                for index, leaf in state.tree.members()
            )
        return state.member_list

    @property
    def pending_proposals(self) -> tuple[bytes, ...]:
        """The references of the proposals cached in this epoch."""
        return tuple(self._state.proposals)

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """§8.5: MLS-Exporter(label, context, length)."""
        s = self._state
        return mls_exporter(s.suite, s.secrets.exporter_secret, label, context, length)

    def ratchet_tree(self) -> bytes:
        """§12.4.3.3: the public ratchet tree (for joiners whose Welcome lacks it)."""
        return self._state.tree.encode()

    def add_external_psk(self, psk_id: bytes, psk: bytes) -> None:
        """Make an external PSK (§8.4) available to commits and welcomes."""
        self._external_psks[psk_id] = psk

    def _require_active(self) -> None:
        if not self._active:
            raise GroupStateError("this member was removed from the group")

    def _require_sendable(self) -> None:
        """§12.4.2: after a ReInit was committed the old group sends nothing more."""
        self._require_active()
        if self._state.reinit is not None:
            raise GroupStateError("a ReInit was committed: this group sends no more messages")

    # ------------------------------------------------------------------ framing helpers

    def _frame(
        self,
        state: EpochState,
        content: FramedContent,
        wire_format: WireFormat,
        confirmation: bytes | None = None,
        signature: bytes | None = None,
    ) -> tuple[bytes, AuthenticatedContent]:
        """§6: sign (unless given) and protect content with the keys of ``state``'s epoch."""
        suite = state.suite
        if signature is None:
            signature = sign_content(
                suite, state.signature_priv, wire_format, content, state.context
            )
        authenticated = AuthenticatedContent(
            wire_format, content, FramedContentAuthData(signature, confirmation)
        )
        if wire_format == WireFormat.MLS_PUBLIC_MESSAGE:
            message = MLSMessage.of(
                to_public_message(suite, authenticated, state.context, state.secrets.membership_key)
            )
        else:
            message = MLSMessage.of(
                protect_private(
                    suite, authenticated, state.secret_tree, state.secrets.sender_data_secret
                )
            )
        return message.encode(), authenticated

    def _content(
        self,
        state: EpochState,
        authenticated_data: bytes,
        *,
        application_data: bytes | None = None,
        proposal: Proposal | None = None,
        commit: Commit | None = None,
    ) -> FramedContent:
        """§6: our FramedContent in ``state``'s epoch carrying exactly one of the bodies."""
        if application_data is not None:
            content_type = ContentType.APPLICATION
        elif proposal is not None:
            content_type = ContentType.PROPOSAL
        else:
            content_type = ContentType.COMMIT
        return FramedContent(
            state.context.group_id,
            state.context.epoch,
            Sender.member(state.own_leaf),
            authenticated_data,
            content_type,
            application_data,
            proposal,
            commit,
        )

    # ------------------------------------------------------------------ application data

    def protect(self, data: bytes, authenticated_data: bytes = b"") -> bytes:
        """§15: encrypt application data as a PrivateMessage."""
        self._require_sendable()
        state = self._state
        content = self._content(state, authenticated_data, application_data=data)
        message, _ = self._frame(state, content, WireFormat.MLS_PRIVATE_MESSAGE)
        return message

    # ------------------------------------------------------------------ proposals (§12.1)

    def _send_proposal(
        self,
        proposal: Proposal,
        wire_format: WireFormat | None,
        authenticated_data: bytes,
        leaf_private_key: bytes | None = None,
    ) -> bytes:
        self._require_sendable()
        state = self._state
        content = self._content(state, authenticated_data, proposal=proposal)
        message, authenticated = self._frame(
            state, content, wire_format or self.handshake_wire_format
        )
        ref = state.suite.proposal_ref(authenticated.encode())
        state.proposals[ref] = CachedProposal(proposal, content.sender, leaf_private_key)
        return message

    def propose_add(
        self,
        key_package: bytes,
        *,
        wire_format: WireFormat | None = None,
        authenticated_data: bytes = b"",
    ) -> bytes:
        """§12.1.1: an Add proposal for a KeyPackage (MLSMessage bytes)."""
        kp = parse_key_package(key_package)
        if kp.cipher_suite != self._state.context.cipher_suite:
            raise ProposalError("KeyPackage cipher suite differs from the group's")
        return self._send_proposal(Proposal.of(Add(kp)), wire_format, authenticated_data)

    def propose_remove(
        self,
        leaf_index: int,
        *,
        wire_format: WireFormat | None = None,
        authenticated_data: bytes = b"",
    ) -> bytes:
        """§12.1.3: a Remove proposal for another member's leaf."""
        if self._state.tree.leaf(leaf_index) is None:
            raise ProposalError(f"leaf {leaf_index} is not a member")
        if leaf_index == self.own_leaf_index:
            raise ProposalError("use propose_self_remove to leave")
        return self._send_proposal(Proposal.of(Remove(leaf_index)), wire_format, authenticated_data)

    def propose_update(
        self, *, wire_format: WireFormat | None = None, authenticated_data: bytes = b""
    ) -> bytes:
        """§12.1.2: an Update proposal with a fresh leaf encryption key."""
        state = self._state
        current = state.tree.leaf(state.own_leaf)
        assert current is not None
        leaf_priv, leaf_pub = state.suite.generate_key_pair()
        unsigned = LeafNode(
            leaf_pub,
            current.signature_key,
            current.credential,
            current.capabilities,
            LeafNodeSource.UPDATE,
            None,
            None,
            current.extensions,
            b"",
        )
        leaf = sign_leaf_node(
            state.suite, state.signature_priv, unsigned, state.context.group_id, state.own_leaf
        )
        return self._send_proposal(
            Proposal.of(Update(leaf)), wire_format, authenticated_data, leaf_priv
        )

    def propose_self_remove(
        self,
        *,
        wire_format: WireFormat = WireFormat.MLS_PUBLIC_MESSAGE,
        authenticated_data: bytes = b"",
    ) -> bytes:
        """MLS extensions draft: a SelfRemove proposal (sent as PublicMessage by default)."""
        return self._send_proposal(Proposal.of(SelfRemove()), wire_format, authenticated_data)

    # ------------------------------------------------------------------ commit (§12.4.1)

    def _pending_for_commit(self, explicit: Sequence[CommittedProposal]) -> list[CommittedProposal]:
        """The cached proposals a Commit includes by reference (§12.4: SHOULD include all valid
        ones): never our own Update/SelfRemove or our removal; Removes win over Updates."""
        state = self._state
        me = state.own_leaf
        explicit_targets = {
            p.proposal.body.removed for p in explicit if isinstance(p.proposal.body, Remove)
        }
        chosen: dict[bytes, CachedProposal] = {}
        removed: set[int] = set(explicit_targets)
        for ref, cached in state.proposals.items():
            body = cached.proposal.body
            if isinstance(body, Remove):
                if body.removed == me or body.removed in removed:
                    continue
                removed.add(body.removed)
            elif isinstance(body, SelfRemove):
                if cached.sender.leaf_index == me or cached.sender.leaf_index in removed:
                    continue
                removed.add(cached.sender.leaf_index or 0)
            chosen[ref] = cached
        result: list[CommittedProposal] = []
        updated: set[int] = set()
        for ref, cached in reversed(list(chosen.items())):  # the most recent Update wins
            body = cached.proposal.body
            if isinstance(body, Update):
                leaf = cached.sender.leaf_index
                if leaf == me or leaf in removed or leaf in updated:
                    continue
                updated.add(leaf or 0)
            result.append(CommittedProposal(cached.proposal, cached.sender, True, ref))
        result.reverse()
        return result

    def commit(
        self,
        *,
        adds: Iterable[bytes] = (),
        removes: Iterable[int] = (),
        include_pending: bool = True,
        force_path: bool = False,
        wire_format: WireFormat | None = None,
        authenticated_data: bytes = b"",
        now: int | None = None,
    ) -> PendingCommit:
        """§12.4.1: a Commit adding these KeyPackages (MLSMessage bytes) and removing these
        leaves, plus (by default) the valid proposals cached this epoch, by reference.

        The group's state is not changed (§14). A path is included when a proposal needs one,
        when there are no proposals (a self-update), or with ``force_path``. ``now`` (seconds
        since the Unix epoch) checks the lifetimes of added KeyPackages.
        """
        self._require_sendable()
        state = self._state
        me = Sender.member(state.own_leaf)
        # Every check of the KeyPackages happens once, when the Adds are applied below.
        explicit = [
            CommittedProposal(Proposal.of(Add(decode_key_package(kp))), me, False) for kp in adds
        ]
        explicit += [CommittedProposal(Proposal.of(Remove(r)), me, False) for r in removes]
        proposals = explicit + (self._pending_for_commit(explicit) if include_pending else [])
        applied = self._apply_valid(proposals, len(explicit), now)
        proposals = applied[1]
        return self._build_commit(
            state,
            proposals,
            applied[0],
            force_path,
            wire_format or self.handshake_wire_format,
            authenticated_data,
        )

    def _apply_valid(
        self, proposals: list[CommittedProposal], n_explicit: int, now: int | None
    ) -> tuple[AppliedProposals, list[CommittedProposal]]:
        """Apply the list; if it is invalid, drop the cached proposals that make it so (the
        explicit ones must all be valid)."""
        state = self._state
        try:
            return self._apply(state, proposals, now), proposals
        except (ProposalError, TreeError, ValidationError):
            pass
        kept = proposals[:n_explicit]
        self._apply(state, kept, now)  # explicit ones alone must be valid: raises if not
        for candidate in proposals[n_explicit:]:
            try:
                self._apply(state, [*kept, candidate], now)
            except (ProposalError, TreeError, ValidationError):
                continue
            kept.append(candidate)
        return self._apply(state, kept, now), kept

    def _apply(
        self, state: EpochState, proposals: Sequence[CommittedProposal], now: int | None
    ) -> AppliedProposals:
        return apply_proposals(
            state.suite, state.context, state.tree, proposals, state.own_leaf, now=now
        )

    def _build_commit(
        self,
        state: EpochState,
        proposals: list[CommittedProposal],
        applied: AppliedProposals,
        force_path: bool,
        wire_format: WireFormat,
        authenticated_data: bytes,
    ) -> PendingCommit:
        """§12.4.1 from the applied proposals on: path, signature, key schedule, Welcome."""
        suite = state.suite
        provisional = _provisional(state, applied)
        created: CreatedPath | None = None
        private = state.private.copy()
        commit_secret = bytes(suite.hash_len)
        if applied.path_required or force_path:
            created = create_update_path(
                applied.tree,
                state.own_leaf,
                state.signature_priv,
                state.context.group_id,
                lambda tree_hash: dataclasses.replace(provisional, tree_hash=tree_hash).encode(),
                exclude=[index for index, _ in applied.added],
            )
            private, commit_secret = created.private, created.commit_secret
        private.prune(applied.tree)
        provisional = dataclasses.replace(provisional, tree_hash=applied.tree.tree_hash())
        commit = Commit(
            tuple(_proposal_or_ref(p) for p in proposals),
            None if created is None else created.update_path,
        )
        content = self._content(state, authenticated_data, commit=commit)
        signature = sign_content(suite, state.signature_priv, wire_format, content, state.context)
        signed = AuthenticatedContent(wire_format, content, FramedContentAuthData(signature, b""))
        confirmed = suite.hash(state.interim_transcript_hash + confirmed_input(signed))
        context, secrets, tag = self._advance(state, provisional, confirmed, commit_secret, applied)
        message, _ = self._frame(state, content, wire_format, tag, signature)
        staged = self._next_state(state, context, applied, private, secrets, tag)
        welcome = None
        if applied.added:
            welcome = self._welcome(staged, applied, created)
        return PendingCommit(message, welcome, state.context.epoch, staged, state)

    def _advance(
        self,
        state: EpochState,
        provisional: GroupContext,
        confirmed: bytes,
        commit_secret: bytes,
        applied: AppliedProposals,
    ) -> tuple[GroupContext, EpochSecrets, bytes]:
        """§8: the new GroupContext, the new epoch's secrets and the confirmation tag."""
        context = dataclasses.replace(provisional, confirmed_transcript_hash=confirmed)
        psk = self._psk_secret(state, applied.psks)
        secrets = epoch_secrets(
            state.suite, state.secrets.init_secret, commit_secret, psk, context.encode()
        )
        return context, secrets, confirmation_tag(state.suite, secrets.confirmation_key, confirmed)

    def _welcome(
        self, staged: EpochState, applied: AppliedProposals, created: CreatedPath | None
    ) -> bytes:
        """§12.4.3.1: one Welcome for every member this Commit adds."""
        members = [
            NewMember(kp, None if created is None else created.path_secret_for(index))
            for index, kp in applied.added
        ]
        welcome = build_welcome(
            staged.suite,
            self._group_info(staged),
            staged.secrets.joiner_secret,
            staged.secrets.welcome_secret,
            applied.psks,
            members,
        )
        return MLSMessage.of(welcome).encode()

    def _group_info(self, state: EpochState) -> GroupInfo:
        """§12.4.3: a signed GroupInfo of ``state`` (with the ratchet tree unless disabled)."""
        extensions: tuple[Extension, ...] = ()
        if self.ratchet_tree_in_welcome:
            extensions = (Extension(ExtensionType.RATCHET_TREE, state.tree.encode()),)
        unsigned = GroupInfo(state.context, extensions, state.confirmation_tag, state.own_leaf, b"")
        return sign_group_info(state.suite, state.signature_priv, unsigned)

    def group_info(self) -> bytes:
        """§12.4.3: an MLSMessage(GroupInfo) of the current epoch."""
        return MLSMessage.of(self._group_info(self._state)).encode()

    def _next_state(
        self,
        state: EpochState,
        context: GroupContext,
        applied: AppliedProposals,
        private: PrivateTree,
        secrets: EpochSecrets,
        tag: bytes,
    ) -> EpochState:
        """The state of the epoch a Commit starts (§8, §9): fresh secret tree, no proposals."""
        resumption = {
            e: p
            for e, p in state.resumption_psks.items()
            if e > context.epoch - RESUMPTION_PSK_WINDOW
        }
        resumption[context.epoch] = secrets.resumption_psk
        return EpochState(
            state.suite,
            context,
            applied.tree,
            private,
            state.signature_priv,
            secrets,
            interim_transcript_hash(state.suite, context.confirmed_transcript_hash, tag),
            tag,
            _new_secret_tree(state.suite, secrets, applied.tree),
            {},
            resumption,
            applied.reinit,
        )

    def merge_pending(self, pending: PendingCommit) -> None:
        """§14: apply our own Commit once it is accepted; the staged epoch becomes current."""
        self._require_active()
        if pending.base is not self._state:
            raise GroupStateError(
                f"pending commit was built in epoch {pending.epoch} on a state that is gone"
            )
        self._state = pending.staged

    # ------------------------------------------------------------------ PSKs (§8.4)

    def _psk_secret(self, state: EpochState, psks: Sequence[PreSharedKeyID]) -> bytes | None:
        return _psk_secret(state.suite, psks, self._external_psks, state)

    # ------------------------------------------------------------------ processing (§6, §12)

    def process(self, data: bytes, *, now: int | None = None) -> Event:
        """Process an incoming PublicMessage or PrivateMessage (§6, §12.1, §12.4.2, §15).

        All-or-nothing: any error raises an `MLSError` and leaves the state as it was.
        """
        self._require_active()
        message = _decode_message(data)
        state = self._state
        if message.public_message is not None:
            authenticated = open_public_message(
                state.suite, message.public_message, state.context, state.secrets.membership_key
            )
            consume: tuple[int, RatchetType, int] | None = None
        elif message.private_message is not None:
            opened = open_private_message(
                state.suite,
                message.private_message,
                state.context,
                state.secret_tree,
                state.secrets.sender_data_secret,
                consume=False,
            )
            authenticated = opened.authenticated
            content = authenticated.content
            kind = ratchet_type(content.content_type)
            consume = (content.sender.leaf_index or 0, kind, opened.generation)
        else:
            raise FramingError(f"{message.wire_format.name} is not a group message")
        sender = self._verify_sender(state, authenticated)
        content = authenticated.content
        event: Event
        finish: Callable[[], None] | None = None
        if content.content_type == ContentType.APPLICATION:
            assert content.application_data is not None
            event = ApplicationMessage(sender, content.application_data, content.authenticated_data)
        elif content.content_type == ContentType.PROPOSAL:
            event, finish = self._receive_proposal(state, authenticated, sender, now)
        else:
            event, finish = self._receive_commit(state, authenticated, sender, now)
        if consume is not None:
            state.secret_tree.consume(*consume)
        if finish is not None:
            finish()
        return event

    def _verify_sender(self, state: EpochState, authenticated: AuthenticatedContent) -> int:
        """§6.1/§6.2: a member sender with a non-blank leaf, and its signature."""
        sender = authenticated.content.sender
        if sender.sender_type != SenderType.MEMBER or sender.leaf_index is None:
            raise FramingError(f"{sender.sender_type.name} senders are not supported")
        leaf = state.tree.leaf(sender.leaf_index)
        if leaf is None:
            raise FramingError(f"sender leaf {sender.leaf_index} is blank")
        verify_content(state.suite, leaf.signature_key, authenticated, state.context)
        return sender.leaf_index

    def _receive_proposal(
        self, state: EpochState, authenticated: AuthenticatedContent, sender: int, now: int | None
    ) -> tuple[ProposalReceived, Callable[[], None]]:
        """§12.1: check the proposal on its own and cache it by reference."""
        proposal = authenticated.content.proposal
        assert proposal is not None
        if sender == state.own_leaf:
            raise GroupStateError("our own proposal came back")
        check_proposal(
            state.suite, state.context, state.tree, proposal, authenticated.content.sender, now
        )
        body = proposal.body
        target: int | None = None
        if isinstance(body, Remove):
            target = body.removed
        elif isinstance(body, SelfRemove):
            target = sender
        ref = state.suite.proposal_ref(authenticated.encode())
        cached = CachedProposal(proposal, authenticated.content.sender)

        def finish() -> None:
            state.proposals[ref] = cached

        return ProposalReceived(sender, proposal.proposal_type, ref, target), finish

    def _resolve(
        self, state: EpochState, commit: Commit, committer: Sender
    ) -> list[CommittedProposal]:
        """§12.4: the committed proposals, references looked up in this epoch's cache."""
        resolved = []
        for item in commit.proposals:
            if item.type == ProposalOrRefType.REFERENCE:
                assert item.reference is not None
                cached = state.proposals.get(item.reference)
                if cached is None:
                    raise UnknownProposalError("commit references an unknown proposal")
                resolved.append(
                    CommittedProposal(cached.proposal, cached.sender, True, item.reference)
                )
            else:
                assert item.proposal is not None
                resolved.append(CommittedProposal(item.proposal, committer, False))
        return resolved

    def _receive_commit(
        self,
        state: EpochState,
        authenticated: AuthenticatedContent,
        committer: int,
        now: int | None,
    ) -> tuple[CommitProcessed, Callable[[], None]]:
        """§12.4.2: validate and apply another member's Commit into a staged state."""
        if committer == state.own_leaf:
            raise GroupStateError("our own commit came back: use merge_pending")
        commit = authenticated.content.commit
        assert commit is not None
        proposals = self._resolve(state, commit, authenticated.content.sender)
        applied = self._apply_for(state, proposals, committer, now)
        if applied.path_required and commit.path is None:
            raise CommitError("this commit requires a path")
        removed_self = state.own_leaf in applied.removed
        event = CommitProcessed(
            committer,
            state.context.epoch + 1,
            tuple(index for index, _ in applied.added),
            tuple(applied.removed),
            tuple(index for index, _ in applied.updated),
            removed_self,
        )
        private = state.private.copy()
        if any(index == state.own_leaf for index, _ in applied.updated):
            private = self._adopt_own_update(state, proposals, applied)
        provisional = _provisional(state, applied)
        commit_secret = bytes(state.suite.hash_len)
        if commit.path is not None:
            self._validate_path_leaf(state, applied, commit.path, committer, now)
            added = [index for index, _ in applied.added]
            merge_update_path(applied.tree, committer, commit.path, added)
            _check_new_keys_unique(applied.tree, commit.path)
            provisional = dataclasses.replace(provisional, tree_hash=applied.tree.tree_hash())
            if not removed_self:
                decrypted = decrypt_update_path(
                    applied.tree, private, committer, commit.path, provisional.encode(), added
                )
                private, commit_secret = decrypted.private, decrypted.commit_secret
        if removed_self:
            return event, self._deactivate
        private.prune(applied.tree)
        provisional = dataclasses.replace(provisional, tree_hash=applied.tree.tree_hash())
        confirmed = update_transcript(state.suite, state.interim_transcript_hash, authenticated)
        context, secrets, tag = self._advance(
            state, provisional, confirmed.confirmed, commit_secret, applied
        )
        if not hmac.compare_digest(tag, authenticated.auth.confirmation_tag or b""):
            raise ConfirmationTagError("confirmation tag does not verify")
        staged = self._next_state(state, context, applied, private, secrets, tag)

        def swap() -> None:
            self._state = staged

        return event, swap

    def _deactivate(self) -> None:
        """We were removed (§12.4.2): the group can no longer be used."""
        self._active = False

    def _apply_for(
        self,
        state: EpochState,
        proposals: Sequence[CommittedProposal],
        committer: int,
        now: int | None,
    ) -> AppliedProposals:
        try:
            return apply_proposals(
                state.suite, state.context, state.tree, proposals, committer, now=now
            )
        except TreeError as exc:
            raise ProposalError(str(exc)) from exc

    def _adopt_own_update(
        self,
        state: EpochState,
        proposals: Sequence[CommittedProposal],
        applied: AppliedProposals,
    ) -> PrivateTree:
        """Our Update was committed: our leaf key becomes the one we proposed."""
        leaf = next(leaf for index, leaf in applied.updated if index == state.own_leaf)
        for p in proposals:
            if p.reference is None:
                continue
            cached = state.proposals.get(p.reference)
            if cached is not None and cached.leaf_private_key is not None:
                body = cached.proposal.body
                if isinstance(body, Update) and body.leaf_node == leaf:
                    return PrivateTree.for_leaf(
                        state.own_leaf, leaf.encryption_key, cached.leaf_private_key
                    )
        raise CommitError("our Update was committed but its private key is unknown")

    def _validate_path_leaf(
        self,
        state: EpochState,
        applied: AppliedProposals,
        path: UpdatePath,
        committer: int,
        now: int | None,
    ) -> None:
        """§12.4.2: the new leaf is valid with source commit and changes the encryption key."""
        current = applied.tree.leaf(committer)
        if current is None:
            raise CommitError("the committer's leaf is blank after its proposals")
        if path.leaf_node.encryption_key == current.encryption_key:
            raise CommitError("the committer's new leaf keeps its encryption key")
        validate_leaf_node(
            state.suite,
            path.leaf_node,
            source=LeafNodeSource.COMMIT,
            tree=applied.tree,
            group_id=state.context.group_id,
            leaf_index=committer,
            required=required_capabilities(applied.extensions),
            now=now,
            replaces=committer,
        )

    # ------------------------------------------------------------------ joining (§12.4.3.1)

    @classmethod
    def join_from_welcome(
        cls,
        welcome: bytes,
        key_package: KeyPackagePrivate,
        ratchet_tree: bytes | None = None,
        *,
        external_psks: Mapping[bytes, bytes] | None = None,
        now: int | None = None,
        handshake_wire_format: WireFormat = WireFormat.MLS_PRIVATE_MESSAGE,
        ratchet_tree_in_welcome: bool = True,
    ) -> Group:
        """§12.4.3.1: join from an MLSMessage(Welcome) with our KeyPackage's private half.

        ``ratchet_tree`` (the ``optional<Node> ratchet_tree<V>`` encoding) is needed only when
        the Welcome's GroupInfo carries no ``ratchet_tree`` extension; ``external_psks`` maps
        PSK ids to PSKs the Welcome may name; ``now`` checks the leaves' lifetimes.
        """
        message = _decode_message(welcome)
        if message.welcome is None:
            raise WelcomeError(f"expected a Welcome, got {message.wire_format.name}")
        psks = dict(external_psks or {})
        state = _join(message.welcome, key_package, ratchet_tree, psks, now)
        return cls(
            state,
            external_psks=psks,
            handshake_wire_format=handshake_wire_format,
            ratchet_tree_in_welcome=ratchet_tree_in_welcome,
        )

    # ------------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """The whole state (secrets included) as bytes; keep it as safe as the keys."""
        return _encode_state(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Group:
        """Restore a state saved with `to_bytes`; malformed input raises `DecodeError`."""
        return _decode_state(data)


# --------------------------------------------------------------------------- helpers


def _psk_secret(
    suite: CipherSuite,
    psks: Sequence[PreSharedKeyID],
    external: Mapping[bytes, bytes],
    state: EpochState | None,
) -> bytes | None:
    """§8.4: the psk_secret of these PSKs (None when there are none)."""
    if not psks:
        return None
    return psk_secret(suite, [(p.encode(), _psk_value(p, external, state)) for p in psks])


def _psk_value(
    psk_id: PreSharedKeyID, external: Mapping[bytes, bytes], state: EpochState | None
) -> bytes:
    """The PSK a PreSharedKeyID names: an external one, or a recent epoch's resumption PSK."""
    if psk_id.psktype == PSKType.EXTERNAL:
        value = external.get(psk_id.psk_id or b"")
        if value is None:
            raise MissingPSKError("unknown external PSK")
        return value
    if state is not None and psk_id.psk_group_id == state.context.group_id:
        value = state.resumption_psks.get(psk_id.psk_epoch or 0)
        if value is not None:
            return value
    raise MissingPSKError("unknown resumption PSK")


def _join(
    welcome: Welcome,
    key_package: KeyPackagePrivate,
    ratchet_tree: bytes | None,
    external_psks: Mapping[bytes, bytes],
    now: int | None,
) -> EpochState:
    """§12.4.3.1: every step of joining from a Welcome; the joined epoch's state."""
    kp = key_package.key_package
    suite = cipher_suite(kp.cipher_suite)
    group_secrets = open_group_secrets(suite, welcome, key_package)
    for psk_id in group_secrets.psks:
        if psk_id.psktype == PSKType.RESUMPTION and psk_id.usage != ResumptionPSKUsage.APPLICATION:
            raise WelcomeError("reinit/branch resumption PSKs are not supported")
    psk = _psk_secret(suite, group_secrets.psks, external_psks, None)
    group_info = open_group_info(
        suite, welcome, welcome_secret(suite, group_secrets.joiner_secret, psk)
    )
    context = group_info.group_context
    if context.cipher_suite != kp.cipher_suite or context.version != kp.version:
        raise WelcomeError("GroupInfo cipher suite or version differs from the KeyPackage's")
    supported = DEFAULT_EXTENSION_TYPES.union(kp.leaf_node.capabilities.extensions)
    unsupported = {e.extension_type for e in context.extensions} - supported
    if unsupported:
        raise WelcomeError(f"the group uses extensions we do not support: {sorted(unsupported)}")
    tree = _joined_tree(suite, group_info, ratchet_tree)
    signer = tree.leaf(group_info.signer)
    if signer is None:
        raise WelcomeError(f"GroupInfo signer {group_info.signer} is a blank leaf")
    verify_group_info(suite, group_info, signer.signature_key)
    _verify_joined_tree(suite, tree, context, now)
    my_leaf = tree.find_leaf(kp.leaf_node)
    if my_leaf is None:
        raise WelcomeError("our KeyPackage's leaf is not in the tree")
    private = PrivateTree.for_leaf(
        my_leaf, kp.leaf_node.encryption_key, key_package.encryption_priv
    )
    if group_secrets.path_secret is not None:
        lca = tm.common_ancestor(2 * my_leaf, 2 * group_info.signer)
        private.absorb_path_secret(suite, tree, lca, group_secrets.path_secret.path_secret)
    secrets = epoch_secrets_from_joiner(suite, group_secrets.joiner_secret, psk, context.encode())
    tag = confirmation_tag(suite, secrets.confirmation_key, context.confirmed_transcript_hash)
    if not hmac.compare_digest(tag, group_info.confirmation_tag):
        raise ConfirmationTagError("GroupInfo confirmation tag does not verify")
    return EpochState(
        suite,
        context,
        tree,
        private,
        key_package.signature_priv,
        secrets,
        interim_transcript_hash(suite, context.confirmed_transcript_hash, tag),
        tag,
        _new_secret_tree(suite, secrets, tree),
        resumption_psks={context.epoch: secrets.resumption_psk},
    )


def _provisional(state: EpochState, applied: AppliedProposals) -> GroupContext:
    """§12.4.1/§12.4.2: the next epoch's context before the tree hash and transcript are
    known (the tree hash is filled in once the path, if any, is merged)."""
    return dataclasses.replace(
        state.context,
        epoch=state.context.epoch + 1,
        tree_hash=b"",
        extensions=applied.extensions,
    )


def _proposal_or_ref(p: CommittedProposal) -> ProposalOrRef:
    if p.by_reference and p.reference is not None:
        return ProposalOrRef.of_reference(p.reference)
    return ProposalOrRef.of_proposal(p.proposal)


def _check_new_keys_unique(tree: RatchetTree, path: UpdatePath) -> None:
    """§12.4.2: none of the UpdatePath's public keys appears elsewhere in the new tree."""
    new_keys = {n.encryption_key for n in path.nodes}
    new_keys.add(path.leaf_node.encryption_key)
    if len(new_keys) != len(path.nodes) + 1:
        raise CommitError("an UpdatePath repeats a public key")
    # Merged, the path holds each of its keys once; any other node holding one counts extra.
    for key in new_keys:
        if tree.key_count(key) != 1:
            raise CommitError("an UpdatePath public key is already used elsewhere in the tree")


def _joined_tree(
    suite: CipherSuite, group_info: GroupInfo, ratchet_tree: bytes | None
) -> RatchetTree:
    data = _extension(group_info.extensions, ExtensionType.RATCHET_TREE)
    if data is None:
        data = ratchet_tree
    if data is None:
        raise WelcomeError("no ratchet tree: not in the GroupInfo and none given")
    try:
        return guard_decode(lambda: RatchetTree.decode(suite, data))
    except TreeError as exc:
        raise WelcomeError(f"invalid ratchet tree: {exc}") from exc


def _verify_joined_tree(
    suite: CipherSuite, tree: RatchetTree, context: GroupContext, now: int | None
) -> None:
    """§12.4.3.1: tree hash, parent hashes, leaves and unmerged-leaf structure."""
    if tree.tree_hash() != context.tree_hash:
        raise WelcomeError("ratchet tree hash differs from the GroupInfo's")
    tree.verify_parent_hashes()
    validate_tree_leaves(
        suite, tree, context.group_id, required_capabilities(context.extensions), now
    )
    tree.verify_structure()


# --------------------------------------------------------------------------- saved state
# The saved state is itself a presentation-language struct, declared once like the wire
# structs. It is local data (secrets included), never sent to anyone.

STATE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class _NodeKey(Struct):
    node: int = wire(UINT32)
    public: bytes = wire(OPAQUE)
    private: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class _SavedProposal(Struct):
    reference: bytes = wire(OPAQUE)
    proposal: Proposal = wire(StructWire(Proposal))
    sender: Sender = wire(StructWire(Sender))
    leaf_private_key: bytes | None = wire(Optional(OPAQUE))


@dataclass(frozen=True)
class _EpochPSK(Struct):
    epoch: int = wire(UINT64)
    psk: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class _ExternalPSK(Struct):
    psk_id: bytes = wire(OPAQUE)
    psk: bytes = wire(OPAQUE)


@dataclass(frozen=True)
class _SavedGroup(Struct):
    format_version: int = wire(UINT16)
    context: GroupContext = wire(StructWire(GroupContext))
    ratchet_tree: bytes = wire(OPAQUE)
    own_leaf: int = wire(UINT32)
    node_keys: tuple[_NodeKey, ...] = wire(Vector(StructWire(_NodeKey)))
    signature_priv: bytes = wire(OPAQUE)
    epoch_secrets: tuple[bytes, ...] = wire(Vector(OPAQUE))
    interim_transcript_hash: bytes = wire(OPAQUE)
    confirmation_tag: bytes = wire(OPAQUE)
    secret_tree: SecretTreeState = wire(StructWire(SecretTreeState))
    proposals: tuple[_SavedProposal, ...] = wire(Vector(StructWire(_SavedProposal)))
    resumption_psks: tuple[_EpochPSK, ...] = wire(Vector(StructWire(_EpochPSK)))
    external_psks: tuple[_ExternalPSK, ...] = wire(Vector(StructWire(_ExternalPSK)))
    active: int = wire(UINT8)
    handshake_wire_format: int = wire(UINT16)
    ratchet_tree_in_welcome: int = wire(UINT8)
    reinit: ReInit | None = wire(Optional(StructWire(ReInit)))


_SECRET_FIELDS = tuple(f.name for f in dataclasses.fields(EpochSecrets))


def _encode_state(group: Group) -> bytes:
    state = group._state
    return _SavedGroup(
        STATE_FORMAT_VERSION,
        state.context,
        state.tree.encode(),
        state.own_leaf,
        tuple(_NodeKey(x, pub, priv) for x, (pub, priv) in sorted(state.private.keys.items())),
        state.signature_priv,
        tuple(getattr(state.secrets, name) for name in _SECRET_FIELDS),
        state.interim_transcript_hash,
        state.confirmation_tag,
        state.secret_tree.state(),
        tuple(
            _SavedProposal(ref, c.proposal, c.sender, c.leaf_private_key)
            for ref, c in state.proposals.items()
        ),
        tuple(_EpochPSK(e, p) for e, p in sorted(state.resumption_psks.items())),
        tuple(_ExternalPSK(i, p) for i, p in group._external_psks.items()),
        int(group.active),
        group.handshake_wire_format,
        int(group.ratchet_tree_in_welcome),
        state.reinit,
    ).encode()


def _decode_state(data: bytes) -> Group:
    saved = guard_decode(lambda: _SavedGroup.decode(data))
    if saved.format_version != STATE_FORMAT_VERSION:
        raise DecodeError(f"saved group state format {saved.format_version} is not supported")
    suite = cipher_suite(saved.context.cipher_suite)
    if len(saved.epoch_secrets) != len(_SECRET_FIELDS):
        raise DecodeError("saved group state has the wrong number of epoch secrets")
    secrets = EpochSecrets(**dict(zip(_SECRET_FIELDS, saved.epoch_secrets, strict=True)))
    tree = guard_decode(lambda: RatchetTree.decode(suite, saved.ratchet_tree))
    # Also warms the tree-hash cache (and below the member summary), so the first commit after
    # a restore is as fast as any later one.
    if tree.tree_hash() != saved.context.tree_hash:
        raise DecodeError("saved ratchet tree does not match the saved group context")
    tree.summary()
    if tree.leaf(saved.own_leaf) is None:
        raise DecodeError(f"saved own leaf {saved.own_leaf} is not a member of the saved tree")
    private = PrivateTree(saved.own_leaf, {k.node: (k.public, k.private) for k in saved.node_keys})
    if saved.secret_tree.n_leaves != tree.n_leaves:
        raise DecodeError("saved secret tree does not match the saved ratchet tree")
    secret_tree = SecretTree.from_state(suite, saved.secret_tree)
    state = EpochState(
        suite,
        saved.context,
        tree,
        private,
        saved.signature_priv,
        secrets,
        saved.interim_transcript_hash,
        saved.confirmation_tag,
        secret_tree,
        {
            p.reference: CachedProposal(p.proposal, p.sender, p.leaf_private_key)
            for p in saved.proposals
        },
        {p.epoch: p.psk for p in saved.resumption_psks},
        saved.reinit,
    )
    return Group(
        state,
        external_psks={p.psk_id: p.psk for p in saved.external_psks},
        handshake_wire_format=guard_decode(lambda: WireFormat(saved.handshake_wire_format)),
        ratchet_tree_in_welcome=bool(saved.ratchet_tree_in_welcome),
        active=bool(saved.active),
    )
