"""The SQLite store, the embedded default (DESIGN.md "Lock service").

State survives restarts, and several service processes may share one database file: each
decision runs in a ``BEGIN IMMEDIATE`` transaction (the write lock is taken before the
read, so decisions on one file are serialised across processes), with the server time read
after the lock is held. Blocking sqlite3 calls run on a worker thread, off the event loop;
requests that arrive while it works are decided together in the next transaction (group
commit), each in arrival order and each seeing the writes of those before it.

Durability: the database is in WAL mode with ``synchronous=NORMAL``, so every committed
transaction survives the death of the service process (SIGKILL). With ``sync="full"``
(the default) an answer to complete — the one a committer relies on — is also held back
until an fsync of the WAL that began after its transaction committed, so it survives a
crash of the machine too. That fsync runs on a second thread outside SQLite's write lock,
so it overlaps the next transactions instead of stalling them, and one fsync covers every
completion committed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from moqmls.lock.core import Decision, R, Snapshot
from moqmls.lock.errors import LockError, UnavailableError
from moqmls.lock.model import GroupHead, Lease, StoredEpoch
from moqmls.lock.store import Store, StoreOptions


def _columns(cls: type[Any]) -> list[str]:
    return [f.name for f in fields(cls) if f.name != "group"]


# Each table is the dataclass it stores, keyed by group (and epoch for records).
_TABLES: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "heads": (GroupHead, ("group",)),
    "leases": (Lease, ("group",)),
    "epochs": (StoredEpoch, ("group", "epoch")),
}


def _q(name: str) -> str:
    return f'"{name}"'


def _schema() -> list[str]:
    statements = []
    for table, (cls, key) in _TABLES.items():
        cols = ", ".join(_q(c) for c in ["group", *_columns(cls)])
        keys = ", ".join(_q(k) for k in key)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({keys}))")
    statements.append(
        "CREATE TABLE IF NOT EXISTS service_key "
        '("id" INTEGER PRIMARY KEY CHECK ("id" = 1), "private_key" BLOB NOT NULL)'
    )
    return statements


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a newer dataclass has to a file an older version created."""
    for table, (cls, _) in _TABLES.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in _columns(cls):
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {_q(column)}")


def _select(table: str, where: Sequence[str]) -> str:
    cols = ", ".join(_q(c) for c in _columns(_TABLES[table][0]))
    cond = " AND ".join(f"{_q(w)} = ?" for w in where)
    return f"SELECT {cols} FROM {table} WHERE {cond}"


def _upsert(table: str) -> str:
    cols = ["group", *_columns(_TABLES[table][0])]
    marks = ", ".join("?" for _ in cols)
    return f"INSERT OR REPLACE INTO {table} ({', '.join(map(_q, cols))}) VALUES ({marks})"


_SELECT_HEAD = _select("heads", ["group"])
_SELECT_LEASE = _select("leases", ["group"])
_SELECT_RECORD = _select("epochs", ["group", "epoch"])
_UPSERT = {table: _upsert(table) for table in _TABLES}

_HISTORY = (
    'SELECT "epoch", "commit_hash", "committer", "token", NULL, NULL, "receipt" FROM epochs '
    'WHERE "group" = ? ORDER BY "epoch"'
)


SYNCS_IN_FLIGHT = 2


@dataclass(frozen=True)
class _Done:
    """A decided request's answer."""

    result: Any


_Outcome = _Done | LockError


@dataclass(frozen=True)
class _Pending:
    """A request waiting for the next batch."""

    group: str
    record_epoch: int | None
    decide: Callable[[Snapshot], Decision[Any]]
    future: asyncio.Future[_Outcome]


