"""`moqmls chat` as users run it: two processes, one group, over a relay and lock service."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from moqmls.e2ee.world import start_relay
from moqmls.lock import MemoryStore, serve


class Chat:
    """One `moqmls chat` process with its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, relay: str, lock: str, name: str) -> Chat:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "moqmls",
            "chat",
            "--relay",
            relay,
            "--lock",
            lock,
            "--group",
            "room",
            "--id",
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return cls(proc)

    async def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read output until a line containing `text` appears."""
        assert self.proc.stdout is not None
        for line in self.lines:
            if text in line:
                return line
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"chat ended before {text!r}: {self.lines}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if text in line:
                    return line

    async def type(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> int:
        if self.proc.returncode is None:
            try:
                async with asyncio.timeout(15):
                    assert self.proc.stdin is not None
                    self.proc.stdin.close()
                    return await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
        return await self.proc.wait()


@pytest.fixture
async def services() -> AsyncIterator[tuple[str, str]]:
    async with MemoryStore() as store, serve(store) as lock_url, start_relay() as relay:
        yield relay.url, lock_url


async def test_two_participants_chat_end_to_end(services: tuple[str, str]) -> None:
    relay, lock = services
    alice = await Chat.start(relay, lock, "alice")
    bob: Chat | None = None
    try:
        await alice.expect("* joined.")
        bob = await Chat.start(relay, lock, "bob")
        await bob.expect("* joined.")
        await alice.expect("* epoch 1: alice, bob")
        await alice.type("hello bob")
        assert await bob.expect("[alice] hello bob")
        await bob.type("hi alice")
        assert await alice.expect("[bob] hi alice")
        await bob.type("/members")
        await bob.expect("* alice, bob")
        await bob.type("/leave")
        await bob.expect("* left (left)")
        await alice.expect("* epoch 2: alice")
        assert await bob.stop() == 0
        bob = None
    finally:
        for chat in (alice, bob):
            if chat is not None:
                await chat.stop()
