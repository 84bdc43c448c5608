"""`moqmls bench relay` stays runnable: a tiny run through both relays writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("moq")


def test_bench_relay_small_run(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "moqmls",
            "bench",
            "relay",
            "--subscribers",
            "2",
            "--rate",
            "100",
            "--duration",
            "1",
            "--drain",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": src, "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "delivered/expected" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == {
        f"{side}.{key}"
        for side in ("ours", "moqrs")
        for key in ("delivered_ratio", "p50_ms", "p99_ms", "cpu_s")
    }
    # 100 objects to 2 subscribers at 100/s: both relays should carry nearly all of it
    assert data["ours.delivered_ratio"] > 0.9 and data["moqrs.delivered_ratio"] > 0.9
    assert data["ours.cpu_s"] > 0  # read from /proc for the relay process
