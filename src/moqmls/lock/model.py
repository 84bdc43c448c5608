"""Values of the lock service: names, tokens, results and stored state (DESIGN.md "Lock service").

The draft (moq-e2ee-mls-seed, "Joining to MLS Group" and "Centralized Lock Service") needs a
lock that creates a group exactly once and keeps one linear chain of commits; its API is a
TODO there. The results below are that API's answers; `moqmls.lock.wire` maps each of them to
one HTTP status and JSON body, in both directions.

Epoch numbering: the record of epoch E is the commit *sent in* epoch E (it moves the group to
E + 1), the same number as the lock URL `/epochs/E/lock` and the MoQT group the draft's
Commit and Welcome tracks carry it in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moqmls.lock.errors import BadRequestError

MAX_EPOCH = 2**63 - 1
MIN_TTL_MS = 10
MAX_TTL_MS = 600_000
DEFAULT_TTL_MS = 5_000
MAX_HOLDER_LEN = 256
MAX_REQUEST_ID_LEN = 128

# Group names travel in URL path segments; an unreserved-character set avoids any
# percent-decoding ambiguity, and a leading dot is excluded so "." and ".." never appear.
_GROUP_RE = re.compile(r"[A-Za-z0-9_~:@+=-][A-Za-z0-9._~:@+=-]{0,127}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_TOKEN_RE = re.compile(r"(c|0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.([0-9a-f]{32})\.(.+)")


def check_group(group: object) -> str:
    """A group name: 1-128 characters of ``[A-Za-z0-9._~:@+=-]``, not starting with a dot."""
    if not isinstance(group, str) or _GROUP_RE.fullmatch(group) is None:
        raise BadRequestError(f"bad group name {group!r:.80}")
    return group


def check_holder(holder: object) -> str:
    """A holder id (the draft's sender-id): 1-256 printable characters."""
    if not isinstance(holder, str) or not 0 < len(holder) <= MAX_HOLDER_LEN:
        raise BadRequestError("holder must be a string of 1-256 characters")
    if not holder.isprintable():
        raise BadRequestError("holder must be printable")
    return holder


def check_request_id(request_id: object) -> str:
    """An idempotency key: 1-128 printable ASCII characters."""
    if (
        not isinstance(request_id, str)
        or not 0 < len(request_id) <= MAX_REQUEST_ID_LEN
        or not (request_id.isascii() and request_id.isprintable())
    ):
        raise BadRequestError("request_id must be 1-128 printable ASCII characters")
    return request_id


def check_epoch(epoch: object) -> int:
    """An epoch number: an integer in [0, 2^63 - 1] (never a bool or a float)."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise BadRequestError("epoch must be an integer in [0, 2^63-1]")
    return epoch


def check_ttl_ms(ttl_ms: object) -> int:
    """A lease duration in milliseconds, within [MIN_TTL_MS, MAX_TTL_MS]."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
        raise BadRequestError("ttl_ms must be an integer")
    if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
        raise BadRequestError(f"ttl_ms must be in [{MIN_TTL_MS}, {MAX_TTL_MS}]")
    return ttl_ms


def check_commit_hash(commit_hash: object) -> str:
    """A commit hash: the lowercase hex SHA-256 of the Commit message (64 characters)."""
    if not isinstance(commit_hash, str) or _HASH_RE.fullmatch(commit_hash) is None:
        raise BadRequestError("commit_hash must be 64 lowercase hex characters")
    return commit_hash


@dataclass(frozen=True)
class Token:
    """A lease token: the capability to complete or release one lease.

    Its text form ``<epoch or c>.<fence>.<nonce>.<group>`` lets the service find the group
    from the token alone; the 128-bit nonce makes it unguessable, and the service accepts it
    only while it equals the group's current lease exactly (the fencing step).
    """

    group: str
    epoch: int | None  # None: the lease of create_or_join
    fence: int
    nonce: str

    def __str__(self) -> str:
        kind = "c" if self.epoch is None else str(self.epoch)
        return f"{kind}.{self.fence}.{self.nonce}.{self.group}"

    @classmethod
    def parse(cls, text: object) -> Token:
        """Parse a token's text form; anything else is a BadRequestError."""
        if not isinstance(text, str):
            raise BadRequestError("token must be a string")
        m = _TOKEN_RE.fullmatch(text)
        if m is None:
            raise BadRequestError("malformed token")
        kind, fence, nonce, group = m.groups()
        epoch = None if kind == "c" else int(kind)
        if int(fence) > MAX_EPOCH or (epoch is not None and epoch > MAX_EPOCH):
            raise BadRequestError("malformed token")
        return cls(check_group(group), epoch, int(fence), nonce)


# ---------------------------------------------------------------- results (the API's answers)


@dataclass(frozen=True)
class Create:
    """create_or_join: you create the group; finish with complete(token) (no hash)."""

    token: str
    ttl_ms: int


@dataclass(frozen=True)
class Join:
    """create_or_join: the group exists at `epoch`; wait for a Welcome."""

    epoch: int


@dataclass(frozen=True)
class Locked:
    """create_or_join or lock: someone else holds the lease; retry after `retry_after_ms`."""

    retry_after_ms: int
    holder: str | None = None


@dataclass(frozen=True)
class Acquired:
    """lock: you hold the lease on the epoch; build the commit, then complete(token, hash)."""

    token: str
    ttl_ms: int


@dataclass(frozen=True)
class Stale:
    """lock: the group is past the epoch asked for, at `epoch`; catch up, do not retry."""

    epoch: int


@dataclass(frozen=True)
class Committed:
    """complete: the commit is canonical and the group is at `epoch`; publish it now.

    `receipt` is the service's signed statement of the decision (`moqmls.lock.receipt`);
    None only for a record stored before the service signed its decisions.
    """

    epoch: int
    receipt: bytes | None = None


@dataclass(frozen=True)
class Created:
    """complete of a create lease: the group exists at epoch 0."""

    epoch: int = 0


@dataclass(frozen=True)
class Fenced:
    """complete: the lease ran out or was taken over; discard the pending commit."""


CreateOrJoinResult = Create | Join | Locked
LockResult = Acquired | Locked | Stale
CompleteResult = Committed | Created | Fenced


@dataclass(frozen=True)
class HistoryEntry:
    """The winner of one epoch: the commit sent in `epoch`, by `committer`."""

    epoch: int
    commit_hash: str
    committer: str
    receipt: bytes | None = None


@dataclass(frozen=True)
class GroupStatus:
    """status: whether the group exists, its epoch, the current lease holder, the winners."""

    exists: bool
    epoch: int | None
    holder: str | None
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True)
class EpochRecord:
    """epoch: the stored Commit (and Welcome) sent in `epoch`, opaque to the service."""

    epoch: int
    commit_hash: str
    committer: str
    commit: bytes | None
    welcome: bytes | None
    receipt: bytes | None = None


# ---------------------------------------------------------------- stored state


@dataclass(frozen=True)
class GroupHead:
    """A created group: its current epoch, its grant counter, the token that created it."""

    group: str
    epoch: int
    fence: int
    created_token: str


@dataclass(frozen=True)
class Lease:
    """The one lease of a group: on creation (epoch None) or on epoch `epoch`."""

    token: str
    holder: str
    epoch: int | None
    ttl_ms: int
    expires_at_ms: int
    request_id: str | None


@dataclass(frozen=True)
class StoredEpoch:
    """An epoch record as stored: the public record plus the token that committed it."""

    epoch: int
    commit_hash: str
    committer: str
    token: str
    commit: bytes | None
    welcome: bytes | None
    receipt: bytes | None = None  # signed when committed (`moqmls.lock.receipt`)

    def public(self) -> EpochRecord:
        """The record without its token."""
        return EpochRecord(
            self.epoch, self.commit_hash, self.committer, self.commit, self.welcome, self.receipt
        )

    def entry(self) -> HistoryEntry:
        """The record's line in a status history."""
        return HistoryEntry(self.epoch, self.commit_hash, self.committer, self.receipt)
