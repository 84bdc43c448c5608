"""Runners for the mlswg interop test vectors (RFC 9420; `mls-implementations/test-vectors`).

Each vector file has a runner module here, named after the file (``tree-math.json`` ->
``moqmls.mls.interop.tree_math``), defining ``run(case: dict) -> None``: it checks every value
the vector documents and raises `CaseFailed` on the first mismatch, or `CaseSkipped` for a
case it cannot run (counted as skipped, never as passed). A file without a runner module counts
all its cases as skipped. `moqmls check-vectors` and the pytest suite both use these runners.
"""

from __future__ import annotations

import importlib
import json
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Case = dict[str, Any]
Runner = Callable[[Case], None]

VECTOR_FILES: tuple[str, ...] = (
    "tree-math.json",
    "crypto-basics.json",
    "secret-tree.json",
    "message-protection.json",
    "key-schedule.json",
    "psk_secret.json",
    "transcript-hashes.json",
    "welcome.json",
    "tree-operations.json",
    "tree-validation.json",
    "treekem.json",
    "messages.json",
    "deserialization.json",
    "passive-client-welcome.json",
    "passive-client-handling-commit.json",
    "passive-client-random.json",
)


class CaseFailed(AssertionError):
    """A vector case whose expected value did not match."""


class CaseSkipped(Exception):
    """A vector case this implementation cannot run yet (never counted as passed)."""


def check(condition: bool, what: str) -> None:
    """Fail the current case with ``what`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(what)


def check_eq(actual: object, expected: object, what: str) -> None:
    """Fail the current case unless ``actual == expected``, showing both."""
    if actual != expected:
        shown_a = actual.hex() if isinstance(actual, bytes) else actual
        shown_e = expected.hex() if isinstance(expected, bytes) else expected
        raise CaseFailed(f"{what}: got {shown_a!r}, expected {shown_e!r}")


def module_name(file_name: str) -> str:
    return "moqmls.mls.interop." + file_name.removesuffix(".json").replace("-", "_")


def runner_for(file_name: str) -> Runner | None:
    """The runner of a vector file, or None when none is written yet."""
    name = module_name(file_name)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    runner: Runner = module.run
    return runner


def load_cases(path: Path) -> list[Case]:
    cases = json.loads(path.read_text())
    if not isinstance(cases, list):
        raise ValueError(f"{path.name}: expected a JSON list of cases")
    return cases


@dataclass
class FileResult:
    name: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def run_case(runner: Runner | None, case: Case) -> tuple[str, str]:
    """Run one case: ("passed" | "failed" | "skipped", detail)."""
    if runner is None:
        return "skipped", "not implemented yet"
    try:
        runner(case)
    except CaseSkipped as exc:
        return "skipped", str(exc)
    except CaseFailed as exc:
        return "failed", str(exc)
    except Exception as exc:  # a crash in a runner is a failure of that case, not of the run
        return "failed", "".join(traceback.format_exception_only(exc)).strip()
    return "passed", ""


def run_file(path: Path) -> FileResult:
    """Run every case of one vector file."""
    result = FileResult(path.name)
    runner = runner_for(path.name)
    for index, case in enumerate(load_cases(path)):
        outcome, detail = run_case(runner, case)
        result.cases += 1
        setattr(result, outcome, getattr(result, outcome) + 1)
        if outcome == "failed":
            result.failures.append(f"case {index}: {detail}")
    return result


def vector_paths(directory: Path) -> Iterator[Path]:
    """The known vector files present in ``directory``, in a fixed order."""
    for name in VECTOR_FILES:
        path = directory / name
        if path.exists():
            yield path
