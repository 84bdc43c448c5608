"""Inputs and outputs of the sans-I/O member (`moqmls.e2ee.member`).

The runtime feeds a `Member` with inputs (objects received on the group's tracks, lock-service
answers, fetch results, the passing of time) and carries out the actions it emits (publish,
subscribe, fetch, lock-service calls, media key installation). Everything here is a small frozen
value; nothing does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moqmls.e2ee.tracks import Namespace, TrackKind

# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ObjectReceived:
    """An object arrived on one of the group's operation tracks."""

    kind: TrackKind
    sender: str
    group: int
    object: int
    payload: bytes
    #: the lock service's receipt the publisher attached (Commit and Welcome objects).
    receipt: bytes | None = None


@dataclass(frozen=True)
class PublisherGone:
    """The relay reported that a sender's KeyPackage track ended (its session closed)."""

    sender: str


# Lock-service answers (DESIGN.md "Lock service"), one type per outcome.


@dataclass(frozen=True)
class Create:
    """create_or_join: we create the group."""

    token: str


@dataclass(frozen=True)
class Join:
    """create_or_join: the group exists at `epoch`; wait for a Welcome."""

    epoch: int


@dataclass(frozen=True)
class Locked:
    """Someone else holds the lock; retry after `retry_after` seconds."""

    retry_after: float
    holder: str = ""


@dataclass(frozen=True)
class Acquired:
    """lock(E) succeeded: we may commit epoch E under `token`."""

    token: str


@dataclass(frozen=True)
class Stale:
    """lock(E): the group is already at `current` > E."""

    current: int


@dataclass(frozen=True)
class Committed:
    """complete: our commit is canonical; the group is now at `epoch`."""

    epoch: int
    #: the lock service's signed receipt of the decision, published with the commit.
    receipt: bytes | None = None


@dataclass(frozen=True)
class Fenced:
    """complete: the lease was lost; the pending commit must be discarded."""


@dataclass(frozen=True)
class Released:
    """release: done (idempotent)."""


@dataclass(frozen=True)
class Winner:
    """The canonical commit of one epoch according to the lock service."""

    commit_hash: bytes
    committer: str
    #: the service's signed receipt of the decision, when it has one (`moqmls.lock.receipt`).
    receipt: bytes | None = None


@dataclass(frozen=True)
class Status:
    """status: the lock service's view of the group, and the stored messages of one epoch."""

    exists: bool
    epoch: int
    winners: dict[int, Winner] = field(default_factory=dict)
    #: epoch the stored messages below belong to, when the query named one.
    stored_epoch: int | None = None
    commit: bytes | None = None
    welcome: bytes | None = None
    #: False when `epoch` is only a lower bound (an answer about one past epoch).
    epoch_is_current: bool = True


@dataclass(frozen=True)
class ServiceKeys:
    """The lock service's receipt keys: (key id, raw Ed25519 public key) pairs."""

    keys: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class LockFailed:
    """The lock-service call failed (transport error, 5xx, bad answer)."""

    reason: str


LockResult = (
    Create
    | Join
    | Locked
    | Acquired
    | Stale
    | Committed
    | Fenced
    | Released
    | Status
    | ServiceKeys
    | LockFailed
)


@dataclass(frozen=True)
class LockAnswer:
    """The answer to the `LockCall` with the same `op_id`."""

    op_id: int
    result: LockResult


@dataclass(frozen=True)
class FetchAnswer:
    """The answer to the `Fetch` with the same `fetch_id`: the object, or None if unavailable."""

    fetch_id: int
    payload: bytes | None


Input = ObjectReceived | PublisherGone | LockAnswer | FetchAnswer

# ---------------------------------------------------------------- lock operations


@dataclass(frozen=True)
class CreateOrJoin:
    pass


@dataclass(frozen=True)
class AcquireLock:
    epoch: int


@dataclass(frozen=True)
class Complete:
    token: str
    commit_hash: bytes
    commit: bytes
    welcome: bytes | None


@dataclass(frozen=True)
class Release:
    token: str


@dataclass(frozen=True)
class QueryStatus:
    """The group's status; with `messages`, also the stored Commit and Welcome of `epoch`."""

    epoch: int | None
    messages: bool = True


@dataclass(frozen=True)
class FetchServiceKeys:
    """The lock service's public receipt keys (asked once, at start)."""


LockOp = CreateOrJoin | AcquireLock | Complete | Release | QueryStatus | FetchServiceKeys

# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Subscribe:
    """SUBSCRIBE_TRACKS on a namespace prefix."""

    namespace: Namespace


@dataclass(frozen=True)
class Unsubscribe:
    namespace: Namespace


@dataclass(frozen=True)
class Publish:
    """Write one object on our own track `namespace | track`."""

    namespace: Namespace
    track: bytes
    group: int
    object: int
    payload: bytes
    #: the last object of its MoQT group: the subgroup stream is closed after it.
    end_of_group: bool = False
    #: MoQT object properties (type, value): odd types carry bytes, even ones integers.
    properties: tuple[tuple[int, int | bytes], ...] = ()


@dataclass(frozen=True)
class Fetch:
    """FETCH one object; answer with `FetchAnswer(fetch_id, ...)`."""

    fetch_id: int
    namespace: Namespace
    track: bytes
    group: int
    object: int


@dataclass(frozen=True)
class LockCall:
    """Call the lock service; answer with `LockAnswer(op_id, ...)`."""

    op_id: int
    op: LockOp


@dataclass(frozen=True)
class InstallKey:
    """A media namespace's `track_base_key` for one epoch (Key ID = epoch)."""

    namespace: Namespace
    epoch: int
    base_key: bytes


@dataclass(frozen=True)
class EpochEntered:
    """We are now in `epoch`; `how` is created / welcomed / committed / applied."""

    epoch: int
    authenticator: bytes
    members: tuple[str, ...]
    committer: str
    how: str
    commit_hash: bytes = b""


@dataclass(frozen=True)
class Ended:
    """We are no longer a member: `reason` is left / removed / closed."""

    reason: str


@dataclass(frozen=True)
class Log:
    level: str
    message: str


Action = (
    Subscribe | Unsubscribe | Publish | Fetch | LockCall | InstallKey | EpochEntered | Ended | Log
)
