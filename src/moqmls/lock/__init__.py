"""The group lock service: a leased, fenced compare-and-swap over HTTP (DESIGN.md "Lock service").

The draft (moq-e2ee-mls-seed, "Joining to MLS Group") needs a centralized lock to create a
group exactly once and to keep one linear chain of commits; its API ("Centralized Lock
Service") is a TODO there, and this package writes it down. A member commits like this::

    from moqmls.lock import LockClient, Acquired, Committed, Create, Join

    async with LockClient("http://127.0.0.1:8470") as locks:
        joined = await locks.create_or_join("team", "alice")
        if isinstance(joined, Create):              # we are first: make the group locally
            await locks.complete(joined.token)      # -> Created(epoch=0)
        ...
        got = await locks.lock("team", epoch, "alice", ttl_ms=5000)
        if isinstance(got, Acquired):               # build the commit without merging it
            done = await locks.complete(got.token, commit=commit_bytes, welcome=welcome_bytes)
            if isinstance(done, Committed):         # canonical: publish, then merge
                ...
            # Fenced: the lease ran out; discard the pending commit, never publish it
        # Locked: retry after got.retry_after_ms; Stale: catch up to got.epoch first

`status(group)` lists the winner of every epoch; `epoch(group, E)` returns the Commit and
Welcome stored for epoch E, so a committer that died after `complete` strands nobody.

Every Committed answer (and each epoch record and history entry) carries a receipt: the
service's Ed25519 signature over (group, epoch, commit hash, committer), see
`moqmls.lock.receipt`. Anyone holding the service's public key (``GET /v1/keys``,
`LockClient.service_keys`) can check a commit's winner from it without asking the service::

    await locks.verify_receipt(done.receipt, group="team", epoch=epoch,
                               committer="alice", commit_hash=sha256(commit_bytes))

To embed the service (demos, tests)::

    async with MemoryStore() as store, serve(store) as url:
        ...   # url is http://127.0.0.1:<ephemeral port>

Stores: `MemoryStore`, `SQLiteStore` (`moqmls.lock.sqlite`, the embedded default) and
`EtcdStore` (`moqmls.lock.etcd`); `open_store("memory" | "sqlite:PATH" | "etcd://H:P,...")`.
"""

from moqmls.lock.client import LockClient
from moqmls.lock.errors import (
    BadReceiptSignatureError,
    BadRequestError,
    ForbiddenError,
    HashMismatchError,
    LockError,
    MalformedReceiptError,
    NotFoundError,
    ProtocolError,
    ReceiptError,
    ReceiptMismatchError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
    UnknownReceiptKeyError,
)
from moqmls.lock.memory import MemoryStore
from moqmls.lock.model import (
    Acquired,
    Committed,
    CompleteResult,
    Create,
    Created,
    CreateOrJoinResult,
    EpochRecord,
    Fenced,
    GroupStatus,
    HistoryEntry,
    Join,
    Locked,
    LockResult,
    Stale,
)
from moqmls.lock.receipt import Receipt, ServiceKey, verify_receipt
from moqmls.lock.server import AuthTable, RequestStats, make_app, serve
from moqmls.lock.store import Store, StoreOptions
from moqmls.lock.stores import open_store

__all__ = [
    "Acquired",
    "AuthTable",
    "BadReceiptSignatureError",
    "BadRequestError",
    "Committed",
    "CompleteResult",
    "Create",
    "CreateOrJoinResult",
    "Created",
    "EpochRecord",
    "Fenced",
    "ForbiddenError",
    "GroupStatus",
    "HashMismatchError",
    "HistoryEntry",
    "Join",
    "LockClient",
    "LockError",
    "LockResult",
    "Locked",
    "MalformedReceiptError",
    "MemoryStore",
    "NotFoundError",
    "ProtocolError",
    "Receipt",
    "ReceiptError",
    "ReceiptMismatchError",
    "RequestStats",
    "ServiceKey",
    "Stale",
    "Store",
    "StoreOptions",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnavailableError",
    "UnknownReceiptKeyError",
    "make_app",
    "open_store",
    "serve",
    "verify_receipt",
]
