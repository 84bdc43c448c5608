"""Members in worker processes against one relay and lock service (`moqmls bench e2e -P`).

Real everything: the parent runs the QUIC relay and the HTTP lock service over SQLite, two
`python -m moqmls.bench.e2e_worker` processes host the members over real QUIC and HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pytest

from moqmls.bench import e2e
from moqmls.bench.e2e_procs import Cluster, WorkerError
from moqmls.e2ee.member import MemberConfig
from moqmls.lock import LockClient

CONFIG = MemberConfig(heartbeat_interval=60.0, liveness_timeout=None, sync_interval=None)


async def test_members_in_two_workers_converge_on_one_authenticator() -> None:
    async with Cluster.start("procs", CONFIG, processes=2, niceness=[0, 5]) as cluster:
        assert len({w.proc.pid for w in cluster.workers}) == 2
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, cluster.workers[0].proc.pid) == mine
        assert os.getpriority(os.PRIO_PROCESS, cluster.workers[1].proc.pid) == min(19, mine + 5)
        await cluster.add([("a0", 0)], 30.0)
        await cluster.add([(f"a{i}", i % 2) for i in range(1, 6)], 60.0)
        state = await cluster.converge(30.0)
        assert state is not None
        assert set(state) == {f"a{i}" for i in range(6)}
        # the creator's epoch 0, then one commit per batch (5 joiners at once: 1 or more)
        assert len({s["epoch"] for s in state.values()}) == 1
        assert next(iter(state.values()))["epoch"] >= 1
        assert len({s["authenticator"] for s in state.values()}) == 1
        # the lock service in this process recorded the same number of epochs
        async with LockClient(cluster.world.lock_url) as locks:
            status = await locks.status("procs")
        assert len(status.history) == next(iter(state.values()))["epoch"]

        # a member in worker 1 leaves; everyone else reaches the next epoch
        epoch = state["a1"]["epoch"]
        start = await cluster.worker_of("a1").call("leave", 10.0, name="a1")
        reached = await cluster.reached(epoch + 1, ["a1"], 20.0)
        assert reached >= start
        after = await cluster.converge(20.0)
        assert after is not None
        assert set(after) == {f"a{i}" for i in range(6)} - {"a1"}
        assert len({s["authenticator"] for s in after.values()}) == 1
        assert after["a0"]["authenticator"] != state["a0"]["authenticator"]


async def test_a_worker_that_dies_fails_its_requests_with_a_clear_error() -> None:
    async with Cluster.start("dies", CONFIG, processes=1) as cluster:
        worker = cluster.workers[0]
        worker.proc.kill()
        with pytest.raises(WorkerError, match="exited with code"):
            await worker.call("state", 10.0)
    assert worker.proc.returncode is not None


async def test_a_request_that_is_not_answered_in_time_fails() -> None:
    async with Cluster.start("hangs", CONFIG, processes=1) as cluster:
        worker = cluster.workers[0]
        await cluster.add([("h0", 0)], 30.0)
        start = time.monotonic()
        # epoch 5 never comes: the worker keeps waiting, the parent gives up after 0.5 s
        with pytest.raises(WorkerError, match="did not answer 'reached'"):
            await worker.call("reached", 0.5, epoch=5, exclude=[], timeout=30.0)
        assert time.monotonic() - start < 5.0
    assert worker.proc.returncode is not None


def test_bench_with_two_worker_processes_runs(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    e2e.add_arguments(parser)
    out = tmp_path / "e2e.json"
    args = parser.parse_args(
        [
            *("--processes", "2", "--sizes", "8", "--joins", "2"),
            *("--concurrent", "2", "--into", "4", "--removals", "1"),
            *("--json", str(out)),
        ]
    )
    assert e2e.run(args) == 0
    results = json.loads(out.read_text())
    assert results["processes"] == 2
    for key in ("join.n8.p50_ms", "join.n8.p95_ms", "concurrent2.into4_s", "removal.p95_ms"):
        assert isinstance(results[key], float) and results[key] > 0, key
    assert results["join.n8.p50_ms"] <= results["join.n8.p95_ms"]
