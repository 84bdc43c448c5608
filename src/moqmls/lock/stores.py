"""Choosing a store from its command-line spelling (DESIGN.md "CLI and defaults")."""

from __future__ import annotations

from moqmls.lock.memory import MemoryStore
from moqmls.lock.store import Store, StoreOptions

STORE_HELP = "memory | sqlite:PATH | etcd://HOST:PORT[,HOST:PORT...]"


def open_store(
    spec: str, options: StoreOptions | None = None, *, sqlite_sync: str = "full"
) -> Store:
    """The store `spec` names (not yet started): memory, sqlite:PATH or etcd://H:P,...

    `sqlite_sync` is SQLiteStore's durability of epoch advances ("full" or "normal").
    """
    if spec == "memory":
        return MemoryStore(options)
    if spec.startswith("sqlite:") and len(spec) > len("sqlite:"):
        from moqmls.lock.sqlite import SQLiteStore

        return SQLiteStore(spec[len("sqlite:") :], options, sync=sqlite_sync)
    if spec.startswith("etcd://"):
        from moqmls.lock.etcd import EtcdStore, parse_endpoints

        return EtcdStore(parse_endpoints(spec[len("etcd://") :]), options)
    raise ValueError(f"unknown store {spec!r}; expected {STORE_HELP}")
