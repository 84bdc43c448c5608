"""DESIGN.md layer rule: secure_objects is sans-I/O and imports no other moqmls package."""

from __future__ import annotations

import ast
from pathlib import Path

import moqmls.secure_objects

PACKAGE = Path(moqmls.secure_objects.__file__).parent
FORBIDDEN_STDLIB = {"asyncio", "socket", "time", "threading", "selectors"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imports_only_itself_and_no_io() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for name in _imports(path):
            if name.startswith("moqmls"):
                assert name.startswith("moqmls.secure_objects"), (path.name, name)
            assert name.split(".")[0] not in FORBIDDEN_STDLIB, (path.name, name)
