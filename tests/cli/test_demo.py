"""`moqmls demo` as a user runs it: a subprocess, its JSON and exit status (issue 7)."""

from __future__ import annotations

import json
import subprocess
import sys

KEYS = {
    "members",
    "epochs",
    "authenticators_equal",
    "join_ms",
    "media_sent",
    "media_decrypted",
    "media_expected",
    "departed_decrypted_after_leave",
    "forks",
}


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moqmls", "demo", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_demo_json_reports_a_converged_group() -> None:
    n, k, m = 5, 2, 1
    done = _demo("--members", str(n), "--concurrent", str(k), "--leave", str(m), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == KEYS
    assert summary["members"] == n - m
    assert summary["authenticators_equal"] is True
    assert summary["forks"] == 0
    assert summary["departed_decrypted_after_leave"] == 0
    # everyone to everyone, then the remaining members to each other
    expected = n * (n - 1) + (n - m) * (n - m - 1)
    assert summary["media_expected"] == expected
    assert summary["media_decrypted"] == expected
    assert summary["media_sent"] == n + (n - m)
    # one commit per sequential joiner, at least one for the concurrent ones, one per leave
    assert (n - k - 1) + 1 + m <= summary["epochs"] <= (n - 1) + m
    assert 0 < summary["join_ms"]["p50"] <= summary["join_ms"]["p95"]


def test_demo_prints_a_timeline_and_summary() -> None:
    done = _demo("--members", "3", "--concurrent", "1", "--leave", "1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "member-0 created the group (epoch 0)" in out
    assert "member-1 joined at epoch 1, added by member-0" in out
    assert "member-2 leaves" in out
    assert "decrypted by departed members    0" in out
    assert out.rstrip().endswith("converged")


def test_demo_rejects_impossible_arguments() -> None:
    done = _demo("--members", "3", "--leave", "3")
    assert done.returncode == 2
    assert "--leave" in done.stderr
