"""The etcd store on a real 3-member etcd cluster on loopback, served over HTTP.

The cluster is started by the test module itself (Debian's etcd-server, /usr/bin/etcd) and
always torn down. The leader is SIGKILLed twice while clients race; every epoch must still
have exactly one winner.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from moqmls.lock import (
    Acquired,
    Create,
    Created,
    Fenced,
    LockClient,
    Locked,
    Stale,
    UnavailableError,
    serve,
)
from moqmls.lock.etcd import EtcdStore
from moqmls.lock.etcd_cluster import ETCD, EtcdCluster
from tests.lock.lock_helpers import (
    RaceLog,
    assert_create_race,
    assert_receipt_proves_only_this,
    commit_bytes,
    committed,
    create_group,
    race_create,
    race_epochs,
    response_dropping_proxy,
    service_process,
)

pytestmark = pytest.mark.skipif(
    not os.access(ETCD, os.X_OK), reason="etcd-server is not installed (.ci/run installs it)"
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster(3) as started:
        yield started


def fresh_store(cluster: EtcdCluster, prefix: str, first: int = 0) -> EtcdStore:
    """A store on its own key prefix, trying member `first` first."""
    endpoints = cluster.endpoints[first:] + cluster.endpoints[:first]
    return EtcdStore(endpoints, prefix=prefix, deadline_s=20)


@pytest.fixture
async def etcd_url(cluster: EtcdCluster) -> AsyncIterator[str]:
    async with fresh_store(cluster, f"/t/{uuid.uuid4().hex}/") as store, serve(store) as url:
        yield url


async def test_eight_racers_300_epochs(etcd_url: str) -> None:
    clients = [LockClient(etcd_url) for _ in range(8)]
    try:
        await create_group(clients[0], "g")
        log = await race_epochs(clients, "g", 300)
        status = await clients[0].status("g")
    finally:
        for c in clients:
            await c.close()
    assert sorted(e for e, _, _ in log.wins) == list(range(300))
    assert status.epoch == 300
    assert [(h.epoch, h.committer, h.commit_hash) for h in status.history] == sorted(log.wins)
    assert log.locked > 0


async def test_twenty_racers_one_create(etcd_url: str) -> None:
    clients = [LockClient(etcd_url) for _ in range(20)]
    try:
        answers = await race_create(clients, "fresh")
    finally:
        for c in clients:
            await c.close()
    assert_create_race(answers)


async def test_silent_holder_is_fenced_after_its_ttl(etcd_url: str) -> None:
    async with LockClient(etcd_url) as client:
        await create_group(client, "g")
        started = time.monotonic()  # before the grant: the lease cannot end sooner than 1 s
        silent = await client.lock("g", 0, "silent", ttl_ms=1000)
        assert isinstance(silent, Acquired) and silent.ttl_ms == 1000
        while True:
            taken = await client.lock("g", 0, "other")
            if isinstance(taken, Acquired):
                break
            assert isinstance(taken, Locked) and taken.holder == "silent"
            await asyncio.sleep(0.05)
        assert time.monotonic() - started >= 0.99, "the lease held for its TTL"
        assert await client.complete(silent.token, commit=b"late") == Fenced()
        assert committed(await client.complete(taken.token, commit=b"ok"), 1)


async def test_unknown_outcomes_settled_by_retry(etcd_url: str) -> None:
    async with LockClient(etcd_url) as client:
        await create_group(client, "g")
        async with (
            response_dropping_proxy(etcd_url, drops=1) as proxied,
            LockClient(proxied, attempts=1) as lossy,
        ):
            with pytest.raises(UnavailableError):
                await lossy.lock("g", 0, "m", request_id="req-7")
        assert isinstance(await client.lock("g", 0, "other"), Locked)
        again = await client.lock("g", 0, "m", request_id="req-7")
        assert isinstance(again, Acquired)
        async with response_dropping_proxy(etcd_url, drops=1) as proxied, LockClient(proxied) as c:
            assert committed(await c.complete(again.token, commit=b"c"), 1)
        assert (await client.status("g")).epoch == 1


async def test_leader_sigkilled_twice_during_race(cluster: EtcdCluster) -> None:
    prefix = f"/t/{uuid.uuid4().hex}/"
    log, stop, killed = RaceLog(), asyncio.Event(), []
    first_leader = await asyncio.to_thread(cluster.leader)

    async def progress(more: int) -> None:
        target = len(log.wins) + more
        while len(log.wins) < target:
            await asyncio.sleep(0.01)

    async def killer() -> None:
        try:
            for _ in range(2):
                await asyncio.wait_for(progress(15), 60)
                leader = await asyncio.to_thread(cluster.leader)
                await asyncio.to_thread(cluster.kill, leader)
                killed.append(leader)
                await asyncio.wait_for(progress(15), 60)  # two members carry on
                await asyncio.to_thread(cluster.restart, leader)
                await asyncio.to_thread(cluster.wait_healthy)
            await asyncio.wait_for(progress(10), 60)
        finally:
            stop.set()

    async with (
        fresh_store(cluster, prefix, first_leader) as store_a,  # its member will be killed
        fresh_store(cluster, prefix, first_leader + 1) as store_b,
        serve(store_a) as url_a,
        serve(store_b) as url_b,
    ):
        clients = [LockClient(url_a if i % 2 else url_b, timeout_s=30) for i in range(8)]
        try:
            await create_group(clients[0], "g")
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(race_epochs(clients, "g", 10**9, log=log, stop=stop))
                tasks.create_task(killer())
            status = await clients[0].status("g")
            records = [await clients[1].epoch("g", e) for e, _, _ in log.wins[:5]]
        finally:
            for c in clients:
                await c.close()
    assert len(killed) == 2 and killed[0] == first_leader
    assert store_a.failovers + store_b.failovers >= 1, "the service did lose an endpoint"
    epochs = sorted(e for e, _, _ in log.wins)
    assert epochs == list(range(len(epochs))), "exactly one Committed per epoch, no gaps"
    assert len(epochs) >= 40
    assert status.epoch == len(epochs)
    assert [(h.epoch, h.committer, h.commit_hash) for h in status.history] == sorted(log.wins)
    for (epoch, holder, _), record in zip(log.wins[:5], records, strict=True):
        assert record is not None and record.commit == commit_bytes("g", epoch, holder)


async def test_cli_service_on_the_cluster(cluster: EtcdCluster) -> None:
    group = f"cli-{uuid.uuid4().hex[:8]}"
    async with service_process(cluster.spec) as (url, _):
        clients = [LockClient(url) for _ in range(2)]
        try:
            await create_group(clients[0], group)
            log = await race_epochs(clients, group, 10)
        finally:
            for c in clients:
                await c.close()
    assert sorted(e for e, _, _ in log.wins) == list(range(10))


async def test_two_stores_never_decide_on_a_stale_view(cluster: EtcdCluster) -> None:
    prefix = f"/t/{uuid.uuid4().hex}/"
    async with fresh_store(cluster, prefix, 0) as a, fresh_store(cluster, prefix, 1) as b:
        create = await a.create_or_join("g", "founder")
        assert isinstance(create, Create)
        assert await a.complete(create.token) == Created(0)
        held = await a.lock("g", 0, "a")  # a now remembers the group at epoch 0
        assert isinstance(held, Acquired)
        await b.release(held.token)
        for epoch in range(3):  # b moves the group on behind a's back
            got = await b.lock("g", epoch, "b")
            assert isinstance(got, Acquired)
            assert committed(await b.complete(got.token, commit_hash=sha(b"%d" % epoch)), epoch + 1)
        assert await a.lock("g", 0, "a") == Stale(3)
        assert await a.complete(held.token, commit_hash=sha(b"late")) == Fenced()
        got = await a.lock("g", 3, "a")
        assert isinstance(got, Acquired)
        other = await b.lock("g", 3, "b")
        assert isinstance(other, Locked) and other.holder == "a"
        assert committed(await a.complete(got.token, commit_hash=sha(b"a3")), 4)
        assert (await b.status("g")).epoch == 4


async def test_two_services_on_one_cluster_sign_receipts_with_one_key(
    cluster: EtcdCluster,
) -> None:
    prefix = f"/t/{uuid.uuid4().hex}/"
    async with (
        fresh_store(cluster, prefix, 0) as one,
        fresh_store(cluster, prefix, 1) as two,
        serve(one) as url_one,
        serve(two) as url_two,
        LockClient(url_one) as a,
        LockClient(url_two) as b,
    ):
        assert await a.service_keys() == await b.service_keys()
        await create_group(a, "signed")
        for epoch, client in enumerate((a, b, a)):
            got = await client.lock("signed", epoch, f"h{epoch}")
            assert isinstance(got, Acquired)
            commit = b"c%d" % epoch
            done = await client.complete(got.token, commit=commit)
            assert committed(done, epoch + 1)
            assert isinstance(done.receipt, bytes)
            # a member that only knows service one's key verifies service two's receipts
            await a.verify_receipt(
                done.receipt,
                group="signed",
                epoch=epoch,
                committer=f"h{epoch}",
                commit_hash=hashlib.sha256(commit).digest(),
            )
            await assert_receipt_proves_only_this(
                b, done.receipt, "signed", epoch, f"h{epoch}", hashlib.sha256(commit).digest()
            )
            record = await b.epoch("signed", epoch)
            assert record is not None and record.receipt == done.receipt
        history = (await a.status("signed")).history
        assert [h.receipt is not None for h in history] == [True] * 3
