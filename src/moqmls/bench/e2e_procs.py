"""The multi-process layout of `moqmls bench e2e`: relay + lock service here, members in workers.

The parent process runs the QUIC relay and the embedded lock service (SQLite) of a `World`
and hosts no member; each of P worker processes (`python -m moqmls.bench.e2e_worker`) hosts
a share of the members, which reach the relay over real QUIC (verifying its self-signed
certificate) and the lock service over HTTP, as members on other machines would. Requests and
answers are JSON lines over the workers' stdin/stdout; every request has a timeout, a worker
that exits fails every request waiting on it with its last lines of stderr, and `Cluster`
terminates every worker on the way out (also on Ctrl-C or an error).

Times are `time.monotonic()` in every process: CLOCK_MONOTONIC on Linux is system-wide.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moqmls.bench.e2e_worker import LINE_LIMIT, config_to_json, roster_digest
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.world import World

#: Seconds a worker gets to start (import the MLS and QUIC stacks) and to shut down.
START_TIMEOUT = 60.0
STOP_GRACE = 3.0
STDERR_LINES = 20


class WorkerError(RuntimeError):
    """A worker process died, hung or failed a request."""


@dataclass
class Worker:
    """One worker process and its pending requests."""

    index: int
    proc: asyncio.subprocess.Process
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    stderr: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_LINES)
    )
    next_id: int = 1
    readers: tuple[asyncio.Task[None], ...] = ()

    @classmethod
    async def spawn(cls, index: int) -> Worker:
        """Start `python -m moqmls.bench.e2e_worker` and wait for its hello."""
        env = dict(os.environ)
        # the workers import this very copy of moqmls (matters when it runs from a checkout)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "moqmls.bench.e2e_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=LINE_LIMIT,
        )
        worker = cls(index, proc)
        worker.pending[0] = asyncio.get_running_loop().create_future()
        worker.readers = (
            asyncio.create_task(worker._read_answers()),
            asyncio.create_task(worker._read_stderr()),
        )
        try:
            await worker._wait(0, "start", START_TIMEOUT)
        except BaseException:
            await worker.stop()
            raise
        return worker

    @property
    def name(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"

    async def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                answer = json.loads(line)
            except ValueError:
                self.stderr.append(f"(stdout) {line[:200]!r}")
                continue
            future = self.pending.pop(answer.get("id"), None)
            if future is None or future.done():
                continue
            if answer.get("ok"):
                future.set_result(answer.get("result"))
            else:
                future.set_exception(WorkerError(f"{self.name}: {answer.get('error')}"))
        code = await self.proc.wait()
        failure = WorkerError(f"{self.name} exited with code {code}{self._tail()}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(failure)
        self.pending.clear()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _tail(self) -> str:
        if not self.stderr:
            return ""
        return "; its last stderr lines:\n    " + "\n    ".join(self.stderr)

    async def call(self, op: str, wait: float, /, **args: Any) -> Any:
        """Send one request and wait (at most `wait` s) for its answer."""
        if self.proc.returncode is not None or self.proc.stdin is None:
            raise WorkerError(f"{self.name} is not running{self._tail()}")
        rid, self.next_id = self.next_id, self.next_id + 1
        self.pending[rid] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write((json.dumps({"id": rid, "op": op, **args}) + "\n").encode())
        try:
            await self.proc.stdin.drain()
        except ConnectionError as exc:
            self.pending.pop(rid, None)
            raise WorkerError(f"{self.name} is gone: {exc}{self._tail()}") from None
        return await self._wait(rid, op, wait)

    async def _wait(self, rid: int, op: str, timeout: float) -> Any:
        future = self.pending[rid]
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self.pending.pop(rid, None)
            raise WorkerError(
                f"{self.name} did not answer {op!r} within {timeout:.0f} s{self._tail()}"
            ) from None

    async def stop(self) -> None:
        """Ask the worker to shut down; terminate, then kill it if it does not."""
        if self.proc.returncode is None:
            with contextlib.suppress(WorkerError, ConnectionError, TimeoutError):
                await self.call("shutdown", STOP_GRACE)
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            await self._reap()
        for task in self.readers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _reap(self) -> None:
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


@dataclass
class Cluster:
    """A `World`'s relay and lock service here, its members in worker processes."""

    world: World
    workers: list[Worker]
    placement: dict[str, Worker] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, group: str, config: MemberConfig, processes: int, niceness: Sequence[int] = ()
    ) -> AsyncIterator[Cluster]:
        """Start the relay and lock service and `processes` attached workers; worker i runs
        `niceness[i]` nice levels below this process (none when not given)."""
        if processes < 1:
            raise ValueError("at least one worker process")
        async with World.start(group, config) as world, contextlib.AsyncExitStack() as stack:
            workers: list[Worker] = []
            stack.push_async_callback(_stop_all, workers)
            workers += await asyncio.gather(*(Worker.spawn(i) for i in range(processes)))
            own = os.getpriority(os.PRIO_PROCESS, 0)
            for worker, nice in zip(workers, niceness, strict=False):
                if nice:
                    os.setpriority(os.PRIO_PROCESS, worker.proc.pid, min(19, own + nice))
            verify = world.verify
            pem = verify.decode() if isinstance(verify, bytes) else str(verify)
            await asyncio.gather(
                *(
                    w.call(
                        "attach",
                        START_TIMEOUT,
                        relay_url=world.relay_url,
                        lock_url=world.lock_url,
                        verify=pem,
                        group=group,
                        config=config_to_json(config),
                    )
                    for w in workers
                )
            )
            yield cls(world, workers)

    async def add(self, placed: Sequence[tuple[str, int]], timeout: float = 120.0) -> float:
        """Start members at once on the given workers (name, worker index); wait until all
        are in and answer when the last one got in (monotonic)."""
        shares: dict[int, list[str]] = {}
        for name, index in placed:
            shares.setdefault(index, []).append(name)
            self.placement[name] = self.workers[index]
        times = await asyncio.gather(
            *(
                self.workers[i].call("add", timeout + 10, names=names, timeout=timeout)
                for i, names in shares.items()
            )
        )
        return max(float(t) for t in times)

    async def state(self) -> dict[str, dict[str, Any]]:
        """Every live member's epoch, roster digest and authenticator, from all workers."""
        answers = await asyncio.gather(*(w.call("state", 30.0) for w in self.workers))
        return {name: s for answer in answers for name, s in answer.items()}

    async def converge(self, timeout: float = 20.0) -> dict[str, dict[str, Any]] | None:
        """Wait until every live member is in one epoch with the live members as its roster;
        the last state then, or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.state()
            roster = roster_digest(list(state))
            if state and all(
                s["epoch"] == next(iter(state.values()))["epoch"] and s["roster"] == roster
                for s in state.values()
            ):
                return state
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)

    def worker_of(self, name: str) -> Worker:
        return self.placement[name]

    async def reached(self, epoch: int, exclude: Sequence[str], timeout: float = 60.0) -> float:
        """When the last live member (but `exclude`) first entered `epoch` or a later one."""
        times = await asyncio.gather(
            *(
                w.call("reached", timeout + 10, epoch=epoch, exclude=list(exclude), timeout=timeout)
                for w in self.workers
            )
        )
        return max(float(t) for t in times)


async def _stop_all(workers: list[Worker]) -> None:
    await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
