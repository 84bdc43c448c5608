"""`moqmls bench objects`: Secure Objects protect+unprotect per object against bare AES-GCM.

For each payload size (64 B, 1,200 B, 10 kB) one object goes through `KeyRing.protect` and
`KeyRing.unprotect` (keys derived once per track and epoch, as in use), and in the same run
`cryptography`'s AESGCM encrypts and decrypts the same payload with an AAD of the same length.
Batches of the two alternate so machine load hits both alike, each timed in this thread's CPU
time (time spent descheduled on a shared machine counts for neither); the median batch of
each side counts, and the ratio is the quotient of the two medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from moqmls.secure_objects import KeyRing, PlainObject, SecureObjectError, cipher_suite
from moqmls.secure_objects.objects import SecureObject

SIZES = (64, 1200, 10_000)
TARGET_SIZE = 1200
TARGET_RATIO = 1.5
NAMESPACE = (b"bench-group", b"media")
TRACK = b"camera"


def _int_any_base(text: str) -> int:
    """``4``, ``0x0004``: a cipher suite code point as typed."""
    return int(text, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        type=_int_any_base,
        default=0x0004,
        help="Secure Objects cipher suite to measure (default 0x0004, AES_128_GCM_SHA256_128)",
    )
    parser.add_argument(
        "--number",
        type=int,
        default=5_000,
        help="objects per timed batch (default 5000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=21,
        help="alternating batches per size and side; the median counts (default 21)",
    )


@dataclass(frozen=True)
class Result:
    size: int
    ours_us: float
    bare_us: float

    @property
    def ratio(self) -> float:
        return self.ours_us / self.bare_us


def _rings(suite: int) -> tuple[KeyRing, KeyRing]:
    base_key = os.urandom(cipher_suite(suite).nh)
    sender, receiver = KeyRing(suite), KeyRing(suite)
    for ring in (sender, receiver):
        ring.install(NAMESPACE, 1, base_key, now=0.0)
    sender.set_current(NAMESPACE, 1, now=0.0)
    return sender, receiver


def _ours(sender: KeyRing, receiver: KeyRing, obj: PlainObject) -> Callable[[], object]:
    protect, unprotect = sender.protect, receiver.unprotect

    def one() -> object:
        return unprotect(NAMESPACE, TRACK, protect(NAMESPACE, TRACK, obj), 1.0)

    if one() != obj:
        raise AssertionError("protect/unprotect did not round-trip")
    return one


def _bare(payload: bytes, aad_len: int, key_len: int) -> Callable[[], object]:
    aead = AESGCM(os.urandom(key_len))
    nonce, aad = os.urandom(12), os.urandom(aad_len)
    encrypt, decrypt = aead.encrypt, aead.decrypt

    def one() -> object:
        return decrypt(nonce, encrypt(nonce, payload, aad), aad)

    if one() != payload:
        raise AssertionError("AES-GCM did not round-trip")
    return one


def _aad_len(sealed: SecureObject) -> int:
    """Our AAD's length (§3.5): 8 + 4 + 1 bytes of ids, then the immutable properties."""
    return 13 + sum(2 + 1 + len(p.value) for p in sealed.immutable_properties)


def measure(size: int, suite: int, number: int, rounds: int) -> Result:
    """Time one payload size; both sides alternate batch by batch."""
    sender, receiver = _rings(suite)
    obj = PlainObject(group_id=7, object_id=3, payload=os.urandom(size))
    ours = _ours(sender, receiver, obj)
    key_len = 32 if cipher_suite(suite).nk == 32 else 16
    bare = _bare(obj.payload, _aad_len(sender.protect(NAMESPACE, TRACK, obj)), key_len)
    ours_t = timeit.Timer(ours, timer=time.thread_time)
    bare_t = timeit.Timer(bare, timer=time.thread_time)
    ours_s: list[float] = []
    bare_s: list[float] = []
    for _ in range(rounds):
        ours_s.append(ours_t.timeit(number) / number)
        bare_s.append(bare_t.timeit(number) / number)
    return Result(size, statistics.median(ours_s) * 1e6, statistics.median(bare_s) * 1e6)


def _table(results: list[Result], suite: int) -> str:
    lines = [
        f"Secure Objects suite {suite:#06x}: protect+unprotect per object vs bare AESGCM "
        "encrypt+decrypt",
        "",
        f"{'payload':>9}  {'ours µs':>9}  {'bare µs':>9}  {'ratio':>6}",
        f"{'-' * 9}  {'-' * 9}  {'-' * 9}  {'-' * 6}",
    ]
    for r in results:
        lines.append(f"{r.size:>7} B  {r.ours_us:>9.2f}  {r.bare_us:>9.2f}  {r.ratio:>6.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        suite = cipher_suite(args.suite).value
    except SecureObjectError as exc:
        print(f"moqmls bench objects: {exc}")
        return 2
    if args.number < 1 or args.rounds < 1:
        print("moqmls bench objects: --number and --rounds must be >= 1")
        return 2
    results = []
    for size in SIZES:
        print(f"measuring {size} B payloads ({args.rounds} x {args.number} objects per side) ...")
        results.append(measure(size, suite, args.number, args.rounds))
    print()
    print(_table(results, suite))
    target = next(r for r in results if r.size == TARGET_SIZE)
    verdict = "met" if target.ratio <= TARGET_RATIO else "NOT met"
    print(f"\ntarget ratio <= {TARGET_RATIO} at {TARGET_SIZE} B: {verdict} ({target.ratio:.2f})")
    if args.json:
        flat: dict[str, float] = {}
        for r in results:
            flat[f"b{r.size}.ours_us"] = round(r.ours_us, 3)
            flat[f"b{r.size}.bare_us"] = round(r.bare_us, 3)
            flat[f"b{r.size}.ratio"] = round(r.ratio, 3)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(flat, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0
