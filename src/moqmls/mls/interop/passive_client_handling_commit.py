"""Runner for ``passive-client-handling-commit.json`` (RFC 9420 §12.4.2, test-vectors.md
"Passive Client Scenarios"): join from the Welcome, then process each epoch's proposals and
Commit and match the epoch authenticator after every one."""

from __future__ import annotations

from moqmls.mls.interop import Case
from moqmls.mls.interop.passive_client_welcome import follow


def run(case: Case) -> None:
    follow(case)
