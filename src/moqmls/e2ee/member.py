"""One member of an MLS group over MoQT, sans-I/O (draft-jennings-moq-e2ee-mls, DESIGN.md).

The `Member` state machine implements the draft's "Bootstrapping MLS Session", "Joining to MLS
Group", "Processing the Welcome Message", "Processing the MLS Commit Messages" and the removal
flow DESIGN.md fills in. It is fed with inputs (`moqmls.e2ee.events`) and the current time, and
emits actions that an I/O runtime carries out, in the style of aioquic's `QuicConnection`:
`handle(event, now)`, `tick(now)`, `next_deadline()`, `pop_actions()`.

Commit discipline (DESIGN.md "Lock service"): lock(E) -> build the commit without changing
state -> complete(token, hash, commit, welcome) -> only on Committed publish Welcome and Commit
-> merge. Received Commits are applied in epoch order, each checked against the lock service's
winner of its epoch; gaps are filled by FETCH from the winner's track, else from the commit the
lock service stored.

Receipts: the committer publishes the Commit and the Welcome with the lock service's signed
receipt of its Committed answer (`LOCK_RECEIPT_PROPERTY`). A receipt that the `ReceiptPort`
accepts for (our group, the object's epoch, the hash of its bytes, its track's sender) tells
the epoch's winner with no request to the lock service; without one, or with one that does
not verify or match, the member asks the lock service as before, so a forged receipt can
only cost a request, never make a loser canonical.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import (
    NotMemberError,
    ReceiptRejectedError,
    RejectedObjectError,
    WelcomeNotForUsError,
)
from moqmls.e2ee.ports import GroupPort, IdentityPort, KeyPackageInfo, PendingPort, ReceiptPort
from moqmls.e2ee.tracks import (
    BASE_KEY_LABEL,
    LOCK_RECEIPT_PROPERTY,
    GroupTracks,
    Namespace,
    TrackKind,
    sender_track,
    serialize_namespace,
)

#: Buffered commits further than this many epochs ahead are dropped (bounded memory).
MAX_BUFFERED_EPOCHS = 64


def commit_hash(commit: bytes) -> bytes:
    """The hash the lock service records for a commit: SHA-256 of its MoQT object payload."""
    return hashlib.sha256(commit).digest()


@dataclass(frozen=True)
class MemberConfig:
    """Timing of a member; every duration is in seconds."""

    #: wait this long after the first pending change so that concurrent joins batch.
    batch_window: float = 0.005
    #: extra wait per rank (leaf order among non-departing members) before taking the lock.
    rank_stagger: float = 0.05
    #: re-publish our KeyPackage (same bytes, next object) this often: liveness and re-announce.
    #: Every renewal reaches every member, so the relay carries N^2 / interval objects.
    heartbeat_interval: float = 5.0
    #: remove a member we have not heard from for this long; None disables it.
    liveness_timeout: float | None = 30.0
    #: after the relay reports a sender's track ended, remove it unless it reappears in time.
    gone_grace: float = 1.0
    #: start recovering a missing commit after this long.
    gap_timeout: float = 1.0
    #: a joiner looks for its Welcome in the lock service after this long.
    welcome_timeout: float = 1.5
    #: poll the lock service's epoch this often as a safety net; None disables it.
    sync_interval: float | None = 5.0
    #: give up waiting for our removal commit after leaving.
    leave_timeout: float = 5.0
    #: check every commit and Welcome against the lock service's winners.
    verify_winners: bool = True
    #: a member checks a commit's winner after this long, a little more per rank (joiners
    #: check at once).
    verify_delay: float = 0.02
    #: the gap timer backs off up to this many gap_timeouts between lock-service queries.
    max_gap_backoff: int = 5
    #: ask the lock service for its receipt keys again after this long when it failed.
    keys_retry: float = 2.0


class Phase(enum.Enum):
    IDLE = "idle"
    BOOTSTRAP = "bootstrap"
    WAITING = "waiting"
    MEMBER = "member"
    LEAVING = "leaving"
    ENDED = "ended"


@dataclass
class _Locking:
    epoch: int


@dataclass
class _Completing:
    epoch: int
    token: str
    pending: PendingPort
    digest: bytes
    added: tuple[str, ...]
    removed: tuple[str, ...]
    unsure: bool = False


@dataclass
class _Candidate:
    sender: str
    payload: bytes
    received: float


@dataclass
class _Provisional:
    """A group joined from a Welcome, adopted once its committer is confirmed."""

    group: GroupPort
    sender: str
    epoch: int


@dataclass
class MemberStats:
    commits_made: int = 0
    commits_applied: int = 0
    recoveries_fetch: int = 0
    recoveries_lock: int = 0
    rejoins: int = 0
    dropped: int = 0
    lock_conflicts: int = 0
    #: winners learnt from a verified receipt (no lock-service request).
    receipts_verified: int = 0
    #: objects with a receipt that did not verify or match (the lock service was asked).
    receipts_rejected: int = 0
    #: Commit and Welcome objects that came without a receipt, or before the keys.
    receipts_missing: int = 0


@dataclass
class Member:
    """The sans-I/O state machine of one group member."""

    identity: IdentityPort
    tracks: GroupTracks
    config: MemberConfig = field(default_factory=MemberConfig)
    media: list[Namespace] = field(default_factory=list)
    #: checks the lock service's receipts; None: every winner is asked of the lock service.
    receipts: ReceiptPort | None = None

    def __post_init__(self) -> None:
        self.phase = Phase.IDLE
        self.group: GroupPort | None = None
        self.stats = MemberStats()
        self._actions: list[ev.Action] = []
        self._ops: dict[int, ev.LockOp] = {}
        self._fetches: dict[int, tuple[int, ev.Winner]] = {}
        self._next_id = 1
        self._timers: dict[str, float] = {}
        self._kp_object = 0
        self._proposal_object = 0
        self._kps: dict[str, KeyPackageInfo] = {}
        self._unchecked_kps: dict[str, bytes] = {}
        self._retired: set[bytes] = set()
        self._leaving: set[str] = set()
        self._app_removes: set[str] = set()
        self._vanished: set[str] = set()
        self._last_seen: dict[str, float] = {}
        self._suspect: dict[str, float] = {}
        self._buffer: dict[int, dict[bytes, _Candidate]] = {}
        self._proposals: dict[int, list[ev.ObjectReceived]] = {}
        self._winners: dict[int, ev.Winner] = {}
        self._stored: dict[int, bytes] = {}
        self._target = 0
        self._commit: _Locking | _Completing | None = None
        self._status_inflight: set[int | None] = set()
        self._op_sent: dict[int, float] = {}
        self._fetch_inflight: set[int] = set()
        self._fetch_failures: set[int] = set()
        self._join_epoch = 0
        self._welcome_tried: set[int] = set()
        self._provisional: list[_Provisional] = []
        self._member_keys: dict[str, bytes] = {}
        self._create_token: str | None = None
        self._recovery_attempts = 0
        self._service_keys: dict[bytes, bytes] = {}
        self._now = 0.0

    # ------------------------------------------------------------ public API

    @property
    def sender_id(self) -> str:
        return self.identity.sender_id

    @property
    def epoch(self) -> int:
        if self.group is None:
            raise NotMemberError(f"{self.sender_id} is not a member")
        return self.group.epoch

    @property
    def is_member(self) -> bool:
        return self.group is not None and self.phase in (Phase.MEMBER, Phase.LEAVING)

    def members(self) -> tuple[str, ...]:
        return () if self.group is None else tuple(m.identity for m in self.group.members())

    def pop_actions(self) -> list[ev.Action]:
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def start(self, now: float) -> None:
        """Bootstrapping (§"Bootstrapping MLS Session"): subscribe, publish KeyPackage, lock."""
        self._now = now
        for kind in TrackKind:
            self._emit(ev.Subscribe(self.tracks.namespace(kind)))
        self._bootstrap(now)
        self._fetch_service_keys()
        self._timers["heartbeat"] = now + self.config.heartbeat_interval
        if self.config.liveness_timeout is not None:
            self._timers["liveness"] = now + self.config.heartbeat_interval

    def reconnected(self, now: float) -> None:
        """The MoQT session was re-established: re-subscribe, re-announce, re-sync."""
        self._now = now
        kinds = (
            list(TrackKind)
            if not self.is_member
            else [
                TrackKind.KEYPACKAGE,
                TrackKind.COMMIT,
                TrackKind.PROPOSAL,
            ]
        )
        for kind in kinds:
            self._emit(ev.Subscribe(self.tracks.namespace(kind)))
        if self.phase is not Phase.ENDED:
            self._publish_key_package()
            self._query_status(None)

    def add_media_namespace(self, namespace: Namespace) -> None:
        """Key a media namespace from now on (DESIGN.md "Media keys")."""
        if namespace in self.media:
            return
        self.media.append(namespace)
        if self.is_member and self.group is not None:
            self._install_key(self.group, namespace)

    def leave(self, now: float) -> None:
        """Ask to be removed: a SelfRemove proposal on our Proposal track, until committed."""
        self._now = now
        if self.group is None or self.phase is not Phase.MEMBER:
            self._end("closed")
            return
        if len(self.group.members()) == 1:
            self._end("left")
            return
        self.phase = Phase.LEAVING
        self._timers.pop("commit", None)
        self._timers["leave"] = now + self.config.leave_timeout
        self._publish_leave()

    def remove(self, sender: str, now: float) -> None:
        """The application removes a member by sender-id."""
        self._now = now
        self._app_removes.add(sender)
        self._schedule_commit(now)

    def close(self) -> None:
        if self.phase is not Phase.ENDED:
            self._end("closed")

    def handle(self, event: ev.Input, now: float) -> None:
        """Feed one input."""
        self._now = now
        if self.phase is Phase.ENDED:
            return
        if isinstance(event, ev.ObjectReceived):
            self._on_object(event, now)
        elif isinstance(event, ev.LockAnswer):
            self._on_lock_answer(event, now)
        elif isinstance(event, ev.FetchAnswer):
            self._on_fetch_answer(event, now)
        else:
            self._suspect[event.sender] = now

    def tick(self, now: float) -> None:
        """Run every timer whose deadline has passed."""
        self._now = now
        due = sorted((t, name) for name, t in self._timers.items() if t <= now)
        for _, name in due:
            if self._timers.pop(name, None) is None or self.phase is Phase.ENDED:
                continue
            getattr(self, f"_timer_{name}")(now)

    # ------------------------------------------------------------ plumbing

    def _emit(self, action: ev.Action) -> None:
        self._actions.append(action)

    def _log(self, message: str, level: str = "info") -> None:
        self._emit(ev.Log(level, f"{self.sender_id}: {message}"))

    def _drop(self, what: str, why: str) -> None:
        self.stats.dropped += 1
        self._log(f"dropped {what}: {why}", "warning")

    def _lock(self, op: ev.LockOp) -> int:
        op_id = self._next_id
        self._next_id += 1
        self._ops[op_id] = op
        self._op_sent[op_id] = self._now
        self._emit(ev.LockCall(op_id, op))
        return op_id

    def _query_status(self, epoch: int | None, messages: bool = True) -> None:
        """Ask the lock service; `messages=False` when only the winners are needed."""
        if epoch in self._status_inflight:
            return
        self._status_inflight.add(epoch)
        self._lock(ev.QueryStatus(epoch, messages))

    def _publish(
        self, kind: TrackKind, group: int, obj: int, payload: bytes, receipt: bytes | None = None
    ) -> None:
        # Every object we publish is alone in its MoQT group: closing its subgroup stream
        # at once keeps the QUIC streams open at the relay independent of the group size
        # (aioquic walks every open stream for each packet it sends).
        properties = () if receipt is None else ((LOCK_RECEIPT_PROPERTY, receipt),)
        self._emit(
            ev.Publish(
                self.tracks.namespace(kind),
                sender_track(self.sender_id),
                group,
                obj,
                payload,
                end_of_group=True,
                properties=properties,
            )
        )

    def _publish_key_package(self) -> None:
        """Group 0 object 0 at joining (§"KeyPackage"); each renewal is the next group's
        object 0 rather than the next object of group 0, so that no stream stays open."""
        self._publish(TrackKind.KEYPACKAGE, self._kp_object, 0, self.identity.key_package())
        self._kp_object += 1

    def _publish_leave(self) -> None:
        assert self.group is not None
        self._publish(
            TrackKind.PROPOSAL, self.group.epoch, self._proposal_object, self.group.leave_proposal()
        )
        self._proposal_object += 1

    def _end(self, reason: str) -> None:
        self.phase = Phase.ENDED
        self.group = None
        self._timers.clear()
        self._log(f"ended: {reason}")
        self._emit(ev.Ended(reason))

    # ------------------------------------------------------------ bootstrapping

    def _bootstrap(self, now: float) -> None:
        self.phase = Phase.BOOTSTRAP
        self._publish_key_package()
        self._lock(ev.CreateOrJoin())

    def _on_create_or_join(self, result: ev.LockResult, now: float) -> None:
        if self.phase is not Phase.BOOTSTRAP:
            return
        if isinstance(result, ev.Create):
            self._create_token = result.token
            group = self.identity.create_group(self.tracks.group.encode())
            self._provisional = [_Provisional(group, self.sender_id, -1)]
            self._lock(ev.Complete(result.token, commit_hash(b""), b"", None))
        elif isinstance(result, ev.Join):
            self.phase = Phase.WAITING
            self._join_epoch = result.epoch
            self._target = max(self._target, result.epoch)
            self._timers["welcome"] = now + self.config.welcome_timeout
            self._retry_provisional(now)
        elif isinstance(result, ev.Locked):
            self._timers["bootstrap"] = now + max(result.retry_after, 0.01)
        else:
            self._log(f"create_or_join failed: {result}", "warning")
            self._timers["bootstrap"] = now + 0.25

    def _on_create_complete(self, result: ev.LockResult, now: float) -> None:
        created = [p for p in self._provisional if p.epoch == -1]
        self._provisional = [p for p in self._provisional if p.epoch != -1]
        if not created or self.phase is not Phase.BOOTSTRAP:
            return
        if isinstance(result, ev.Committed):
            self._adopt(created[0].group, "created", self.sender_id, now)
        else:
            self._log(f"group creation not confirmed ({result}); starting over", "warning")
            self._timers["bootstrap"] = now + 0.05

    def _timer_bootstrap(self, now: float) -> None:
        if self.phase is Phase.BOOTSTRAP:
            self._lock(ev.CreateOrJoin())

    def _timer_heartbeat(self, now: float) -> None:
        if self.phase in (Phase.BOOTSTRAP, Phase.WAITING, Phase.MEMBER):
            self._publish_key_package()
        self._timers["heartbeat"] = now + self.config.heartbeat_interval

    def _timer_welcome(self, now: float) -> None:
        """A joiner that saw no Welcome looks for it in the lock service's stored messages."""
        if self.phase is not Phase.WAITING:
            return
        self._query_status(None)
        # nobody may have seen our KeyPackage (published before they subscribed, or lost):
        # announce it again rather than wait for the next liveness renewal
        self._publish_key_package()
        self._timers["welcome"] = now + self.config.welcome_timeout

    # ------------------------------------------------------------ objects

    def _on_object(self, obj: ev.ObjectReceived, now: float) -> None:
        if obj.kind is TrackKind.KEYPACKAGE:
            self._on_key_package(obj, now)
        elif obj.kind is TrackKind.COMMIT:
            self._on_commit(obj, now)
        elif obj.kind is TrackKind.WELCOME:
            self._on_welcome(obj.sender, obj.group, obj.payload, now, obj.receipt)
        else:
            self._on_proposal(obj, now)

    def _on_key_package(self, obj: ev.ObjectReceived, now: float) -> None:
        """A KeyPackage (or its liveness renewal) on `keypackage | sender` (§"KeyPackage")."""
        self._last_seen[obj.sender] = now
        self._suspect.pop(obj.sender, None)
        self._vanished.discard(obj.sender)
        if obj.sender == self.sender_id:
            return
        known = self._kps.get(obj.sender)
        if known is not None and known.data == obj.payload:
            return
        if not self.is_member:
            # Only a member can commit, and a joiner is offered every member's KeyPackage
            # at once: validating them (two signatures each) while it waits for its
            # Welcome would delay the join; they are checked once it is in.
            self._unchecked_kps[obj.sender] = obj.payload
            return
        self._accept_key_package(obj.sender, obj.payload, now)

    def _accept_key_package(self, sender: str, payload: bytes, now: float) -> None:
        """Validate a KeyPackage and count it as pending work (§"KeyPackage")."""
        try:
            info = self.identity.check_key_package(payload)
        except RejectedObjectError as exc:
            self._drop(f"KeyPackage on track {sender!r}", str(exc))
            return
        if info.identity != sender:
            self._drop(f"KeyPackage on track {sender!r}", f"identity is {info.identity!r}")
            return
        if info.signature_key in self._retired:
            return
        self._kps[sender] = info
        self._schedule_commit(now)

    def _timer_keypackages(self, now: float) -> None:
        """Check the KeyPackages that arrived before we were a member."""
        if not self.is_member:
            return
        unchecked, self._unchecked_kps = self._unchecked_kps, {}
        for sender, payload in unchecked.items():
            known = self._kps.get(sender)
            if known is None or known.data != payload:
                self._accept_key_package(sender, payload, now)

    def _on_proposal(self, obj: ev.ObjectReceived, now: float) -> None:
        """A leave request (SelfRemove in a PrivateMessage) on `proposal | sender`."""
        if self.group is None or not self.is_member or obj.sender == self.sender_id:
            return
        try:
            epoch = self.group.commit_epoch(obj.payload)
        except RejectedObjectError as exc:
            self._drop(f"proposal on track {obj.sender!r}", str(exc))
            return
        if epoch > self.group.epoch:
            # sent in an epoch we have not reached yet: read it when we get there
            if epoch <= self.group.epoch + MAX_BUFFERED_EPOCHS:
                self._proposals.setdefault(epoch, []).append(obj)
            return
        try:
            leaver = self.group.read_leave(obj.payload)
        except RejectedObjectError as exc:
            self._drop(f"proposal on track {obj.sender!r}", str(exc))
            return
        if leaver != obj.sender:
            self._drop(f"proposal on track {obj.sender!r}", f"it is signed by {leaver!r}")
            return
        self._log(f"{leaver} asks to leave")
        self._leaving.add(leaver)
        self._schedule_commit(now)

    def _on_welcome(
        self,
        sender: str,
        epoch: int,
        payload: bytes,
        now: float,
        receipt: bytes | None = None,
    ) -> None:
        """§"Processing the Welcome Message": join, or ignore Welcomes not for us.

        A Welcome object (not one from the lock service's store) may bring its commit's
        receipt: checked only once the Welcome proved to be for us.
        """
        if self.phase not in (Phase.BOOTSTRAP, Phase.WAITING):
            return
        try:
            group = self.identity.join(payload)
        except WelcomeNotForUsError:
            return
        except RejectedObjectError as exc:
            self._drop(f"Welcome on track {sender!r}", str(exc))
            return
        if group.group_id != self.tracks.group.encode():
            self._drop(f"Welcome on track {sender!r}", "for another group")
            return
        if sender:  # from the relay, not the lock service's stored copy
            self._learn_winner("Welcome", epoch, sender, receipt, None)
        self._provisional.append(_Provisional(group, sender, epoch))
        self._retry_provisional(now)

    def _retry_provisional(self, now: float) -> None:
        """Adopt a joined group once the lock service confirms its committer."""
        if self.phase is not Phase.WAITING:
            return
        for prov in list(self._provisional):
            if prov.epoch < 0:
                continue
            if not self.config.verify_winners:
                self._adopt(prov.group, "welcomed", prov.sender, now)
                return
            winner = self._winners.get(prov.epoch)
            if winner is None:
                self._query_status(prov.epoch, messages=False)
            elif winner.committer == prov.sender:
                self._adopt(prov.group, "welcomed", prov.sender, now)
                return
            else:
                self._provisional.remove(prov)
                self._drop(f"Welcome from {prov.sender!r}", "not the epoch's winning committer")

    def _adopt(self, group: GroupPort, how: str, committer: str, now: float) -> None:
        self.group = group
        self.phase = Phase.MEMBER
        self._provisional.clear()
        self._create_token = None
        for name in ("welcome", "bootstrap"):
            self._timers.pop(name, None)
        self._emit(ev.Unsubscribe(self.tracks.namespace(TrackKind.WELCOME)))
        for epoch in [e for e in self._buffer if e < group.epoch]:
            del self._buffer[epoch]
        self._member_keys = {}
        self._entered(how, committer, b"", now)
        if self._unchecked_kps:
            # after this step's actions (keys installed, held media decrypted) are out
            self._timers["keypackages"] = now
        if self.config.sync_interval is not None:
            self._timers["sync"] = now + self.config.sync_interval
        self._advance(now)

    # ------------------------------------------------------------ commits received

    def _on_commit(self, obj: ev.ObjectReceived, now: float) -> None:
        """§"Processing the MLS Commit Messages": in epoch order, winners only."""
        if not obj.payload or obj.object != 0:
            self._drop(f"commit object {obj.group}/{obj.object} of {obj.sender!r}", "malformed")
            return
        if self.group is not None and obj.group < self.group.epoch:
            return
        if self.group is not None:
            try:
                claimed = self.group.commit_epoch(obj.payload)
            except RejectedObjectError as exc:
                self._drop(f"commit object on track {obj.sender!r}", str(exc))
                return
            if claimed != obj.group:
                self._drop(f"commit on track {obj.sender!r}", f"MoQT group {obj.group} != epoch")
                return
        if obj.group > max(self._target, self.group.epoch if self.group else 0) + (
            MAX_BUFFERED_EPOCHS
        ):
            self._drop(f"commit for epoch {obj.group}", "too far ahead")
            return
        digest = commit_hash(obj.payload)
        self._buffer.setdefault(obj.group, {})[digest] = _Candidate(obj.sender, obj.payload, now)
        self._learn_winner("Commit", obj.group, obj.sender, obj.receipt, digest)
        if (
            self.phase is Phase.WAITING
            and self.config.verify_winners
            and obj.group not in self._winners
        ):
            # our Welcome may be right behind this Commit: learn the epoch's winner now
            self._query_status(obj.group, messages=False)
        if self.is_member:
            self._advance(now)

    def _learn_winner(
        self, what: str, epoch: int, sender: str, receipt: bytes | None, digest: bytes | None
    ) -> None:
        """Record the epoch's winner if the object's receipt proves it; else only log why."""
        if self.receipts is None or not self.config.verify_winners or epoch in self._winners:
            return
        where = f"{what} of epoch {epoch} from {sender!r}"
        if receipt is None or not self._service_keys:
            self.stats.receipts_missing += 1
            why = "no receipt" if receipt is None else "no lock-service key yet"
            self._log(f"{where}: {why}; its winner is asked of the lock service")
            return
        try:
            proven = self.receipts.check(
                receipt,
                self._service_keys,
                group=self.tracks.group,
                epoch=epoch,
                committer=sender,
                commit_hash=digest,
            )
        except ReceiptRejectedError as exc:
            self.stats.receipts_rejected += 1
            self._log(f"{where}: receipt rejected ({exc}); asking the lock service", "warning")
            return
        self.stats.receipts_verified += 1
        self._winners[epoch] = ev.Winner(proven, sender)

    def _fetch_service_keys(self) -> None:
        """Once, off the critical path: the keys the lock service signs receipts with."""
        if self.receipts is not None and self.config.verify_winners:
            self._lock(ev.FetchServiceKeys())

    def _on_service_keys(self, result: ev.LockResult, now: float) -> None:
        if isinstance(result, ev.ServiceKeys):
            self._service_keys = dict(result.keys)
        else:
            self._log(f"no lock-service receipt keys ({result}); retrying", "warning")
            self._timers["keys"] = now + self.config.keys_retry

    def _timer_keys(self, now: float) -> None:
        self._fetch_service_keys()

    def _advance(self, now: float) -> None:
        """Apply buffered commits in epoch order while their winner is known."""
        while self.group is not None and self.is_member:
            epoch = self.group.epoch
            candidates = self._buffer.get(epoch)
            if not candidates:
                break
            choice = self._choose(epoch, candidates)
            if choice is None:
                break
            digest, cand = choice
            if not self._apply(epoch, digest, cand, now):
                return
        self._after_progress(now)

    def _choose(
        self, epoch: int, candidates: dict[bytes, _Candidate]
    ) -> tuple[bytes, _Candidate] | None:
        winner = self._winners.get(epoch)
        if winner is None:
            if not self.config.verify_winners and len(candidates) == 1:
                return next(iter(candidates.items()))
            self._schedule_verify(epoch)
            return None
        for digest in [d for d in candidates if d != winner.commit_hash]:
            self._drop(
                f"commit for epoch {epoch} from {candidates[digest].sender!r}", "not the winner"
            )
            del candidates[digest]
        cand = candidates.get(winner.commit_hash)
        return None if cand is None else (winner.commit_hash, cand)

    def _schedule_verify(self, epoch: int) -> None:
        """Ask for the epoch's winner after a short delay that grows with our rank.

        Every member checks every commit; spreading the checks lets the lock service answer
        the one that matters first (a joiner's, which asks at once) instead of N at a time.
        """
        if "verify" in self._timers or epoch in self._status_inflight:
            return
        delay = self.config.verify_delay * (1 + self._rank() / 8)
        self._timers["verify"] = self._now + delay

    def _timer_verify(self, now: float) -> None:
        if self.group is not None and self.is_member:
            epoch = self.group.epoch
            if self._buffer.get(epoch) and epoch not in self._winners:
                # one epoch's record is the cheap answer; the history covers every epoch
                # we hold commits for in one request when we are more than one behind
                ahead = any(e > epoch for e in self._buffer)
                self._query_status(None if ahead else epoch, messages=False)

    def _apply(self, epoch: int, digest: bytes, cand: _Candidate, now: float) -> bool:
        assert self.group is not None
        try:
            outcome = self.group.apply_commit(cand.payload)
        except RejectedObjectError as exc:
            self._buffer.get(epoch, {}).pop(digest, None)
            self._drop(f"winning commit for epoch {epoch}", str(exc))
            self._rejoin(now, "cannot apply the canonical commit")
            return False
        self._buffer.pop(epoch, None)
        self.stats.commits_applied += 1
        if outcome.removed_me:
            self._end("left" if self.phase is Phase.LEAVING else "removed")
            return False
        self._entered("applied", outcome.committer, digest, now)
        return True

    def _behind(self) -> bool:
        """The lock service says, or an unverified commit hints, that we are behind."""
        if self.group is None:
            return False
        epoch = self.group.epoch
        return self._target > epoch or any(e >= epoch for e in self._buffer)

    def _after_progress(self, now: float) -> None:
        if self.group is None:
            return
        if self._behind():
            self._timers.setdefault("gap", now + self.config.gap_timeout)
        else:
            self._timers.pop("gap", None)
            self._recovery_attempts = 0

    def _entered(self, how: str, committer: str, digest: bytes, now: float) -> None:
        """Bookkeeping after every epoch change: keys, membership, pending work."""
        group = self.group
        assert group is not None
        members = {m.identity: m.signature_key for m in group.members()}
        for gone in set(self._member_keys) - set(members):
            self._retire(gone, self._member_keys[gone])
        for ident in members:
            self._last_seen.setdefault(ident, now)
        self._member_keys = members
        self._target = max(self._target, group.epoch)
        for namespace in self.media:
            self._install_key(group, namespace)
        self._emit(
            ev.EpochEntered(
                group.epoch,
                group.epoch_authenticator(),
                tuple(members),
                committer,
                how,
                digest,
            )
        )
        if self.phase is Phase.LEAVING:
            self._publish_leave()
        for epoch in [e for e in self._proposals if e <= group.epoch]:
            for obj in self._proposals.pop(epoch):
                self._on_proposal(obj, now)
        # A commit timer set in an earlier epoch (a rank delay for work now done, or a
        # lease-long retry after Locked) would keep the lowest-ranked member from taking
        # the next lock first: rank delays count from the epoch change.
        self._timers.pop("commit", None)
        self._schedule_commit(now)

    def _retire(self, sender: str, signature_key: bytes) -> None:
        """A member left the group: never re-add it from an old KeyPackage."""
        self._retired.add(signature_key)
        kp = self._kps.get(sender)
        if kp is not None and kp.signature_key == signature_key:
            del self._kps[sender]
        for bucket in (self._leaving, self._app_removes, self._vanished):
            bucket.discard(sender)
        self._last_seen.pop(sender, None)
        self._suspect.pop(sender, None)

    def _install_key(self, group: GroupPort, namespace: Namespace) -> None:
        """track_base_key = MLS-Exporter(label, serialized namespace, Nh) (DESIGN.md)."""
        key = group.export(BASE_KEY_LABEL, serialize_namespace(namespace), group.hash_length)
        self._emit(ev.InstallKey(namespace, group.epoch, key))

    # ------------------------------------------------------------ recovery

    def _timer_gap(self, now: float) -> None:
        """A commit we know exists has not arrived: ask the lock service for its winner."""
        if self.group is None or not self.is_member or not self._behind():
            return
        self._recovery_attempts += 1
        self._status_inflight.discard(self.group.epoch)
        self._query_status(self.group.epoch)
        backoff = min(1 + self._recovery_attempts, self.config.max_gap_backoff)
        self._timers["gap"] = now + self.config.gap_timeout * backoff

    def _timer_sync(self, now: float) -> None:
        if self.is_member and self.config.sync_interval is not None:
            self._query_status(None)
            self._timers["sync"] = now + self.config.sync_interval

    def _on_status(self, query: ev.QueryStatus, status: ev.Status, sent: float, now: float) -> None:
        """`sent`: when the query left; the answer reflects the lock service after that."""
        self._status_inflight.discard(query.epoch)
        self._winners.update(status.winners)
        if status.exists:
            self._target = max(self._target, status.epoch)
        if status.stored_epoch is not None and status.commit is not None:
            self._stored[status.stored_epoch] = status.commit
        if isinstance(self._commit, _Completing) and self._commit.unsure:
            self._resolve_unsure(now)
        if self.phase is Phase.WAITING:
            self._status_for_joiner(status, now)
            return
        if self.group is None or not self.is_member:
            return
        epoch = self.group.epoch
        if status.exists and status.epoch_is_current and status.epoch <= epoch:
            self._drop_unconfirmed(epoch, sent)
        winner = self._winners.get(epoch)
        if winner is not None and winner.commit_hash not in self._buffer.get(epoch, {}):
            stored = self._stored.get(epoch)
            usable = stored is not None and commit_hash(stored) == winner.commit_hash
            if stored is not None and usable and epoch in self._fetch_failures:
                self.stats.recoveries_lock += 1
                self._buffer.setdefault(epoch, {})[winner.commit_hash] = _Candidate(
                    winner.committer, stored, now
                )
            elif epoch in self._fetch_failures and query.epoch == epoch:
                self._rejoin(now, f"the commit of epoch {epoch} is on neither relay nor lock")
                return
            else:
                self._recover(epoch, winner)
        elif winner is None and self._forgotten(query, status, epoch):
            self._rejoin(now, f"the lock service no longer knows epoch {epoch}")
            return
        self._advance(now)

    @staticmethod
    def _forgotten(query: ev.QueryStatus, status: ev.Status, epoch: int) -> bool:
        """The group moved past `epoch` but the lock service kept no record of it."""
        return (
            query.epoch == epoch
            and query.messages
            and status.exists
            and status.epoch > epoch
            and status.commit is None
            and epoch not in status.winners
        )

    def _drop_unconfirmed(self, epoch: int, sent: float) -> None:
        """The group is at our epoch: commits for it received before we asked are not real."""
        for e in [e for e in self._buffer if e >= epoch]:
            bucket = self._buffer[e]
            for digest in [d for d, c in bucket.items() if c.received < sent]:
                self._drop(f"commit for epoch {e} from {bucket[digest].sender!r}", "never won")
                del bucket[digest]
            if not bucket:
                del self._buffer[e]

    def _status_for_joiner(self, status: ev.Status, now: float) -> None:
        if status.stored_epoch is not None and status.welcome is not None:
            winner = self._winners.get(status.stored_epoch)
            sender = winner.committer if winner is not None else ""
            self._on_welcome(sender, status.stored_epoch, status.welcome, now)
        if status.stored_epoch is None and status.exists:
            for epoch in range(self._join_epoch, status.epoch):
                if epoch not in self._welcome_tried:
                    self._welcome_tried.add(epoch)
                    self._query_status(epoch)
        self._retry_provisional(now)

    def _recover(self, epoch: int, winner: ev.Winner) -> None:
        """FETCH the winner's commit from its track; the lock service's copy is the fallback."""
        if epoch in self._fetch_inflight:
            return
        self._fetch_inflight.add(epoch)
        fetch_id = self._next_id
        self._next_id += 1
        self._fetches[fetch_id] = (epoch, winner)
        self._emit(
            ev.Fetch(
                fetch_id,
                self.tracks.namespace(TrackKind.COMMIT),
                sender_track(winner.committer),
                epoch,
                0,
            )
        )

    def _on_fetch_answer(self, answer: ev.FetchAnswer, now: float) -> None:
        entry = self._fetches.pop(answer.fetch_id, None)
        if entry is None:
            return
        epoch, winner = entry
        self._fetch_inflight.discard(epoch)
        payload = answer.payload
        if payload is not None and commit_hash(payload) == winner.commit_hash:
            self.stats.recoveries_fetch += 1
        else:
            payload = self._stored.get(epoch)
            if payload is None or commit_hash(payload) != winner.commit_hash:
                self._log(f"commit of epoch {epoch} not fetched; asking the lock service")
                self._fetch_failures.add(epoch)
                self._status_inflight.discard(epoch)
                self._query_status(epoch)
                return
            self.stats.recoveries_lock += 1
        self._buffer.setdefault(epoch, {})[winner.commit_hash] = _Candidate(
            winner.committer, payload, now
        )
        self._advance(now)

    def _rejoin(self, now: float, why: str) -> None:
        """Our state cannot be recovered: join again with a fresh KeyPackage."""
        self._log(f"re-joining: {why}", "warning")
        self.stats.rejoins += 1
        self.identity.renew()
        self.group = None
        self._commit = None
        self._buffer.clear()
        self._provisional.clear()
        self._member_keys = {}
        self._welcome_tried.clear()
        self._recovery_attempts = 0
        for name in ("gap", "sync", "commit"):
            self._timers.pop(name, None)
        self._emit(ev.Subscribe(self.tracks.namespace(TrackKind.WELCOME)))
        self._bootstrap(now)

    # ------------------------------------------------------------ committing

    def _removals(self) -> set[str]:
        assert self.group is not None
        members = {m.identity for m in self.group.members()}
        wanted = self._leaving | self._app_removes | self._vanished
        return {s for s in wanted if s in members and s != self.sender_id}

    def _work(self) -> tuple[list[KeyPackageInfo], list[str]]:
        """Pending joins (KeyPackages of non-members or re-joiners) and removals."""
        assert self.group is not None
        keys = {m.identity: m.signature_key for m in self.group.members()}
        removes = self._removals()
        joins: list[KeyPackageInfo] = []
        for sender, kp in self._kps.items():
            if sender == self.sender_id:
                continue
            if sender not in keys:
                joins.append(kp)
            elif keys[sender] != kp.signature_key:
                joins.append(kp)
                removes.add(sender)
        return joins, sorted(removes)

    def _rank(self) -> int:
        assert self.group is not None
        departing = self._removals()
        eligible = [m.identity for m in self.group.members() if m.identity not in departing]
        return eligible.index(self.sender_id) if self.sender_id in eligible else len(eligible)

    def _schedule_commit(self, now: float) -> None:
        if self.phase is not Phase.MEMBER or self.group is None or self._commit is not None:
            return
        if "commit" in self._timers:
            return
        joins, removes = self._work()
        if joins or removes:
            delay = self.config.batch_window + self._rank() * self.config.rank_stagger
            self._timers["commit"] = now + delay

    def _timer_commit(self, now: float) -> None:
        if self.phase is not Phase.MEMBER or self.group is None or self._commit is not None:
            return
        if self._target > self.group.epoch:
            return  # catch up first; _entered reschedules
        joins, removes = self._work()
        if joins or removes:
            self._commit = _Locking(self.group.epoch)
            self._lock(ev.AcquireLock(self.group.epoch))

    def _on_lock_result(self, op: ev.AcquireLock, result: ev.LockResult, now: float) -> None:
        if not isinstance(self._commit, _Locking) or self._commit.epoch != op.epoch:
            if isinstance(result, ev.Acquired):
                self._lock(ev.Release(result.token))
            return
        self._commit = None
        if isinstance(result, ev.Acquired):
            self._build(op.epoch, result.token, now)
        elif isinstance(result, ev.Locked):
            self.stats.lock_conflicts += 1
            self._timers["commit"] = now + max(result.retry_after, self.config.batch_window)
        elif isinstance(result, ev.Stale):
            self.stats.lock_conflicts += 1
            self._target = max(self._target, result.current)
            self._after_progress(now)
        else:
            self._timers["commit"] = now + 0.2

    def _build(self, epoch: int, token: str, now: float) -> None:
        group = self.group
        if group is None or self.phase is not Phase.MEMBER or group.epoch != epoch:
            self._lock(ev.Release(token))
            return
        joins, removes = self._work()
        if not joins and not removes:
            self._lock(ev.Release(token))
            return
        try:
            pending = group.build_commit([kp.data for kp in joins], removes)
        except RejectedObjectError as exc:
            self._log(f"cannot build commit: {exc}; dropping its KeyPackages", "warning")
            for kp in joins:
                self._retire(kp.identity, kp.signature_key)
            self._lock(ev.Release(token))
            self._schedule_commit(now)
            return
        digest = commit_hash(pending.commit)
        self._commit = _Completing(
            epoch, token, pending, digest, tuple(kp.identity for kp in joins), tuple(removes)
        )
        self._lock(ev.Complete(token, digest, pending.commit, pending.welcome))

    def _on_complete(self, result: ev.LockResult, now: float) -> None:
        state = self._commit
        if not isinstance(state, _Completing):
            return
        if isinstance(result, ev.Committed):
            self._committed(state, now, result.receipt)
        elif isinstance(result, ev.LockFailed):
            # The complete may or may not have happened: ask rather than guess.
            state.unsure = True
            self._status_inflight.discard(state.epoch)
            self._query_status(state.epoch)
        else:
            self._log(f"commit for epoch {state.epoch} fenced; discarded", "warning")
            self._commit = None
            self._schedule_commit(now)

    def _resolve_unsure(self, now: float) -> None:
        state = self._commit
        assert isinstance(state, _Completing)
        winner = self._winners.get(state.epoch)
        if winner is not None and winner.commit_hash == state.digest:
            self._committed(state, now, winner.receipt)
        else:
            self._commit = None
            self._lock(ev.Release(state.token))
            self._schedule_commit(now)

    def _committed(self, state: _Completing, now: float, receipt: bytes | None = None) -> None:
        """Only now publish the Welcome and the Commit (MoQT group = epoch), then merge.

        Both carry the lock service's receipt (after an unsure complete, the one in the epoch's
        record, when the service has one): receivers then need not ask who won.
        """
        self._commit = None
        group = self.group
        if group is None or group.epoch != state.epoch:
            return
        if state.pending.welcome is not None:
            self._publish(TrackKind.WELCOME, state.epoch, 0, state.pending.welcome, receipt)
        self._publish(TrackKind.COMMIT, state.epoch, 0, state.pending.commit, receipt)
        group.merge(state.pending)
        self._winners[state.epoch] = ev.Winner(state.digest, self.sender_id)
        self._buffer.pop(state.epoch, None)
        self.stats.commits_made += 1
        self._entered("committed", self.sender_id, state.digest, now)
        self._advance(now)

    # ------------------------------------------------------------ liveness

    def _timer_liveness(self, now: float) -> None:
        timeout = self.config.liveness_timeout
        if timeout is not None:
            self._timers["liveness"] = now + self.config.heartbeat_interval
        if self.phase is not Phase.MEMBER or self.group is None or timeout is None:
            return
        before = set(self._vanished)
        for member in self.group.members():
            ident = member.identity
            if ident == self.sender_id:
                continue
            seen = self._last_seen.get(ident, now)
            gone = self._suspect.get(ident)
            if now - seen > timeout or (
                gone is not None and now - gone > self.config.gone_grace and seen <= gone
            ):
                self._vanished.add(ident)
        for ident in self._vanished - before:
            self._log(f"{ident} vanished; removing it")
        self._schedule_commit(now)

    def _timer_leave(self, now: float) -> None:
        if self.phase is Phase.LEAVING:
            self._end("left-timeout")

    # ------------------------------------------------------------ lock answers

    def _on_lock_answer(self, answer: ev.LockAnswer, now: float) -> None:
        op = self._ops.pop(answer.op_id, None)
        sent = self._op_sent.pop(answer.op_id, now)
        result = answer.result
        if op is None:
            return
        if isinstance(op, ev.CreateOrJoin):
            self._on_create_or_join(result, now)
        elif isinstance(op, ev.AcquireLock):
            self._on_lock_result(op, result, now)
        elif isinstance(op, ev.Complete):
            if op.token == self._create_token:
                self._on_create_complete(result, now)
            else:
                self._on_complete(result, now)
        elif isinstance(op, ev.QueryStatus):
            if isinstance(result, ev.Status):
                self._on_status(op, result, sent, now)
            else:
                self._status_inflight.discard(op.epoch)
        elif isinstance(op, ev.FetchServiceKeys):
            self._on_service_keys(result, now)
