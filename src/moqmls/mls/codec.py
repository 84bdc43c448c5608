"""The TLS presentation language as MLS uses it (RFC 9420 §2.1).

Each struct is declared once, as a dataclass whose fields carry their wire type
(``wire(...)``); encoding and decoding are both derived from that one declaration.
Decoding never lets a bare ``IndexError``/``struct.error`` escape: every malformed
input raises a precise `DecodeError` subclass.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar

from moqmls.mls.errors import (
    DecodeError,
    EncodeError,
    InvalidEnumError,
    InvalidOptionalError,
    InvalidVarintError,
    TrailingDataError,
    TruncatedError,
)

T = TypeVar("T")
E = TypeVar("E", bound=enum.IntEnum)

MAX_VARINT = (1 << 30) - 1


class Reader:
    """A cursor over bytes being decoded."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(
        self, data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None
    ) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self._pos = start
        self._end = len(self._data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def finish(self) -> None:
        """Require that every byte was consumed."""
        if self._pos != self._end:
            raise TrailingDataError(f"{self._end - self._pos} trailing byte(s)")

    def read(self, n: int) -> bytes:
        if n < 0 or self._pos + n > self._end:
            raise TruncatedError(f"need {n} byte(s), have {self._end - self._pos}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint(self, size: int) -> int:
        pos = self._pos
        if pos + size > self._end:
            raise TruncatedError(f"need {size} byte(s), have {self._end - pos}")
        self._pos = pos + size
        return int.from_bytes(self._data[pos : pos + size], "big")

    def varint(self) -> int:
        """A variable-size length (§2.1.2): minimal encoding, "11" prefix rejected."""
        pos = self._pos
        if pos >= self._end:
            raise TruncatedError("need 1 byte(s), have 0")
        first = self._data[pos]
        self._pos = pos + 1
        if first < 0x40:
            return first
        prefix = first >> 6
        if prefix == 3:
            raise InvalidVarintError("variable-size length with reserved prefix 0b11")
        length = 1 << prefix
        value = first & 0x3F
        if length > 1:
            value = (value << (8 * (length - 1))) | self.uint(length - 1)
            if value < (1 << (8 * (length // 2) - 2)):
                raise InvalidVarintError(f"non-minimal {length}-byte encoding of {value}")
        return value

    def opaque(self) -> bytes:
        return self.read(self.varint())

    def sub(self) -> Reader:
        """A reader over the next varint-prefixed vector; this reader skips past it."""
        length = self.varint()
        if self._pos + length > self._end:
            raise TruncatedError(f"vector of {length} byte(s), have {self._end - self._pos}")
        start = self._pos
        self._pos += length
        return Reader(self._data, start, start + length)


class Writer:
    """An append-only buffer being encoded into."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data

    def uint(self, value: int, size: int) -> None:
        try:
            self.buf += value.to_bytes(size, "big")
        except OverflowError as exc:
            raise EncodeError(f"{value} does not fit in uint{8 * size}") from exc

    def varint(self, value: int) -> None:
        if value < 0 or value > MAX_VARINT:
            raise EncodeError(f"vector length {value} exceeds 2^30 - 1")
        if value < 0x40:
            self.buf.append(value)
        elif value < 0x4000:
            self.buf += (value | 0x4000).to_bytes(2, "big")
        else:
            self.buf += (value | 0x80000000).to_bytes(4, "big")

    def opaque(self, data: bytes) -> None:
        self.varint(len(data))
        self.buf += data


def encode_varint(value: int) -> bytes:
    w = Writer()
    w.varint(value)
    return bytes(w.buf)


class Wire(Generic[T]):
    """How one value is laid out on the wire."""

    def write(self, w: Writer, value: T) -> None:
        raise NotImplementedError

    def read(self, r: Reader) -> T:
        raise NotImplementedError


class UInt(Wire[int]):
    def __init__(self, size: int) -> None:
        self.size = size

    def write(self, w: Writer, value: int) -> None:
        w.uint(value, self.size)

    def read(self, r: Reader) -> int:
        return r.uint(self.size)


class Opaque(Wire[bytes]):
    """``opaque data<V>``."""

    def write(self, w: Writer, value: bytes) -> None:
        w.opaque(value)

    def read(self, r: Reader) -> bytes:
        return r.opaque()


class Fixed(Wire[bytes]):
    """``opaque data[n]``."""

    def __init__(self, size: int) -> None:
        self.size = size

    def write(self, w: Writer, value: bytes) -> None:
        if len(value) != self.size:
            raise EncodeError(f"fixed field of {self.size} bytes given {len(value)}")
        w.write(value)

    def read(self, r: Reader) -> bytes:
        return r.read(self.size)


class Vector(Wire[tuple[T, ...]]):
    """``T items<V>``: a varint byte length, then the elements back to back."""

    def __init__(self, element: Wire[T]) -> None:
        self.element = element

    def write(self, w: Writer, value: Sequence[T]) -> None:
        inner = Writer()
        for item in value:
            self.element.write(inner, item)
        w.opaque(bytes(inner.buf))

    def read(self, r: Reader) -> tuple[T, ...]:
        sub = r.sub()
        items: list[T] = []
        while not sub.at_end():
            items.append(self.element.read(sub))
        return tuple(items)


class Optional(Wire[T | None]):
    """``optional<T>`` (§2.1.1)."""

    def __init__(self, inner: Wire[T]) -> None:
        self.inner = inner

    def write(self, w: Writer, value: T | None) -> None:
        if value is None:
            w.uint(0, 1)
        else:
            w.uint(1, 1)
            self.inner.write(w, value)

    def read(self, r: Reader) -> T | None:
        present = r.uint(1)
        if present == 0:
            return None
        if present != 1:
            raise InvalidOptionalError(f"optional presence octet {present}")
        return self.inner.read(r)


class Enum(Wire[E]):
    """A closed enumeration: values outside the IntEnum are malformed."""

    def __init__(self, cls: type[E], size: int) -> None:
        self.cls = cls
        self.size = size

    def write(self, w: Writer, value: E) -> None:
        w.uint(int(value), self.size)

    def read(self, r: Reader) -> E:
        raw = r.uint(self.size)
        try:
            return self.cls(raw)
        except ValueError:
            raise InvalidEnumError(f"{raw} is not a valid {self.cls.__name__}") from None


class Select(Wire[Any]):
    """``select (tag) { case X: A; ... }``: the wire type depends on an earlier field.

    ``cases`` maps tag values to a wire type, or to None for an empty case. ``tag`` names an
    earlier field, or is a function of the earlier fields when the RFC selects on a field of a
    nested struct (e.g. ``FramedContent.content_type`` for the auth data beside it).
    """

    def __init__(
        self, tag: str | Callable[[Mapping[str, Any]], Any], cases: Mapping[int, Wire[Any] | None]
    ) -> None:
        self.tag = tag
        self.cases = dict(cases)

    def resolve(self, ctx: Mapping[str, Any], decoding: bool) -> Wire[Any] | None:
        tag = ctx[self.tag] if isinstance(self.tag, str) else self.tag(ctx)
        try:
            return self.cases[tag]
        except KeyError:
            error = InvalidEnumError if decoding else EncodeError
            name = self.tag if isinstance(self.tag, str) else self.tag.__name__
            raise error(f"no case for {name} = {tag!r}") from None


Condition = Callable[[Mapping[str, Any]], bool]
# (field name, the wire type's read and write, its presence condition, its Select if any)
_Step = tuple[
    str,
    Callable[["Reader"], Any],
    Callable[["Writer", Any], None],
    "Condition | None",
    "Select | None",
]


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    wire: Wire[Any]
    when: Condition | None


def wire(spec: Wire[Any], when: Condition | None = None, default: Any = dataclasses.MISSING) -> Any:
    """Declare a struct field's wire type; ``when`` makes it present only if true.

    ``default`` (typically None for a ``select`` case) lets constructors omit the field.
    """
    return dataclasses.field(default=default, metadata={"wire": spec, "when": when})


# The memoised encoding lives in the instance dict beside the fields: dataclass equality,
# hashing and repr look only at the fields, so it never shows.
_ENCODED = "_encoded"


class Struct:
    """Base of every MLS struct: a dataclass whose fields are declared with `wire`."""

    _fields_cache: ClassVar[tuple[_Field, ...] | None] = None
    _plan_cache: ClassVar[tuple[_Step, ...] | None] = None

    @classmethod
    def _wire_fields(cls) -> tuple[_Field, ...]:
        cached = cls.__dict__.get("_fields_cache")
        if cached is None:
            cached = tuple(
                _Field(f.name, f.metadata["wire"], f.metadata.get("when"))
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if "wire" in f.metadata
            )
            cls._fields_cache = cached
        return cached

    def write_to(self, w: Writer) -> None:
        ctx = self.__dict__
        encoded = ctx.get(_ENCODED)
        if encoded is not None:
            w.write(encoded)
            return
        for name, _, write, when, select in self._plan():
            if when is not None and not when(ctx):
                continue
            if select is not None:
                resolved = select.resolve(ctx, decoding=False)
                if resolved is not None:
                    resolved.write(w, ctx[name])
                continue
            write(w, ctx[name])

    @classmethod
    def read_from(cls, r: Reader) -> Self:
        values: dict[str, Any] = {}
        for name, read, _, when, select in cls._plan():
            if when is not None and not when(values):
                values[name] = None
                continue
            if select is not None:
                resolved = select.resolve(values, decoding=True)
                if resolved is None:
                    values[name] = None
                    continue
                values[name] = resolved.read(r)
                continue
            values[name] = read(r)
        # Every field is on the wire, so the dataclass __init__ (one object.__setattr__ per
        # field of a frozen class) would only repeat what we already know; large ratchet
        # trees decode noticeably faster without it.
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        return obj

    @classmethod
    def _plan(cls) -> tuple[_Step, ...]:
        plan: tuple[_Step, ...] | None = cls.__dict__.get("_plan_cache")
        if plan is None:
            plan = tuple(
                (
                    f.name,
                    f.wire.read,
                    f.wire.write,
                    f.when,
                    f.wire if isinstance(f.wire, Select) else None,
                )
                for f in cls._wire_fields()
            )
            if len(plan) != len(dataclasses.fields(cls)):  # type: ignore[arg-type]
                raise TypeError(f"{cls.__name__} has fields without a wire type")
            cls._plan_cache = plan
        return plan

    def encode(self) -> bytes:
        """The wire encoding, computed once per value (values are immutable) and reused,
        also when the value is nested in another being encoded."""
        encoded: bytes | None = self.__dict__.get(_ENCODED)
        if encoded is None:
            w = Writer()
            self.write_to(w)
            encoded = bytes(w.buf)
            object.__setattr__(self, _ENCODED, encoded)
        return encoded

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode exactly one value; leftover bytes are an error."""
        r = Reader(data)
        value = cls.read_from(r)
        r.finish()
        return value


class StructWire(Wire[T]):
    """A nested struct as a field's wire type."""

    def __init__(self, cls: type[T]) -> None:
        self.cls = cls

    def write(self, w: Writer, value: T) -> None:
        value.write_to(w)  # type: ignore[attr-defined]

    def read(self, r: Reader) -> T:
        result: T = self.cls.read_from(r)  # type: ignore[attr-defined]
        return result


UINT8 = UInt(1)
UINT16 = UInt(2)
UINT32 = UInt(4)
UINT64 = UInt(8)
OPAQUE = Opaque()


def guard_decode(fn: Callable[[], T]) -> T:
    """Run a decoding step, turning any stray low-level error into a `DecodeError`."""
    try:
        return fn()
    except DecodeError:
        raise
    except (IndexError, KeyError, ValueError, TypeError, OverflowError) as exc:
        raise DecodeError(f"malformed input: {exc}") from exc
