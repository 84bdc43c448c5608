"""Plain-value stand-ins for MLS, the lock service and the relay, for the sans-I/O unit tests only.

The fake MLS keeps a hash chain as its "epoch secret", so every member that applies the same
commits in the same order computes the same exporter output and authenticator, and a member
that misses one does not: enough to test the member's decisions, nothing about cryptography.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import (
    CommitRejectedError,
    KeyPackageRejectedError,
    ProposalRejectedError,
    WelcomeNotForUsError,
)
from moqmls.e2ee.lock_adapter import LockReceipts
from moqmls.e2ee.member import Member, MemberConfig, commit_hash
from moqmls.e2ee.ports import CommitOutcome, KeyPackageInfo, MemberInfo
from moqmls.e2ee.tracks import LOCK_RECEIPT_PROPERTY, GroupTracks, Namespace, TrackKind
from moqmls.lock.receipt import ReceiptSigner, new_signing_key


def _h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"|".join(parts)).digest()


@dataclass(frozen=True)
class FakePending:
    commit: bytes
    welcome: bytes | None
    members: tuple[tuple[str, str], ...]
    secret: bytes


class FakeGroup:
    def __init__(
        self, group_id: bytes, epoch: int, members: list[tuple[str, str]], secret: bytes, me: str
    ) -> None:
        self.group_id = group_id
        self.epoch = epoch
        self._members = members
        self._secret = secret
        self._me = me  # our signature key (hex)
        self.hash_length = 32

    def members(self) -> Sequence[MemberInfo]:
        return [MemberInfo(i, n, bytes.fromhex(k)) for n, (i, k) in enumerate(self._members)]

    def _identity(self) -> str:
        return next(i for i, k in self._members if k == self._me)

    def commit_epoch(self, data: bytes) -> int:
        try:
            return int(json.loads(data)["epoch"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CommitRejectedError(f"garbage: {exc}") from exc

    def _next(self, adds: list[dict[str, str]], removes: Sequence[str]) -> list[tuple[str, str]]:
        new = [(i, k) for i, k in self._members if i not in removes]
        new += [(a["id"], a["sig"]) for a in adds]
        return new

    def build_commit(self, adds: Sequence[bytes], removes: Sequence[str]) -> FakePending:
        parsed = [json.loads(a) for a in adds]
        if any(p.get("bad_for_mls") for p in parsed):
            raise KeyPackageRejectedError("mls rejects it")
        body = {
            "group_id": self.group_id.hex(),
            "epoch": self.epoch,
            "committer": self._identity(),
            "adds": parsed,
            "removes": list(removes),
            "tag": _h(self._secret, b"tag").hex(),
        }
        commit = json.dumps(body, sort_keys=True).encode()
        new_members = self._next(parsed, removes)
        secret = _h(self._secret, commit)
        welcome = None
        if parsed:
            welcome = json.dumps(
                {
                    "group_id": self.group_id.hex(),
                    "epoch": self.epoch + 1,
                    "members": new_members,
                    "secret": secret.hex(),
                    "for": [p["sig"] for p in parsed],
                }
            ).encode()
        return FakePending(commit, welcome, tuple(new_members), secret)

    def merge(self, pending: FakePending) -> None:
        self._members = list(pending.members)
        self._secret = pending.secret
        self.epoch += 1

    def apply_commit(self, data: bytes) -> CommitOutcome:
        try:
            body = json.loads(data)
            epoch, committer = body["epoch"], body["committer"]
            adds, removes, tag = body["adds"], body["removes"], body["tag"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CommitRejectedError(f"garbage: {exc}") from exc
        if epoch != self.epoch or tag != _h(self._secret, b"tag").hex():
            raise CommitRejectedError("wrong epoch or not decryptable")
        if committer not in {i for i, _ in self._members}:
            raise CommitRejectedError("committer is not a member")
        me = self._identity()
        removed_me = me in removes and (me, self._me) in self._members
        self._members = self._next(adds, removes)
        self._secret = _h(self._secret, data)
        self.epoch += 1
        return CommitOutcome(committer, removed_me)

    def leave_proposal(self) -> bytes:
        me = self._identity()
        tag = _h(self._secret, b"tag").hex()
        return json.dumps({"leave": me, "epoch": self.epoch, "tag": tag}).encode()

    def read_leave(self, data: bytes) -> str:
        try:
            body = json.loads(data)
            leaver, epoch, tag = body["leave"], body["epoch"], body["tag"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ProposalRejectedError(f"garbage: {exc}") from exc
        if epoch != self.epoch or tag != _h(self._secret, b"tag").hex():
            raise ProposalRejectedError("not decryptable in this epoch")
        return str(leaver)

    def export(self, label: bytes, context: bytes, length: int) -> bytes:
        return _h(self._secret, label, context)[:length]

    def epoch_authenticator(self) -> bytes:
        return _h(self._secret, b"authenticator")


class FakeIdentity:
    def __init__(self, sender_id: str) -> None:
        self.sender_id = sender_id
        self._sig = os.urandom(8).hex()
        self.bad_kp = False

    def key_package(self) -> bytes:
        body = {"id": self.sender_id, "sig": self._sig}
        if self.bad_kp:
            body["bad_for_mls"] = "1"
        return json.dumps(body, sort_keys=True).encode()

    def renew(self) -> bytes:
        self._sig = os.urandom(8).hex()
        return self.key_package()

    def check_key_package(self, data: bytes) -> KeyPackageInfo:
        try:
            body = json.loads(data)
            return KeyPackageInfo(str(body["id"]), bytes.fromhex(body["sig"]), data)
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyPackageRejectedError(f"garbage: {exc}") from exc

    def create_group(self, group_id: bytes) -> FakeGroup:
        return FakeGroup(group_id, 0, [(self.sender_id, self._sig)], _h(group_id), self._sig)

    def join(self, welcome: bytes) -> FakeGroup:
        try:
            body = json.loads(welcome)
        except ValueError as exc:
            raise WelcomeNotForUsError("garbage") from exc
        if not isinstance(body, dict) or self._sig not in body.get("for", []):
            raise WelcomeNotForUsError("not for us")
        members = [(str(i), str(k)) for i, k in body["members"]]
        return FakeGroup(
            bytes.fromhex(body["group_id"]),
            int(body["epoch"]),
            members,
            bytes.fromhex(body["secret"]),
            self._sig,
        )


@dataclass
class FakeLock:
    """The lock service's rules (DESIGN.md "Lock service") with a simulated clock."""

    ttl: float = 1.0
    exists: bool = False
    creating: str | None = None
    epoch: int = 0
    holder: tuple[str, float] | None = None
    winners: dict[int, ev.Winner] = field(default_factory=dict)
    stored: dict[int, tuple[bytes, bytes | None]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    ops: list[tuple[str, ev.LockOp]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    #: the group name receipts are signed for; its key signs every Committed of a commit.
    group: str = "g"
    signer: ReceiptSigner = field(default_factory=lambda: ReceiptSigner(new_signing_key()))
    #: this many receipt-key requests fail before they are answered.
    keys_fail: int = 0

    def receipt(self, epoch: int) -> bytes:
        """The receipt of the winner of `epoch`, as the real service signs it."""
        winner = self.winners[epoch]
        return self.signer.sign(self.group, epoch, winner.commit_hash.hex(), winner.committer)

    def call(self, who: str, op: ev.LockOp, now: float) -> ev.LockResult:
        self.ops.append((who, op))
        if isinstance(op, ev.FetchServiceKeys):
            if self.keys_fail > 0:
                self.keys_fail -= 1
                return ev.LockFailed("keys unavailable")
            return ev.ServiceKeys(((self.signer.key.key_id, self.signer.key.public_key),))
        if isinstance(op, ev.CreateOrJoin):
            if self.exists:
                return ev.Join(self.epoch)
            if self.creating is not None:
                return ev.Locked(0.05, self.creating)
            token = f"t{next(self.seq)}"
            self.creating = token
            self.tokens[token] = who
            return ev.Create(token)
        if isinstance(op, ev.AcquireLock):
            if op.epoch < self.epoch:
                return ev.Stale(self.epoch)
            if self.holder is not None and self.holder[1] > now:
                return ev.Locked(0.05, self.tokens[self.holder[0]])
            token = f"t{next(self.seq)}"
            self.tokens[token] = who
            self.holder = (token, now + self.ttl)
            return ev.Acquired(token)
        if isinstance(op, ev.Complete):
            if op.token == self.creating:
                self.exists, self.creating = True, None
                return ev.Committed(0)
            if self.holder is None or self.holder[0] != op.token or self.holder[1] <= now:
                return ev.Fenced()
            self.winners[self.epoch] = ev.Winner(op.commit_hash, self.tokens[op.token])
            self.stored[self.epoch] = (op.commit, op.welcome)
            receipt = self.receipt(self.epoch)
            # the record keeps the receipt, as the real service's epoch record does
            self.winners[self.epoch] = replace(self.winners[self.epoch], receipt=receipt)
            self.epoch += 1
            self.holder = None
            return ev.Committed(self.epoch, receipt)
        if isinstance(op, ev.Release):
            if self.holder is not None and self.holder[0] == op.token:
                self.holder = None
            return ev.Released()
        commit, welcome = (
            self.stored.get(op.epoch, (None, None))
            if op.epoch is not None
            else (
                None,
                None,
            )
        )
        if commit is not None and op.epoch is not None:  # like the real adapter's record path
            winners = {op.epoch: self.winners[op.epoch]}
            return ev.Status(True, op.epoch + 1, winners, op.epoch, commit, welcome, False)
        return ev.Status(self.exists, self.epoch, dict(self.winners), op.epoch, commit, welcome)


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    target: str = field(compare=False)
    item: object = field(compare=False)


class Sim:
    """A deterministic world: members, a relay that fans objects out, a lock service."""

    def __init__(
        self, group: str = "g", latency: float = 0.002, receipts: bool = False, **config: object
    ) -> None:
        self.tracks = GroupTracks(group)
        self.receipts = receipts
        self.latency = latency
        self.config = MemberConfig(**config)  # type: ignore[arg-type]
        self.lock = FakeLock(group=group)
        self.now = 0.0
        self.members: dict[str, Member] = {}
        self.subs: dict[str, set[Namespace]] = {}
        self.cache: dict[tuple[Namespace, bytes, int, int], bytes] = {}
        self.queue: list[_Event] = []
        self.seq = itertools.count()
        self.log: list[tuple[str, ev.Action]] = []
        self.crashed: set[str] = set()
        self.drop_publish: set[str] = set()
        self.drop_complete_answer: set[str] = set()
        self.partitioned: set[str] = set()
        self.lock_hook: dict[str, str] = {}

    def add(self, name: str, at: float | None = None) -> Member:
        checker = LockReceipts() if self.receipts else None
        member = Member(FakeIdentity(name), self.tracks, self.config, [self.media], checker)
        self.members[name] = member
        self.subs[name] = set()
        self._at(self.now if at is None else at, name, "start")
        return member

    @property
    def media(self) -> Namespace:
        return self.tracks.media_namespace(b"video")

    def _at(self, at: float, target: str, item: object) -> None:
        heapq.heappush(self.queue, _Event(at, next(self.seq), target, item))

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def run(self, until: float) -> None:
        while True:
            deadlines = [
                (d, n)
                for n, m in self.members.items()
                if n not in self.crashed and (d := m.next_deadline()) is not None
            ]
            next_timer = min(deadlines, default=None)
            next_event = self.queue[0] if self.queue else None
            if next_event is not None and (next_timer is None or next_event.at <= next_timer[0]):
                if next_event.at > until:
                    break
                heapq.heappop(self.queue)
                self.now = max(self.now, next_event.at)
                self._deliver(next_event)
            elif next_timer is not None:
                if next_timer[0] > until:
                    break
                self.now = max(self.now, next_timer[0])
                self.members[next_timer[1]].tick(self.now)
                self._drain(next_timer[1])
            else:
                break
        self.now = until

    def _deliver(self, event: _Event) -> None:
        name = event.target
        if name in self.crashed:
            return
        member = self.members[name]
        if event.item == "start":
            member.start(self.now)
        elif isinstance(event.item, tuple) and event.item[0] == "call":
            member_call = event.item[1]
            member_call(member, self.now)
        else:
            member.handle(event.item, self.now)  # type: ignore[arg-type]
        self._drain(name)

    def call(self, name: str, fn: object, at: float | None = None) -> None:
        self._at(self.now if at is None else at, name, ("call", fn))

    def _drain(self, name: str) -> None:
        member = self.members[name]
        for action in member.pop_actions():
            self.log.append((name, action))
            self._act(name, action)

    def _act(self, name: str, action: ev.Action) -> None:
        later = self.now + self.latency
        if isinstance(action, ev.Subscribe):
            self.subs[name].add(action.namespace)
        elif isinstance(action, ev.Unsubscribe):
            self.subs[name].discard(action.namespace)
        elif isinstance(action, ev.Publish):
            if name in self.drop_publish or name in self.partitioned:
                return
            receipt = dict(action.properties).get(LOCK_RECEIPT_PROPERTY)
            self.inject(
                action.namespace,
                action.track,
                action.group,
                action.object,
                action.payload,
                exclude=name,
                receipt=receipt if isinstance(receipt, bytes) else None,
            )
        elif isinstance(action, ev.Fetch):
            key = (action.namespace, action.track, action.group, action.object)
            self._at(later, name, ev.FetchAnswer(action.fetch_id, self.cache.get(key)))
        elif isinstance(action, ev.LockCall):
            if name in self.partitioned:
                return
            result = self.lock.call(name, action.op, self.now)
            if self.lock_hook.get(name) == "crash-after-acquire" and isinstance(
                result, ev.Acquired
            ):
                self.crash(name)
                return
            if (
                self.lock_hook.get(name) == "crash-after-complete"
                and isinstance(result, ev.Committed)
                and isinstance(action.op, ev.Complete)
                and action.op.commit
            ):
                self.crash(name)
                return
            if (
                self.lock_hook.get(name) == "lose-complete-answer"
                and isinstance(result, ev.Committed)
                and isinstance(action.op, ev.Complete)
                and action.op.commit
            ):
                del self.lock_hook[name]  # committed at the service; only the answer is lost
                result = ev.LockFailed("transport: the answer was lost")
            self._at(later, name, ev.LockAnswer(action.op_id, result))

    def inject(
        self,
        namespace: Namespace,
        track: bytes,
        group: int,
        obj: int,
        payload: bytes,
        exclude: str = "",
        receipt: bytes | None = None,
    ) -> None:
        self.cache[(namespace, track, group, obj)] = payload
        kind = self.tracks.kind_of(namespace)
        assert kind is not None
        item = ev.ObjectReceived(kind, track.decode(), group, obj, payload, receipt)
        for other, subs in self.subs.items():
            if other != exclude and namespace in subs and other not in self.partitioned:
                self._at(self.now + self.latency, other, item)

    # ---- observations

    def live(self) -> list[Member]:
        return [m for n, m in self.members.items() if n not in self.crashed and m.is_member]

    def converged(self) -> bool:
        live = self.live()
        if not live:
            return False
        auths = {m.group.epoch_authenticator() for m in live if m.group is not None}
        member_sets = {frozenset(m.members()) for m in live}
        return len(auths) == 1 and member_sets == {frozenset(m.sender_id for m in live)}

    def entered(self, name: str) -> list[ev.EpochEntered]:
        return [a for n, a in self.log if n == name and isinstance(a, ev.EpochEntered)]

    def keys(self, name: str) -> dict[int, bytes]:
        return {
            a.epoch: a.base_key
            for n, a in self.log
            if n == name and isinstance(a, ev.InstallKey) and a.namespace == self.media
        }

    def published(self, kind: TrackKind) -> list[tuple[str, ev.Publish]]:
        ns = self.tracks.namespace(kind)
        return [(n, a) for n, a in self.log if isinstance(a, ev.Publish) and a.namespace == ns]


def digest(payload: bytes) -> bytes:
    return commit_hash(payload)
