"""The asyncio runtime of a member: drives the sans-I/O `Member` with real I/O.

It carries out the member's actions over a MoQT session (`Transport`), the lock service
(`LockAdapter`) and a Secure Objects `KeyRing`, feeds it what arrives, runs its timers, and gives
the application plaintext media (DESIGN.md "Media keys"): `publish_media` protects with the
current epoch's key (Key ID = epoch), `media()` yields what every live epoch key decrypts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import MemberClosedError, NotMemberError
from moqmls.e2ee.lock_adapter import LockReceipts
from moqmls.e2ee.member import Member, MemberConfig, Phase
from moqmls.e2ee.ports import IdentityPort, ReceiptPort
from moqmls.e2ee.tracks import LOCK_RECEIPT_PROPERTY, GroupTracks, Namespace
from moqmls.secure_objects import (
    KeyRing,
    PlainObject,
    Property,
    SecureObject,
    SecureObjectError,
    UnknownKeyIdError,
)
from moqmls.secure_objects.codec import decode_vi64, encode_vi64

log = logging.getLogger("moqmls.e2ee")

#: Publisher priority of every media object; it is authenticated, so both ends must agree.
MEDIA_PRIORITY = 128
#: How long a media object whose epoch key has not arrived yet is held before it is dropped.
EARLY_MEDIA_HOLD = 5.0
MAX_EARLY_MEDIA = 1024
#: A FETCH that takes longer is abandoned for the lock service's stored copy.
FETCH_TIMEOUT = 1.0
#: A subscription the relay did not accept (timeout, refusal) is asked for again after this.
SUBSCRIBE_RETRY = 0.5

MoQTProperties = tuple[tuple[int, int | bytes], ...]


@dataclass(frozen=True)
class Received:
    """One object that arrived on a subscription."""

    namespace: Namespace
    track: bytes
    group: int
    object: int
    payload: bytes
    properties: MoQTProperties = ()


class Transport(Protocol):
    """What a member needs from one MoQT session (draft-ietf-moq-transport-18)."""

    async def subscribe_tracks(self, prefix: Namespace) -> None: ...

    async def unsubscribe_tracks(self, prefix: Namespace) -> None: ...

    async def publish(
        self,
        namespace: Namespace,
        track: bytes,
        group: int,
        obj: int,
        payload: bytes,
        properties: MoQTProperties = (),
        end_of_group: bool = False,
    ) -> None: ...

    async def fetch(
        self, namespace: Namespace, track: bytes, group: int, obj: int
    ) -> bytes | None: ...

    def objects(self) -> AsyncIterator[Received]:
        """Everything received on our subscriptions; ends when the session ends."""
        ...

    async def close(self) -> None: ...


class LockPort(Protocol):
    async def call(self, op: ev.LockOp) -> ev.LockResult: ...


@dataclass(frozen=True)
class MediaObject:
    """A decrypted media object."""

    namespace: Namespace
    track: bytes
    group: int
    object: int
    payload: bytes
    epoch: int


@dataclass
class MediaStats:
    sent: int = 0
    decrypted: int = 0
    failed: int = 0


def to_moqt_properties(props: Sequence[Property]) -> MoQTProperties:
    """Secure Objects properties as MoQT Key-Value-Pairs: even types carry a vi64 value."""
    out: list[tuple[int, int | bytes]] = []
    for p in props:
        out.append(
            (p.type, decode_vi64(p.value, 0, len(p.value))[0] if p.type % 2 == 0 else p.value)
        )
    return tuple(out)


def from_moqt_properties(props: MoQTProperties) -> tuple[Property, ...]:
    return tuple(Property(t, encode_vi64(v) if isinstance(v, int) else bytes(v)) for t, v in props)


@dataclass
class _Held:
    received: Received
    until: float


@dataclass
class GroupMember:
    """A member of one group, running: `await start()`, then publish and read media."""

    identity: IdentityPort
    group: str
    connect: Callable[[], Awaitable[Transport]]
    lock: LockPort
    config: MemberConfig = field(default_factory=MemberConfig)
    media_names: Sequence[Namespace] = ((),)
    keyring: KeyRing = field(default_factory=KeyRing)
    clock: Callable[[], float] = time.monotonic
    on_action: Callable[[GroupMember, ev.Action], None] | None = None
    #: checks the lock service's receipts on Commits and Welcomes; None asks it every time.
    receipts: ReceiptPort | None = field(default_factory=LockReceipts)

    def __post_init__(self) -> None:
        self.tracks = GroupTracks(self.group)
        media = [self.tracks.media_namespace(*parts) for parts in self.media_names]
        self.core = Member(self.identity, self.tracks, self.config, media, self.receipts)
        self.history: list[tuple[float, ev.EpochEntered]] = []
        self.ended: str | None = None
        self.media_stats = MediaStats()
        self.started_at = 0.0
        self._queue: asyncio.Queue[ev.Action] = asyncio.Queue()
        self._media: asyncio.Queue[MediaObject] = asyncio.Queue()
        self._held: list[_Held] = []
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._transport: Transport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[None]] = set()
        self._subscribed: set[Namespace] = set()
        self._media_groups: dict[tuple[Namespace, bytes], int] = {}
        self._closing = False

    # ------------------------------------------------------------ lifecycle

    @property
    def sender_id(self) -> str:
        return self.identity.sender_id

    async def start(self, timeout: float = 15.0) -> None:
        """Connect and begin bootstrapping; returns once the session is up."""
        self.started_at = self.clock()
        self._tasks = [
            asyncio.create_task(self._session_loop(), name=f"{self.sender_id}-session"),
            asyncio.create_task(self._io_loop(), name=f"{self.sender_id}-io"),
            asyncio.create_task(self._timer_loop(), name=f"{self.sender_id}-timers"),
        ]
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            await self.close()
            raise MemberClosedError(f"{self.sender_id}: no session to the relay") from None

    async def close(self) -> None:
        """Stop everything now (no leave request: others will see us vanish)."""
        if self._closing:
            return
        self._closing = True
        self.core.close()
        self._flush()
        for task in [*self._tasks, *self._side]:
            task.cancel()
        for task in [*self._tasks, *self._side]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._transport is not None:
            with contextlib.suppress(Exception):
                await self._transport.close()
            self._transport = None

    async def leave(self, timeout: float = 10.0, close: bool = True) -> str:
        """Leave the group (SelfRemove on the Proposal track) and wait until removed.

        With `close=False` the session stays up (still subscribed to media it can no longer
        decrypt), which is how the demo shows that a departed member learns nothing.
        """
        self.request_leave()
        with contextlib.suppress(TimeoutError):
            await self.wait_for(lambda: self.ended is not None, timeout)
        reason = self.ended or "left-timeout"
        if close:
            await self.close()
        return reason

    def request_leave(self) -> float:
        """Publish our leave request (SelfRemove) without waiting; the clock time it was made."""
        now = self.clock()
        self.core.leave(now)
        self._flush()
        return now

    def remove(self, sender: str) -> None:
        """Ask the group to remove a member by sender-id."""
        self.core.remove(sender, self.clock())
        self._flush()

    # ------------------------------------------------------------ observation

    @property
    def is_member(self) -> bool:
        return self.core.is_member

    @property
    def epoch(self) -> int:
        return self.core.epoch

    def members(self) -> tuple[str, ...]:
        return self.core.members()

    def authenticator(self) -> bytes:
        if self.core.group is None:
            raise NotMemberError(f"{self.sender_id} is not a member")
        return self.core.group.epoch_authenticator()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds (checked after each state change)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_epoch(self, epoch: int, timeout: float) -> None:
        """Wait until we are at `epoch` or a later one."""
        await self.wait_for(lambda: self.epoch >= epoch, timeout)

    async def wait_joined(self, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: self.is_member or self.ended is not None, timeout)
        if not self.is_member:
            raise MemberClosedError(f"{self.sender_id} ended: {self.ended}")

    # ------------------------------------------------------------ media

    def media_namespace(self, *parts: bytes) -> Namespace:
        return self.tracks.media_namespace(*parts)

    async def publish_media(
        self, track: bytes, payload: bytes, namespace: Namespace | None = None
    ) -> int:
        """Encrypt with the current epoch's key and publish; returns the Key ID (epoch) used."""
        ns = namespace or self.core.media[0]
        if not self.is_member:
            raise NotMemberError(f"{self.sender_id} is not a member")
        # One object per MoQT group, its stream closed at once: a subscriber then holds one
        # open QUIC stream per track only while an object is in flight. (group, object) never
        # repeats on a track, so no Secure Objects nonce repeats under any Key ID.
        group = self._media_groups.get((ns, track), 0)
        self._media_groups[(ns, track)] = group + 1
        sealed = self.keyring.protect(
            ns, track, PlainObject(group, 0, payload, publisher_priority=MEDIA_PRIORITY)
        )
        transport = await self._session()
        await transport.publish(
            ns,
            track,
            sealed.group_id,
            sealed.object_id,
            sealed.payload,
            to_moqt_properties(sealed.immutable_properties),
            end_of_group=True,
        )
        self.media_stats.sent += 1
        return sealed.key_id

    async def media(self) -> AsyncIterator[MediaObject]:
        """Decrypted media objects from every other member, as they arrive."""
        while True:
            yield await self._media.get()

    def media_nowait(self) -> list[MediaObject]:
        out: list[MediaObject] = []
        while not self._media.empty():
            out.append(self._media.get_nowait())
        return out

    def _on_media(self, rec: Received, now: float, hold_until: float | None = None) -> None:
        try:
            sealed = SecureObject(
                rec.group,
                rec.object,
                MEDIA_PRIORITY,
                from_moqt_properties(rec.properties),
                rec.payload,
            )
            key_id = sealed.key_id
            plain = self.keyring.unprotect(rec.namespace, rec.track, sealed, now)
        except UnknownKeyIdError:
            if self._may_arrive(rec.namespace, key_id) and len(self._held) < MAX_EARLY_MEDIA:
                until = now + EARLY_MEDIA_HOLD if hold_until is None else hold_until
                self._held.append(_Held(rec, until))
                return
            self._media_failed(rec, "no key for its epoch")
            return
        except SecureObjectError as exc:
            self._media_failed(rec, f"{type(exc).__name__}: {exc}")
            return
        self.media_stats.decrypted += 1
        self._media.put_nowait(
            MediaObject(rec.namespace, rec.track, rec.group, rec.object, plain.payload, key_id)
        )

    def _may_arrive(self, namespace: Namespace, key_id: int) -> bool:
        """An object of an epoch we have not reached yet (its Commit is still on its way)."""
        if self.ended is not None:
            return False
        current = self.keyring.current_key_id(namespace)
        return current is None or key_id > current

    def _media_failed(self, rec: Received, why: str) -> None:
        self.media_stats.failed += 1
        log.info(
            "%s: media %s/%d/%d not decrypted: %s",
            self.sender_id,
            rec.track,
            rec.group,
            rec.object,
            why,
        )

    def _retry_held(self, now: float) -> None:
        held, self._held = self._held, []
        for item in held:
            if item.until < now:
                self._media_failed(item.received, "its epoch key never arrived")
            else:
                self._on_media(item.received, now, item.until)

    # ------------------------------------------------------------ driving the core

    def _flush(self) -> None:
        for action in self.core.pop_actions():
            if self.on_action is not None:
                self._notify(action)
            if isinstance(action, ev.InstallKey):
                self._install(action)
            elif isinstance(action, ev.EpochEntered):
                self.history.append((self.clock(), action))
            elif isinstance(action, ev.Ended):
                self.ended = action.reason
            elif isinstance(action, ev.Log):
                log.log(
                    logging.WARNING if action.level == "warning" else logging.INFO,
                    "%s",
                    action.message,
                )
            else:
                self._queue.put_nowait(action)
        self._changed.set()
        self._wake.set()

    def _notify(self, action: ev.Action) -> None:
        """Show the application an action; its bug must not cost the member this action, the
        ones queued behind it (a Commit and its Welcome among them) or its session."""
        assert self.on_action is not None
        try:
            self.on_action(self, action)
        except Exception:
            log.exception(
                "%s: the application's on_action callback failed on %s",
                self.sender_id,
                type(action).__name__,
            )

    def _install(self, action: ev.InstallKey) -> None:
        now = self.clock()
        try:
            self.keyring.install(action.namespace, action.epoch, action.base_key, now)
            self.keyring.set_current(action.namespace, action.epoch, now)
        except SecureObjectError as exc:
            log.warning("%s: cannot install epoch %d key: %s", self.sender_id, action.epoch, exc)
            return
        if self._held:
            self._retry_held(now)

    def _feed(self, event: ev.Input) -> None:
        self.core.handle(event, self.clock())
        self._flush()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            now = self.clock()
            self.core.tick(now)
            if self._held:
                self._retry_held(now)
            self._flush()

    async def _session(self) -> Transport:
        while self._transport is None:
            await self._connected.wait()
        return self._transport

    async def _session_loop(self) -> None:
        first, backoff = True, 0.05
        while not self._closing:
            try:
                transport = await self.connect()
            except Exception as exc:  # any failure to connect: retry with backoff
                log.info("%s: connect failed: %r", self.sender_id, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.05
            self._transport = transport
            self._connected.set()
            media_prefix = self.tracks.media_prefix
            self._queue.put_nowait(ev.Subscribe(media_prefix))
            if first:
                self.core.start(self.clock())
                first = False
            else:
                self.core.reconnected(self.clock())
            self._flush()
            try:
                async for rec in transport.objects():
                    self._on_received(rec)
            except Exception as exc:  # the session died; reconnect
                log.info("%s: session ended: %r", self.sender_id, exc)
            self._connected.clear()
            self._transport = None
            self._subscribed.clear()
            with contextlib.suppress(Exception):
                await transport.close()
            if not self._closing:
                log.info("%s: session lost; reconnecting", self.sender_id)
                await asyncio.sleep(backoff)

    def _on_received(self, rec: Received) -> None:
        if self.tracks.is_media(rec.namespace):
            self._on_media(rec, self.clock())
            return
        kind = self.tracks.kind_of(rec.namespace)
        if kind is None:
            return
        try:
            sender = rec.track.decode()
        except UnicodeDecodeError:
            log.info("%s: dropped object on a track that is not a sender-id", self.sender_id)
            return
        receipt = next(
            (v for t, v in rec.properties if t == LOCK_RECEIPT_PROPERTY and isinstance(v, bytes)),
            None,
        )
        self._feed(ev.ObjectReceived(kind, sender, rec.group, rec.object, rec.payload, receipt))

    async def _io_loop(self) -> None:
        """Carry out MoQT actions in order; lock calls and fetches run beside.

        Consecutive subscriptions go out together (one round trip, not one each); whatever
        follows them waits until all are answered, so a KeyPackage is never published before
        the member listens for its Welcome.
        """
        carry: ev.Action | None = None
        while True:
            action = carry if carry is not None else await self._queue.get()
            carry = None
            if isinstance(action, ev.LockCall):
                self._spawn(self._lock_call(action))
            elif isinstance(action, ev.Fetch):
                self._spawn(self._fetch(action))
            elif isinstance(action, ev.Subscribe):
                batch = [action]
                while not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if not isinstance(nxt, ev.Subscribe):
                        carry = nxt
                        break
                    batch.append(nxt)
                await asyncio.gather(*(self._moqt(a) for a in batch))
            else:
                await self._moqt(action)

    async def _moqt(self, action: ev.Action) -> None:
        """One MoQT action; a session failure is logged, never raised."""
        if self.core.phase is Phase.ENDED and isinstance(action, ev.Subscribe):
            return
        try:
            transport = await self._session()
            if isinstance(action, ev.Subscribe):
                if action.namespace not in self._subscribed:
                    self._subscribed.add(action.namespace)
                    try:
                        await transport.subscribe_tracks(action.namespace)
                    except Exception:
                        # not subscribed: counted as such, nothing of it would ever arrive
                        self._subscribed.discard(action.namespace)
                        self._spawn(self._resubscribe(action))
                        raise
            elif isinstance(action, ev.Unsubscribe):
                if action.namespace in self._subscribed:
                    self._subscribed.discard(action.namespace)
                    await transport.unsubscribe_tracks(action.namespace)
            elif isinstance(action, ev.Publish):
                await transport.publish(
                    action.namespace,
                    action.track,
                    action.group,
                    action.object,
                    action.payload,
                    action.properties,
                    end_of_group=action.end_of_group,
                )
        except Exception as exc:  # a session failure must not stop the member
            log.info("%s: %s failed: %r", self.sender_id, type(action).__name__, exc)

    async def _resubscribe(self, action: ev.Subscribe) -> None:
        """Ask again later; on a new session the reconnection has already asked."""
        await asyncio.sleep(SUBSCRIBE_RETRY)
        if not self._closing:
            self._queue.put_nowait(action)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _lock_call(self, action: ev.LockCall) -> None:
        result = await self.lock.call(action.op)
        if not self._closing:
            self._feed(ev.LockAnswer(action.op_id, result))

    async def _fetch(self, action: ev.Fetch) -> None:
        payload: bytes | None = None
        try:
            transport = await self._session()
            async with asyncio.timeout(FETCH_TIMEOUT):
                payload = await transport.fetch(
                    action.namespace, action.track, action.group, action.object
                )
        except Exception as exc:  # unavailable: the member falls back to the lock's copy
            log.info("%s: fetch failed: %r", self.sender_id, exc)
        if not self._closing:
            self._feed(ev.FetchAnswer(action.fetch_id, payload))
