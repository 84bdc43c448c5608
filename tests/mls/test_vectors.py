"""Every case of every official MLS vector file (tests/vectors/mls), through the same runners
as `moqmls check-vectors`. A case whose runner does not exist yet shows as skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from moqmls.mls.interop import VECTOR_FILES, load_cases, run_case, runner_for

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "mls"


def _params() -> list[object]:
    params: list[object] = []
    for name in VECTOR_FILES:
        for index in range(len(load_cases(VECTORS / name))):
            params.append(pytest.param(name, index, id=f"{name.removesuffix('.json')}-{index}"))
    return params


_cache: dict[str, list[dict[str, object]]] = {}


@pytest.mark.parametrize(("file_name", "index"), _params())
def test_vector_case(file_name: str, index: int) -> None:
    if file_name not in _cache:
        _cache[file_name] = load_cases(VECTORS / file_name)
    outcome, detail = run_case(runner_for(file_name), _cache[file_name][index])
    if outcome == "skipped":
        pytest.skip(detail)
    assert outcome == "passed", detail


def test_all_sixteen_files_are_present() -> None:
    assert sorted(p.name for p in VECTORS.glob("*.json")) == sorted(VECTOR_FILES)