class SQLiteStore(Store):
    """A database file; a worker thread owns this process's connection to it."""

    def __init__(
        self,
        path: str | Path,
        options: StoreOptions | None = None,
        *,
        busy_timeout_ms: int = 10_000,
        sync: str = "full",
    ) -> None:
        if sync not in ("full", "normal"):
            raise ValueError("sync must be 'full' or 'normal'")
        super().__init__(options)
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.sync = sync
        self._executor: ThreadPoolExecutor | None = None
        self._fsyncer: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._wal_fd: int | None = None
        self._pending: list[_Pending] = []
        self._unsynced: list[tuple[asyncio.Future[_Outcome], _Outcome]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._syncs: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the database (creating its schema) on the worker thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="moqmls-lock-sqlite")
            self._fsyncer = ThreadPoolExecutor(
                SYNCS_IN_FLIGHT, thread_name_prefix="moqmls-lock-fsync"
            )
            await self._run(self._open)

    async def close(self) -> None:
        """Finish queued work, close the connection and stop the threads."""
        if self._drainer is not None:
            with contextlib.suppress(Exception):
                await self._drainer
        while self._syncs or self._unsynced:  # after the drainer: it may have started some
            self._start_syncs()
            await asyncio.sleep(0.001)
        if self._executor is not None:
            await self._run(self._close)
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._fsyncer is not None:
            self._fsyncer.shutdown(wait=True)
            self._fsyncer = None

    def _open(self) -> None:
        db = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,
        )
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # Without WAL (a filesystem that cannot share memory) every commit syncs itself.
        durable = self.sync == "full" and mode != "wal"
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        db.execute("BEGIN IMMEDIATE")
        for statement in _schema():
            db.execute(statement)
        _migrate(db)
        db.execute("COMMIT")
        if self.sync == "full" and mode == "wal":
            # The WAL lives as long as any connection does (ours), so this descriptor
            # always names the file that holds our commits until they are checkpointed;
            # a checkpoint syncs the WAL first and the database after.
            self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY)
            dir_fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the WAL's directory entry, once
            finally:
                os.close(dir_fd)
        self._db = db

    def _close(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[[], R]) -> R:
        if self._executor is None:
            raise RuntimeError("SQLiteStore used before start()")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"sqlite: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore used before start()")
        return self._db

    # ------------------------------------------------------------ primitives

    def _load_signing_key_sync(self, candidate: bytes) -> bytes:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")  # two processes starting at once store one key
        try:
            db.execute(
                'INSERT OR IGNORE INTO service_key ("id", "private_key") VALUES (1, ?)',
                (candidate,),
            )
            row = db.execute('SELECT "private_key" FROM service_key WHERE "id" = 1').fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return bytes(row[0])

    async def _load_signing_key(self, candidate: bytes) -> bytes:
        return await self._run(lambda: self._load_signing_key_sync(candidate))

    def _snapshot(self, db: sqlite3.Connection, group: str, record_epoch: int | None) -> Snapshot:
        now = self.clock()
        row = db.execute(_SELECT_HEAD, (group,)).fetchone()
        head = None if row is None else GroupHead(group, *row)
        row = db.execute(_SELECT_LEASE, (group,)).fetchone()
        lease = None if row is None else Lease(*row)
        record = None
        if record_epoch is not None:
            found = db.execute(_SELECT_RECORD, (group, record_epoch)).fetchone()
            record = None if found is None else StoredEpoch(*found)
        live = lease is not None and now < lease.expires_at_ms
        return Snapshot(now, head, lease, live, record)

    def _write(self, db: sqlite3.Connection, group: str, decision: Decision[Any]) -> None:
        if decision.head is not None:
            db.execute(_UPSERT["heads"], astuple(decision.head))
        if decision.clear_lease:
            db.execute('DELETE FROM leases WHERE "group" = ?', (group,))
        if decision.lease is not None:
            db.execute(_UPSERT["leases"], (group, *astuple(decision.lease)))
        if decision.record is not None:
            db.execute(_UPSERT["epochs"], (group, *astuple(decision.record)))
        if decision.prune_below is not None:
            db.execute(
                'DELETE FROM epochs WHERE "group" = ? AND "epoch" < ?',
                (group, decision.prune_below),
            )

    def _run_batch(self, batch: list[_Pending]) -> list[_Outcome]:
        """Decide a batch of requests in one transaction (worker thread)."""
        db = self._conn()
        outcomes: list[_Outcome] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for pending in batch:
                snap = self._snapshot(db, pending.group, pending.record_epoch)
                try:
                    decision = pending.decide(snap)
                except LockError as exc:  # decisions raise before writing anything
                    outcomes.append(exc)
                    continue
                if decision.writes:
                    self._write(db, pending.group, decision)
                outcomes.append(_Done(decision.result))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    async def _transact(
        self, group: str, record_epoch: int | None, decide: Callable[[Snapshot], Decision[R]]
    ) -> R:
        future: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(group, record_epoch, decide, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        outcome = await future
        if isinstance(outcome, LockError):
            raise outcome
        result: R = outcome.result
        return result

    async def _drain(self) -> None:
        """Hand everything that queued up meanwhile to the worker thread as one batch."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await self._run(functools.partial(self._run_batch, batch))
            except Exception as exc:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, outcome in zip(batch, outcomes, strict=True):
                # A complete's answer waits for the WAL fsync (only a complete reads a record).
                if self._wal_fd is not None and pending.record_epoch is not None:
                    self._unsynced.append((pending.future, outcome))
                elif not pending.future.done():
                    pending.future.set_result(outcome)
            self._start_syncs()

    def _start_syncs(self) -> None:
        """Start an fsync for the waiting answers, up to SYNCS_IN_FLIGHT at once.

        A second fsync may start while one runs: each answer only needs one that began
        after its commit, and waiting for the running one to end first doubles its wait.
        """
        while self._unsynced and len(self._syncs) < SYNCS_IN_FLIGHT:
            waiting, self._unsynced = self._unsynced, []
            task = asyncio.create_task(self._sync(waiting))
            self._syncs.add(task)
            task.add_done_callback(self._sync_done)

    def _sync_done(self, task: asyncio.Task[None]) -> None:
        self._syncs.discard(task)
        self._start_syncs()  # answers that queued up while every fsync slot was busy

    async def _sync(self, waiting: list[tuple[asyncio.Future[_Outcome], _Outcome]]) -> None:
        """fsync the WAL, then release the answers committed before the fsync began."""
        error: Exception | None = None
        try:
            assert self._wal_fd is not None
            await asyncio.get_running_loop().run_in_executor(self._fsyncer, os.fsync, self._wal_fd)
        except OSError as exc:
            error = UnavailableError(f"sqlite: fsync failed: {exc}")
        for future, outcome in waiting:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(outcome)

    def _read_sync(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        db = self._conn()
        db.execute("BEGIN")
        try:
            snap = self._snapshot(db, group, record_epoch)
            rows = db.execute(_HISTORY, (group,)).fetchall() if history else []
        finally:
            db.execute("COMMIT")
        return snap, [StoredEpoch(*row) for row in rows]

    async def _read(
        self, group: str, record_epoch: int | None, history: bool
    ) -> tuple[Snapshot, list[StoredEpoch]]:
        return await self._run(lambda: self._read_sync(group, record_epoch, history))
