"""A local etcd cluster on loopback, for the etcd store's tests and benchmark.

Starts `size` members of Debian's etcd (``/usr/bin/etcd``, v3.4) on ephemeral 127.0.0.1 ports
with data directories under /dev/shm when it exists (so fsync costs what a fast disk would),
finds the leader through each member's ``/v3/maintenance/status`` gateway, and can SIGKILL
and restart members. Used as a context manager it always kills and removes what it started.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

ETCD = "/usr/bin/etcd"


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Member:
    """One etcd member: its ports, data directory and process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    """`size` etcd members on loopback; `start()` returns once all are healthy."""

    def __init__(
        self, size: int = 3, *, etcd: str = ETCD, heartbeat_ms: int = 50, election_ms: int = 500
    ) -> None:
        self.etcd = etcd
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        shm = Path("/dev/shm")
        parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.base = Path(tempfile.mkdtemp(prefix="moqmls-etcd-", dir=parent))
        self.token = "moqmls-" + secrets.token_hex(4)
        self.members = [
            Member(f"m{i}", free_port(), free_port(), self.base / f"m{i}") for i in range(size)
        ]

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """The members' client endpoints."""
        return [("127.0.0.1", m.client_port) for m in self.members]

    @property
    def spec(self) -> str:
        """The cluster as a `--store` argument."""
        return "etcd://" + ",".join(f"{h}:{p}" for h, p in self.endpoints)

    def _spawn(self, member: Member) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        member.log = open(self.base / f"{member.name}.log", "ab")  # noqa: SIM115 - closed in stop
        member.process = subprocess.Popen(
            [
                self.etcd,
                f"--name={member.name}",
                f"--data-dir={member.data_dir}",
                f"--listen-client-urls={member.client_url}",
                f"--advertise-client-urls={member.client_url}",
                f"--listen-peer-urls={member.peer_url}",
                f"--initial-advertise-peer-urls={member.peer_url}",
                f"--initial-cluster={initial}",
                "--initial-cluster-state=new",
                f"--initial-cluster-token={self.token}",
                f"--heartbeat-interval={self.heartbeat_ms}",
                f"--election-timeout={self.election_ms}",
                "--logger=zap",
                "--log-level=error",
            ],
            stdin=subprocess.DEVNULL,
            stdout=member.log,
            stderr=subprocess.STDOUT,
        )

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every member and wait until all are healthy."""
        for member in self.members:
            self._spawn(member)
        self.wait_healthy(timeout_s)

    def _get_status(self, member: Member) -> dict[str, object] | None:
        request = urllib.request.Request(
            member.client_url + "/v3/maintenance/status", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                status: dict[str, object] = json.loads(response.read())
                return status
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def _healthy(self, member: Member) -> bool:
        try:
            with urllib.request.urlopen(member.client_url + "/health", timeout=1) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def running(self) -> list[int]:
        """Indexes of the members whose process is alive."""
        return [
            i
            for i, m in enumerate(self.members)
            if m.process is not None and m.process.poll() is None
        ]

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Wait until every running member reports healthy (it has a leader)."""
        deadline = time.monotonic() + timeout_s
        while not all(self._healthy(self.members[i]) for i in self.running()):
            if time.monotonic() > deadline:
                raise TimeoutError("etcd cluster did not become healthy")
            time.sleep(0.05)

    def leader(self, timeout_s: float = 30.0) -> int:
        """The index of the current leader, once the running members agree on one."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ids: dict[str, int] = {}
            leaders = set()
            for i in self.running():
                status = self._get_status(self.members[i])
                if status is None:
                    continue
                header = status.get("header")
                if isinstance(header, dict):
                    ids[str(header.get("member_id"))] = i
                leaders.add(str(status.get("leader")))
            if len(leaders) == 1 and (leader := leaders.pop()) in ids:
                return ids[leader]
            time.sleep(0.05)
        raise TimeoutError("no etcd leader")

    def kill(self, index: int) -> None:
        """SIGKILL one member and reap it."""
        process = self.members[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def restart(self, index: int) -> None:
        """Start a killed member again on its data directory."""
        self.kill(index)
        self._spawn(self.members[index])

    def stop(self) -> None:
        """Kill every member and delete all data."""
        for i, member in enumerate(self.members):
            self.kill(i)
            if member.log is not None:
                member.log.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
