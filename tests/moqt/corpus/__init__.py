"""Hand-checked MoQT byte strings, one module per draft.

Every byte string is written by hand from the draft's message layouts, one field per
line as ``hex | derivation``; `wire()` keeps the hex left of ``|``. None of them was
produced by moqmls's own encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def wire(annotated: str) -> bytes:
    """The bytes of an annotated hex block: the hex before ``|`` on each line."""
    out = []
    for line in annotated.splitlines():
        hexpart = line.split("|", 1)[0]
        out.append("".join(hexpart.split()))
    return bytes.fromhex("".join(out))


@dataclass(frozen=True)
class Case:
    """A value and the annotated bytes that encode it."""

    name: str
    value: Any
    annotated: str

    @property
    def data(self) -> bytes:
        return wire(self.annotated)
