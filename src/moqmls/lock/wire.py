"""The lock service's HTTP/JSON encoding, each message defined once (DESIGN.md "Lock service").

`RESULTS` maps every answer to its ``result`` name and HTTP status; the server encodes and the
client decodes from that one table. `REQUESTS` defines each request body's fields and their
validators. Byte fields (Commit, Welcome, receipts, keys) travel as standard base64.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from moqmls.lock.errors import BadRequestError, LockError, ProtocolError
from moqmls.lock.model import (
    Acquired,
    Committed,
    Create,
    Created,
    EpochRecord,
    Fenced,
    GroupStatus,
    HistoryEntry,
    Join,
    Locked,
    Stale,
    check_commit_hash,
    check_holder,
    check_request_id,
    check_ttl_ms,
)
from moqmls.lock.receipt import ALGORITHM, ServiceKey

Result = Create | Join | Locked | Acquired | Stale | Committed | Created | Fenced


@dataclass(frozen=True)
class ResultWire:
    """How one result travels: its `result` name and HTTP status."""

    cls: type[Result]
    name: str
    status: int


RESULTS: tuple[ResultWire, ...] = (
    ResultWire(Create, "create", 201),
    ResultWire(Join, "join", 200),
    ResultWire(Locked, "locked", 409),
    ResultWire(Acquired, "acquired", 200),
    ResultWire(Stale, "stale", 412),
    ResultWire(Committed, "committed", 200),
    ResultWire(Created, "created", 200),
    ResultWire(Fenced, "fenced", 410),
)
_BY_CLASS = {w.cls: w for w in RESULTS}
_BY_NAME = {w.name: w for w in RESULTS}
_FIELDS = {w.cls: tuple(f.name for f in dataclasses.fields(w.cls)) for w in RESULTS}


def _to_json(value: object) -> object:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


def encode_result(result: Result) -> tuple[int, dict[str, Any]]:
    """A result's HTTP status and JSON body."""
    wire = _BY_CLASS[type(result)]
    body: dict[str, Any] = {"result": wire.name}
    for name in _FIELDS[wire.cls]:
        body[name] = _to_json(getattr(result, name))
    return wire.status, body


def _field_ok(value: object, annotation: str) -> bool:
    if isinstance(value, bool):
        return False
    if annotation == "int":
        return isinstance(value, int)
    if annotation == "str":
        return isinstance(value, str)
    if annotation in ("str | None", "bytes | None"):
        return value is None or isinstance(value, str)
    return False


def _from_json(value: object, annotation: str, status: int, name: str) -> object:
    """A field's value from its checked JSON form (bytes fields are base64)."""
    if annotation != "bytes | None" or value is None:
        return value
    try:
        return _b64(value)
    except BadRequestError as exc:
        raise ProtocolError(f"HTTP {status}: bad base64 in field {name!r}") from exc


