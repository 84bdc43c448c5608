"""`moqmls chat`: an interactive end-to-end encrypted group chat over a relay and lock service.

Each line typed is one media object on the track named after the sender, in the group's
(`G`, `media`, `chat`) namespace, encrypted under the current MLS epoch's key. Lines starting
with `/` are commands: /members, /epoch, /remove NAME, /leave, /help.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from moqmls.e2ee import events as ev
from moqmls.e2ee.errors import E2EEError
from moqmls.e2ee.lock_adapter import LockAdapter
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.mls_adapter import MLSIdentity
from moqmls.e2ee.moqt_adapter import MoQTTransport
from moqmls.e2ee.runtime import GroupMember, Transport
from moqmls.lock import LockClient

CHAT = (b"chat",)
HELP = "/members  /epoch  /remove NAME  /leave  /help   (anything else is sent to the group)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--relay", required=True, help="relay URL, moqt://HOST:PORT")
    parser.add_argument("--lock", required=True, help="lock service URL, http://HOST:PORT")
    parser.add_argument("--group", required=True, help="group name (shared by all participants)")
    parser.add_argument("--id", required=True, help="your sender-id, unique in the group")
    parser.add_argument(
        "--ca",
        metavar="PEM",
        help="trust this certificate for the relay's TLS; without it the relay's certificate "
        "is not verified (chat content is end-to-end encrypted either way)",
    )
    parser.add_argument("--relay-token", help="auth token for the relay, if it requires one")
    parser.add_argument(
        "--lock-token", help="bearer token for the lock service, if it requires one"
    )
    parser.add_argument(
        "--liveness", type=float, default=15.0, help="seconds of silence before a peer is removed"
    )
    parser.add_argument("--verbose", action="store_true", help="log the member's decisions")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return asyncio.run(_chat(args))
    except E2EEError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 1


def _say(text: str) -> None:
    print(text, flush=True)


def _on_action(member: GroupMember, action: ev.Action) -> None:
    if isinstance(action, ev.EpochEntered):
        _say(f"* epoch {action.epoch}: {', '.join(action.members)}")
    elif isinstance(action, ev.Ended):
        _say(f"* you are out of the group ({action.reason})")


async def _chat(args: argparse.Namespace) -> int:
    verify: bool | bytes = Path(args.ca).read_bytes() if args.ca else False
    token = args.relay_token.encode() if args.relay_token else None

    async def connect() -> Transport:
        return await MoQTTransport.open(args.relay, verify=verify, auth_token=token)

    config = MemberConfig(
        heartbeat_interval=max(args.liveness / 4, 0.5), liveness_timeout=args.liveness
    )
    async with LockClient(args.lock, auth_token=args.lock_token) as locks:
        member = GroupMember(
            MLSIdentity(args.id),
            args.group,
            connect,
            LockAdapter(locks, args.group, args.id),
            config,
            media_names=(CHAT,),
            on_action=_on_action,
        )
        _say(f"* joining group {args.group!r} as {args.id!r} ...")
        await member.start()
        printer = asyncio.create_task(_print_incoming(member))
        try:
            await member.wait_joined(60.0)
            _say(f"* joined. {HELP}")
            await _read_lines(member)
        finally:
            printer.cancel()
            await member.close()
    return 0


async def _print_incoming(member: GroupMember) -> None:
    async for obj in member.media():
        sender = obj.track.decode(errors="replace")
        _say(f"[{sender}] {obj.payload.decode(errors='replace')}")


async def _read_lines(member: GroupMember) -> None:
    loop = asyncio.get_running_loop()
    while member.ended is None:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await member.leave(10.0)
            return
        text = line.rstrip("\n")
        if not text:
            continue
        if text.startswith("/"):
            if await _command(member, text):
                return
            continue
        try:
            await member.publish_media(member.sender_id.encode(), text.encode())
        except E2EEError as exc:
            _say(f"* not sent: {exc}")


async def _command(member: GroupMember, text: str) -> bool:
    """Run one /command; True when the chat should end."""
    name, _, arg = text.partition(" ")
    if name == "/members":
        _say(f"* {', '.join(member.members())}")
    elif name == "/epoch":
        with contextlib.suppress(E2EEError):
            _say(f"* epoch {member.epoch}, authenticator {member.authenticator().hex()[:16]}")
    elif name == "/remove" and arg:
        member.remove(arg.strip())
    elif name == "/leave":
        reason = await member.leave(10.0)
        _say(f"* left ({reason})")
        return True
    else:
        _say(f"* {HELP}")
    return False
