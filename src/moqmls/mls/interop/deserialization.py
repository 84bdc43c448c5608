"""Runner for ``deserialization.json``: variable-size vector length headers (RFC 9420 §2.1.2)."""

from __future__ import annotations

from typing import Any

from moqmls.mls.codec import Reader, encode_varint
from moqmls.mls.interop import check_eq


def run(case: dict[str, Any]) -> None:
    """Decode the header to its length, consuming all of it, and encode the length back."""
    header = bytes.fromhex(case["vlbytes_header"])
    r = Reader(header)
    check_eq(r.varint(), case["length"], "decoded length")
    check_eq(r.remaining, 0, "bytes left after the header")
    check_eq(encode_varint(case["length"]), header, "re-encoded header")
