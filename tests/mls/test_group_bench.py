"""`moqmls bench mls` runs end to end at a tiny size and writes the JSON keys issue 3 names
(timings themselves are the benchmark's business, never asserted here)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from moqmls.bench import mls as bench

KEYS = {
    "build_s",
    "add_commit_ms",
    "add_process_ms",
    "join_ms",
    "path_commit_ms",
    "path_process_ms",
}


def _args(tmp_path: Path, *options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    bench.add_arguments(parser)
    return parser.parse_args(["--json", str(tmp_path / "out.json"), *options])


def test_json_has_every_metric_per_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.run(_args(tmp_path, "--sizes", "2,3", "--repeat", "1", "--no-peer")) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert set(data) == {f"n{n}.{metric}" for n in (2, 3) for metric in KEYS}
    assert all(isinstance(v, float) and v > 0 for v in data.values())
    table = capsys.readouterr().out
    assert "path_commit_ms" in table and "rfc9420" in table


def test_peer_keys_are_prefixed(tmp_path: Path) -> None:
    pytest.importorskip("rfc9420")
    assert bench.run(_args(tmp_path, "--sizes", "2", "--repeat", "1")) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    peer = {k for k in data if k.startswith("rfc9420.")}
    assert peer == {
        f"rfc9420.n2.{m}" for m in ("build_s", "add_commit_ms", "add_process_ms", "join_ms")
    }


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    assert bench.run(_args(tmp_path, "--sizes", "ten", "--no-peer")) == 2
    assert bench.run(_args(tmp_path, "--sizes", "0", "--no-peer")) == 2
