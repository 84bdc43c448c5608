"""`moqmls check-vectors DIR`: run the official MLS interop vectors and report per file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from moqmls.mls.interop import FileResult, run_file, vector_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="folder holding the mlswg test-vector JSON files (e.g. tests/vectors/mls)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON summary per file (cases, passed, failed, skipped) instead of a table",
    )
    parser.add_argument(
        "--only", metavar="FILE", action="append", help="run only this file (repeatable)"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show every failing case's reason"
    )


def _table(results: list[FileResult]) -> str:
    header = f"{'file':<38} {'cases':>6} {'passed':>7} {'failed':>7} {'skipped':>8}"
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(f"{r.name:<38} {r.cases:>6} {r.passed:>7} {r.failed:>7} {r.skipped:>8}")
    total = FileResult("total")
    for r in results:
        total.cases += r.cases
        total.passed += r.passed
        total.failed += r.failed
        total.skipped += r.skipped
    rows += [
        "-" * len(header),
        f"{'total':<38} {total.cases:>6} {total.passed:>7} {total.failed:>7} {total.skipped:>8}",
    ]
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"moqmls check-vectors: {directory} is not a directory", file=sys.stderr)
        return 2
    paths = [p for p in vector_paths(directory) if not args.only or p.name in args.only]
    if not paths:
        print(f"moqmls check-vectors: no known vector files in {directory}", file=sys.stderr)
        return 2
    results = []
    for path in paths:
        started = time.perf_counter()
        result = run_file(path)
        results.append(result)
        if not args.json:
            elapsed = time.perf_counter() - started
            print(
                f"  {path.name}: {result.passed}/{result.cases} passed ({elapsed:.1f} s)",
                file=sys.stderr,
            )
            for failure in result.failures[: None if args.verbose else 3]:
                print(f"    FAILED {failure}", file=sys.stderr)
    if args.json:
        files = {
            r.name: {"cases": r.cases, "passed": r.passed, "failed": r.failed, "skipped": r.skipped}
            for r in results
        }
        print(json.dumps({"files": files}, indent=2))
    else:
        print(_table(results))
    return 1 if any(r.failed for r in results) else 0
