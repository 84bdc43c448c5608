"""The package docstring's usage example, run as written (with its placeholders filled in)."""

from __future__ import annotations

import textwrap

import pytest

import moqmls.secure_objects as so


def _example() -> list[str]:
    assert so.__doc__ is not None
    lines = []
    for line in so.__doc__.split("::\n", 1)[1].splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip().splitlines()


def test_usage_example_runs() -> None:
    *body, last = _example()
    env = {"epoch5_key": b"k5" * 16, "epoch6_key": b"k6" * 16, "t": 0.0, "t2": 100.0}
    exec("\n".join(body), env)
    assert env["plain"] == so.PlainObject(group_id=0, object_id=0, payload=b"...")
    assert "ExpiredKeyIdError" in last
    with pytest.raises(so.ExpiredKeyIdError):
        exec(last, env)