def decode_result(status: int, body: object, allowed: tuple[type[Result], ...]) -> Result:
    """The result a response carries; ProtocolError if it is not one of `allowed`."""
    if not isinstance(body, dict):
        raise ProtocolError(f"HTTP {status}: body is not a JSON object")
    wire = _BY_NAME.get(str(body.get("result")))
    if wire is None or wire.cls not in allowed or wire.status != status:
        raise ProtocolError(f"HTTP {status}: unexpected result {body.get('result')!r:.40}")
    values: dict[str, object] = {}
    for field in dataclasses.fields(wire.cls):
        value = body.get(field.name)
        if field.name not in body and field.default is not dataclasses.MISSING:
            continue
        if not _field_ok(value, str(field.type)):
            raise ProtocolError(f"HTTP {status}: bad field {field.name!r}")
        values[field.name] = _from_json(value, str(field.type), status, field.name)
    return wire.cls(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- request bodies


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise BadRequestError("bytes must be a standard base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise BadRequestError("bytes must be standard base64") from exc


Validator = Callable[[object], object]


@dataclass(frozen=True)
class Field:
    """One request field: its validator and whether it must be present."""

    check: Validator
    required: bool = False


REQUESTS: Mapping[str, Mapping[str, Field]] = {
    "create_or_join": {"holder": Field(check_holder, True), "ttl_ms": Field(check_ttl_ms)},
    "lock": {
        "holder": Field(check_holder, True),
        "ttl_ms": Field(check_ttl_ms),
        "request_id": Field(check_request_id),
    },
    "complete": {
        "commit_hash": Field(check_commit_hash),
        "commit": Field(_b64),
        "welcome": Field(_b64),
    },
}


def parse_request(kind: str, raw: bytes) -> dict[str, Any]:
    """Validate a request body (a JSON object; empty means {}); absent or null fields -> None."""
    schema = REQUESTS[kind]
    body: object = {}
    if raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise BadRequestError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise BadRequestError(f"unknown field {unknown[0]!r:.60}")
    out: dict[str, Any] = {}
    for name, field in schema.items():
        value = body.get(name)
        if value is None:
            if field.required:
                raise BadRequestError(f"missing field {name!r}")
            out[name] = None
        else:
            out[name] = field.check(value)
    return out


def request_body(**fields: object) -> dict[str, object]:
    """A request body with absent (None) fields left out and bytes as base64."""
    out: dict[str, object] = {}
    for name, value in fields.items():
        if isinstance(value, bytes):
            out[name] = base64.b64encode(value).decode("ascii")
        elif value is not None:
            out[name] = value
    return out


# ---------------------------------------------------------------- status and records


def _as_json(value: object) -> dict[str, Any]:
    """A dataclass as a JSON object, its bytes fields as base64."""
    return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}  # type: ignore[arg-type]


def encode_status(status: GroupStatus) -> dict[str, Any]:
    """The JSON body of a status answer; each history entry carries its receipt."""
    return _as_json(status) | {"history": [_as_json(h) for h in status.history]}


def encode_record(record: EpochRecord) -> dict[str, Any]:
    """The JSON body of an epoch record; Commit, Welcome and receipt as base64 (or null)."""
    return _as_json(record)


def encode_keys(keys: tuple[ServiceKey, ...]) -> dict[str, Any]:
    """The JSON body of ``GET /v1/keys``: each receipt key with its id (hex) and algorithm."""
    return {
        "keys": [
            {
                "key_id": k.key_id.hex(),
                "alg": ALGORITHM,
                "public_key": base64.b64encode(k.public_key).decode("ascii"),
            }
            for k in keys
        ]
    }


def decode_keys(body: object) -> tuple[ServiceKey, ...]:
    """The receipt keys a ``GET /v1/keys`` answer lists (others' algorithms skipped)."""
    if not isinstance(body, dict):
        raise ProtocolError("bad keys body")
    keys = []
    for item in _need(body, "keys", list):
        if not isinstance(item, dict) or item.get("alg") != ALGORITHM:
            continue
        try:
            key = ServiceKey.of(_b64(_need(item, "public_key", str)))
        except LockError as exc:
            raise ProtocolError("bad public key in keys body") from exc
        if _need(item, "key_id", str) != key.key_id.hex():
            raise ProtocolError("a key id does not match its key")
        keys.append(key)
    return tuple(keys)


def _optional_bytes(body: Mapping[str, object], name: str) -> bytes | None:
    value = _need(body, name, (str, type(None))) if name in body else None
    try:
        return None if value is None else _b64(value)
    except BadRequestError as exc:
        raise ProtocolError(f"bad base64 in {name!r}") from exc


def _need(body: Mapping[str, object], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"bad or missing field {name!r}")
    return value


def decode_status(body: object) -> GroupStatus:
    """The GroupStatus a status answer carries."""
    if not isinstance(body, dict) or not isinstance(body.get("exists"), bool):
        raise ProtocolError("bad status body")
    history = _need(body, "history", list)
    entries = []
    for item in history:
        if not isinstance(item, dict):
            raise ProtocolError("bad history entry")
        entries.append(
            HistoryEntry(
                _need(item, "epoch", int),
                _need(item, "commit_hash", str),
                _need(item, "committer", str),
                _optional_bytes(item, "receipt"),
            )
        )
    return GroupStatus(
        body["exists"],
        _need(body, "epoch", (int, type(None))),
        _need(body, "holder", (str, type(None))),
        tuple(entries),
    )


def decode_record(body: object) -> EpochRecord:
    """The EpochRecord an epoch answer carries."""
    if not isinstance(body, dict):
        raise ProtocolError("bad epoch record body")
    for name in ("commit", "welcome"):
        _need(body, name, (str, type(None)))  # present, if null
    return EpochRecord(
        _need(body, "epoch", int),
        _need(body, "commit_hash", str),
        _need(body, "committer", str),
        _optional_bytes(body, "commit"),
        _optional_bytes(body, "welcome"),
        _optional_bytes(body, "receipt"),
    )
