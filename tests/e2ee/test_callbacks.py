"""An application's `on_action` callback that raises must not cost the member its protocol actions.

The callback sees every action the sans-I/O member emits (subscriptions, publications, lock
calls, key installations). Were its exception to escape, the actions still queued behind the
failing one would be lost — a committer's Commit and Welcome among them — and the member's
session would be torn down as if the relay had gone.
"""

from __future__ import annotations

import logging

import pytest

from moqmls.e2ee import events as ev
from moqmls.e2ee.member import MemberConfig
from moqmls.e2ee.runtime import GroupMember
from moqmls.e2ee.world import World

FAST = MemberConfig(heartbeat_interval=2.0, liveness_timeout=30.0, gap_timeout=0.3)


def _broken(member: GroupMember, action: ev.Action) -> None:
    raise RuntimeError(f"application bug while handling {type(action).__name__}")


async def test_a_raising_callback_neither_drops_actions_nor_the_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="moqmls.e2ee.runtime")
    async with World.start("callbacks", FAST) as world:
        creator = await world.add("a", on_action=_broken)  # it commits every join below
        await creator.wait_joined(10.0)
        joiner = await world.add("b", on_action=_broken)
        await joiner.wait_joined(10.0)
        third = await world.join("c")
        assert await world.converge(10.0, {"a", "b", "c"})
        assert world.authenticators_equal()
        assert world.forks() == 0

        await creator.publish_media(b"a", b"hello from a")
        async for media in third.media():
            assert media.payload == b"hello from a"
            break
    logged = [r for r in caplog.records if "on_action callback failed" in r.getMessage()]
    assert logged, "the callback's failure is logged"
    assert all(r.exc_info and "application bug" in str(r.exc_info[1]) for r in logged)
