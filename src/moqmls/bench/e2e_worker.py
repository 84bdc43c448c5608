"""A worker process of `moqmls bench e2e --processes P`: hosts a share of the members.

Run as `python -m moqmls.bench.e2e_worker`; the parent (`moqmls.bench.e2e_procs`) writes one
JSON request per line on its stdin and reads one JSON answer per line from its stdout:
`{"id": n, "op": ..., ...}` -> `{"id": n, "ok": true, "result": ...}` or
`{"id": n, "ok": false, "error": "..."}`. Requests run concurrently (a beacon keeps running
while a timed join is answered). The members reach the parent's relay over real QUIC (its
self-signed certificate is verified) and its lock service over HTTP, as `World.attach` does.

Times in answers are `time.monotonic()` values: CLOCK_MONOTONIC on Linux is one clock for
the whole machine, so the parent can subtract them from its own and other workers' times.
The worker exits when its stdin closes (the parent died or is done) or on `shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, TextIO

from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.runtime import GroupMember
from moqmls.e2ee.world import World

Result = dict[str, Any]
#: A request line may carry a few hundred member names.
LINE_LIMIT = 1 << 24


def roster_digest(names: Sequence[str]) -> str:
    """A short digest of a member set, so that `state` answers stay small at N = 128."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def config_to_json(config: MemberConfig) -> dict[str, Any]:
    return asdict(config)


class WorkerHost:
    """The members of one worker process and the requests that drive them."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.world: World | None = None
        self._stack = contextlib.AsyncExitStack()
        self._beacons: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()

    def answer(self, message: Result) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def dispatch(self, line: bytes) -> None:
        """Run one request as its own task; its answer is written when it finishes."""
        try:
            request = json.loads(line)
            rid, op = request.pop("id"), request.pop("op")
            handler: Callable[..., Awaitable[Any]] = getattr(self, f"op_{op}")
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            self.answer({"id": None, "ok": False, "error": f"bad request {line[:80]!r}: {exc}"})
            return
        task = asyncio.create_task(self._run(rid, handler, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, rid: int, handler: Callable[..., Awaitable[Any]], args: Result) -> None:
        try:
            result = await handler(**args)
        except Exception as exc:
            self.answer({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            self.answer({"id": rid, "ok": True, "result": result})

    def _world(self) -> World:
        if self.world is None:
            raise RuntimeError("attach first")
        return self.world

    def _member(self, name: str) -> GroupMember:
        member = self._world().members.get(name)
        if member is None:
            raise RuntimeError(f"no member {name!r} in worker {os.getpid()}")
        return member

    async def op_attach(
        self, relay_url: str, lock_url: str, verify: str, group: str, config: Result
    ) -> int:
        """Connect to the parent's system; answers the worker's pid."""
        self.world = await self._stack.enter_async_context(
            World.attach(relay_url, lock_url, verify.encode(), group, MemberConfig(**config))
        )
        return os.getpid()

    async def op_add(self, names: list[str], timeout: float) -> float:
        """Start members at once and wait until all are in; answers when the last got in."""
        world = self._world()
        members = await asyncio.gather(*(world.add(n) for n in names))
        await asyncio.gather(*(m.wait_joined(timeout) for m in members))
        return max(world.joins[n].joined for n in names)

    async def op_state(self) -> dict[str, Result]:
        """Every live member's epoch, roster digest and epoch authenticator."""
        return {
            m.sender_id: {
                "epoch": m.epoch,
                "roster": roster_digest(m.members()),
                "authenticator": m.authenticator().hex(),
            }
            for m in self._world().live()
        }

    async def op_beacon(self, name: str, on: bool) -> None:
        """Start or stop a member publishing media on each epoch change (see `beacon`)."""
        from moqmls.bench.e2e import beacon

        if on:
            stop = asyncio.Event()
            task = asyncio.create_task(beacon(self._member(name), stop))
            self._beacons[name] = (stop, task)
            return
        stop, task = self._beacons.pop(name)
        stop.set()
        await task

    async def op_timed_join(self, name: str, timeout: float) -> Result:
        """One timed join in this process (see `timed_join`): its three times."""
        from moqmls.bench.e2e import timed_join

        probe = await asyncio.wait_for(timed_join(self._world(), name), timeout)
        return {"kp": probe.kp, "welcomed": probe.welcomed, "media": probe.media}

    async def op_leave(self, name: str) -> float:
        """Publish a member's leave request; answers when it was published."""
        return self._member(name).request_leave()

    async def op_reached(self, epoch: int, exclude: list[str], timeout: float) -> float:
        """Wait until every live member here (but `exclude`) is at `epoch` or later; answers
        when the last of them first entered it (from the members' own epoch histories)."""
        members = [m for m in self._world().live() if m.sender_id not in exclude]
        await asyncio.gather(*(m.wait_epoch(epoch, timeout) for m in members))
        return max((_entered(m, epoch) for m in members), default=0.0)

    async def op_close_member(self, name: str) -> None:
        await self._member(name).close()

    async def op_shutdown(self) -> None:
        self.done.set()

    async def close(self) -> None:
        for stop, task in self._beacons.values():
            stop.set()
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self._stack.aclose()


def _entered(member: GroupMember, epoch: int) -> float:
    """When the member first entered `epoch` or a later one."""
    return min((t for t, entered in member.history if entered.epoch >= epoch), default=0.0)


async def serve(out: TextIO) -> None:
    """Answer requests from stdin until it closes or `shutdown` arrives."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    host = WorkerHost(out)
    host.answer({"id": 0, "ok": True, "result": os.getpid()})
    done = asyncio.create_task(host.done.wait())
    try:
        while not host.done.is_set():
            read = asyncio.create_task(reader.readline())
            await asyncio.wait({read, done}, return_when=asyncio.FIRST_COMPLETED)
            if not read.done():
                read.cancel()
                break
            line = read.result()
            if not line:
                break
            host.dispatch(line)
    finally:
        done.cancel()
        await host.close()


def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)
    # The answers own stdout; anything else printed goes to stderr, which the parent keeps.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
