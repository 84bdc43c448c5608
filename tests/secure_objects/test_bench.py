"""`moqmls bench objects` runs end to end and writes the flat JSON the issue specifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moqmls.cli import main


def test_bench_objects_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "objects.json"
    code = main(["bench", "objects", "--number", "20", "--rounds", "1", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    keys = {f"b{s}.{k}" for s in (64, 1200, 10000) for k in ("ours_us", "bare_us", "ratio")}
    assert set(data) == keys
    for size in (64, 1200, 10000):
        ours, bare = data[f"b{size}.ours_us"], data[f"b{size}.bare_us"]
        assert ours > 0 and bare > 0
        assert data[f"b{size}.ratio"] == pytest.approx(ours / bare, rel=1e-2)
    printed = capsys.readouterr().out
    assert "1200 B" in printed and "ratio" in printed


@pytest.mark.parametrize("suite", ["1", "0x0005"])
def test_bench_objects_other_suites(suite: str) -> None:
    assert main(["bench", "objects", "--suite", suite, "--number", "5", "--rounds", "1"]) == 0


def test_bench_objects_rejects_bad_arguments() -> None:
    assert main(["bench", "objects", "--number", "0"]) == 2
    assert main(["bench", "objects", "--suite", "6"]) == 2
