"""A whole system on loopback: relay(s), lock service and members in one process.

Used by `moqmls demo`, the end-to-end tests and `moqmls bench e2e`. Everything is real: a
QUIC MoQT relay with a self-signed certificate made at start, the HTTP lock service on an
ephemeral port over a SQLite (or memory, or etcd) store, real MLS and Secure Objects.
`World.attach` hosts members against a relay and lock service run elsewhere (another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moqmls.e2ee import events as ev
from moqmls.e2ee.lock_adapter import LockAdapter
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.moqt_adapter import MoQTTransport
from moqmls.e2ee.ports import IdentityPort
from moqmls.e2ee.runtime import GroupMember, LockPort, Transport
from moqmls.lock import LockClient, serve
from moqmls.lock.store import Store
from moqmls.lock.stores import open_store
from moqmls.moqt.quic import certificate_pem, self_signed_certificate
from moqmls.moqt.relay import Relay, RelayConfig


@dataclass
class RelayHandle:
    """A running relay on loopback and what a client needs to reach it."""

    relay: Relay
    url: str
    certificate_pem: bytes
    credentials: tuple[Any, Any]
    port: int


@contextlib.asynccontextmanager
async def start_relay(
    upstream: str | None = None,
    upstream_verify: bool | str | bytes = False,
    port: int = 0,
    credentials: tuple[Any, Any] | None = None,
) -> AsyncIterator[RelayHandle]:
    """A relay on 127.0.0.1 (ephemeral port unless given); a fresh self-signed certificate
    unless `credentials` (certificate, private key) are given, as when restarting one."""
    cert, key = credentials or self_signed_certificate()
    relay = Relay(RelayConfig(upstream=upstream, upstream_verify=upstream_verify))
    bound = await relay.start("127.0.0.1", port, certificate=cert, private_key=key)
    handle = RelayHandle(
        relay, f"moqt://127.0.0.1:{bound}", certificate_pem(cert), (cert, key), bound
    )
    try:
        yield handle
    finally:
        await handle.relay.close(grace=0.05)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class JoinRecord:
    """How one member joined: when it started, when it was in, at which epoch, added by whom."""

    sender: str
    started: float
    joined: float = 0.0
    epoch: int = -1
    committer: str = ""
    how: str = ""

    @property
    def ms(self) -> float:
        return (self.joined - self.started) * 1000


@dataclass
class World:
    """Relay + lock service + members; `async with World.start(...) as w`."""

    relay_url: str
    lock_url: str
    verify: bool | str | bytes
    group: str
    config: MemberConfig
    relays: list[RelayHandle] = field(default_factory=list)
    members: dict[str, GroupMember] = field(default_factory=dict)
    joins: dict[str, JoinRecord] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)
    on_line: Callable[[str], None] | None = None
    member_relays: dict[str, str] = field(default_factory=dict)
    identity_factory: Callable[[str], IdentityPort] | None = None
    lock_clients: dict[str, LockClient] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        group: str = "demo",
        config: MemberConfig | None = None,
        store: str = "sqlite",
        chained_relays: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> AsyncIterator[World]:
        """Start a relay (two chained ones if asked) and an embedded lock service."""
        with tempfile.TemporaryDirectory(prefix="moqmls-") as tmp:
            spec = f"sqlite:{Path(tmp) / 'lock.sqlite3'}" if store == "sqlite" else store
            async with contextlib.AsyncExitStack() as stack:
                lock_store: Store = await stack.enter_async_context(open_store(spec))
                lock_url = await stack.enter_async_context(serve(lock_store))
                relay = await stack.enter_async_context(start_relay())
                relays = [relay]
                if chained_relays:
                    edge = await stack.enter_async_context(
                        start_relay(
                            upstream=relay.url,
                            upstream_verify=relay.certificate_pem,
                            credentials=relay.credentials,
                        )
                    )
                    relays.append(edge)
                world = cls(
                    relay.url,
                    lock_url,
                    relay.certificate_pem,
                    group,
                    config or MemberConfig(),
                    relays,
                    on_line=on_line,
                )
                try:
                    yield world
                finally:
                    world.on_line = None
                    await world.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def attach(
        cls,
        relay_url: str,
        lock_url: str,
        verify: bool | str | bytes,
        group: str,
        config: MemberConfig | None = None,
    ) -> AsyncIterator[World]:
        """Members only, against a relay and lock service that someone else runs."""
        world = cls(relay_url, lock_url, verify, group, config or MemberConfig())
        try:
            yield world
        finally:
            await world.close()

    def now_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000

    def say(self, text: str) -> None:
        line = f"{self.now_ms():8.1f} ms  {text}"
        self.timeline.append((self.now_ms(), text))
        if self.on_line is not None:
            self.on_line(line)

    async def restart_relay(self, index: int = 0, down_for: float = 0.3) -> None:
        """Stop a relay (every session drops, its cache is lost) and start it again."""
        handle = self.relays[index]
        self.say(f"relay {handle.url} stops")
        await handle.relay.close(grace=0.0)
        await asyncio.sleep(down_for)
        relay = Relay(handle.relay.config)
        cert, key = handle.credentials
        await relay.start("127.0.0.1", handle.port, certificate=cert, private_key=key)
        handle.relay = relay
        self.say(f"relay {handle.url} is back")

    def relay_for(self, index: int) -> str:
        """Members alternate between relays when they are chained."""
        if not self.relays:
            return self.relay_url
        return self.relays[index % len(self.relays)].url

    async def add(
        self,
        sender: str,
        relay_url: str | None = None,
        *,
        config: MemberConfig | None = None,
        gate: asyncio.Event | None = None,
        wrap_lock: Callable[[LockPort], LockPort] | None = None,
        on_action: Callable[[GroupMember, ev.Action], None] | None = None,
    ) -> GroupMember:
        """Start a member (it publishes its KeyPackage and asks to join).

        `gate`, when given, must be set for the member to (re)connect to the relay: tests use
        it to keep a member away; `wrap_lock` lets a test interpose on lock-service answers.
        """
        url = relay_url or self.relay_for(len(self.members))
        self.member_relays[sender] = url
        verify = self.verify

        async def connect() -> Transport:
            if gate is not None:
                await gate.wait()
            return await MoQTTransport.open(url, verify=verify)

        client = LockClient(self.lock_url, attempts=3, max_delay_s=0.2)
        lock: LockPort = LockAdapter(client, self.group, sender)
        if wrap_lock is not None:
            lock = wrap_lock(lock)
        member = GroupMember(
            self._identity(sender),
            self.group,
            connect,
            lock,
            config or self.config,
            on_action=self._on_action if on_action is None else self._also(on_action),
        )
        self.lock_clients[sender] = client
        self.members[sender] = member
        self.joins[sender] = JoinRecord(sender, time.monotonic())
        await member.start()
        return member

    def _also(
        self, extra: Callable[[GroupMember, ev.Action], None]
    ) -> Callable[[GroupMember, ev.Action], None]:
        def both(member: GroupMember, action: ev.Action) -> None:
            extra(member, action)
            self._on_action(member, action)

        return both

    def _identity(self, sender: str) -> IdentityPort:
        if self.identity_factory is not None:
            return self.identity_factory(sender)
        from moqmls.e2ee.mls_adapter import MLSIdentity

        return MLSIdentity(sender)

    def _on_action(self, member: GroupMember, action: ev.Action) -> None:
        if isinstance(action, ev.EpochEntered):
            record = self.joins.get(member.sender_id)
            if record is not None and record.epoch < 0:
                record.joined, record.epoch = time.monotonic(), action.epoch
                record.committer, record.how = action.committer, action.how
                if action.how == "created":
                    self.say(f"{member.sender_id} created the group (epoch 0)")
                else:
                    self.say(
                        f"{member.sender_id} joined at epoch {action.epoch}, added by "
                        f"{action.committer}, in {record.ms:.1f} ms"
                    )
            elif action.how == "committed":
                self.say(
                    f"{member.sender_id} committed epoch {action.epoch - 1} -> {action.epoch} "
                    f"({len(action.members)} members)"
                )
        elif isinstance(action, ev.Ended):
            self.say(f"{member.sender_id} is out of the group ({action.reason})")

    async def join(self, sender: str, timeout: float = 20.0) -> GroupMember:
        member = await self.add(sender)
        await member.wait_joined(timeout)
        return member

    def live(self) -> list[GroupMember]:
        return [m for m in self.members.values() if m.is_member]

    async def converge(self, timeout: float = 20.0, expect: set[str] | None = None) -> bool:
        """Wait until every live member is in the same epoch with the same members."""

        def done() -> bool:
            live = self.live()
            if not live:
                return False
            names = {m.sender_id for m in live} if expect is None else expect
            epochs = {m.epoch for m in live}
            return len(epochs) == 1 and all(set(m.members()) == names for m in live)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            await asyncio.sleep(0.01)
        return done()

    def authenticators_equal(self) -> bool:
        live = self.live()
        return bool(live) and len({m.authenticator() for m in live}) == 1

    def forks(self) -> int:
        """Epochs for which members applied different commits (by hash)."""
        seen: dict[int, set[bytes]] = {}
        for m in self.members.values():
            for _, entered in m.history:
                if entered.commit_hash:
                    seen.setdefault(entered.epoch, set()).add(entered.commit_hash)
        return sum(1 for hashes in seen.values() if len(hashes) > 1)

    async def media_round(
        self,
        senders: Sequence[GroupMember],
        receivers: Sequence[GroupMember],
        tag: str,
        timeout: float = 10.0,
    ) -> tuple[int, int, int]:
        """Every sender publishes one object; returns (sent, decrypted, expected)."""
        before = {m.sender_id: m.media_stats.decrypted for m in receivers}
        for m in senders:
            await m.publish_media(m.sender_id.encode(), f"{tag} from {m.sender_id}".encode())
        expected = sum(1 for r in receivers for s in senders if s is not r)
        deadline = time.monotonic() + timeout

        def got() -> int:
            return sum(m.media_stats.decrypted - before[m.sender_id] for m in receivers)

        while got() < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return len(senders), got(), expected

    async def close(self) -> None:
        await asyncio.gather(*(self._close_member(m) for m in list(self.members.values())))

    async def _close_member(self, member: GroupMember) -> None:
        await member.close()
        client = self.lock_clients.get(member.sender_id)
        if client is not None:
            await client.close()
