"""`moqmls bench TARGET [options]`: one benchmark module per target under `moqmls.bench`.

Every benchmark measures its named peer in the same run and reports ratios; `--json FILE`
writes one flat JSON object of numbers. `moqmls bench TARGET --help` lists a target's options.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS: dict[str, str] = {
    "mls": "MLS group operations at 10/100/1000 members (vs the rfc9420 package)",
    "relay": "1 publisher -> 100 subscribers through our relay and moq-rs's",
    "objects": "Secure Objects protect+unprotect vs bare AES-GCM",
    "lock": "lock service commit cycles/s and latency per store",
    "e2e": "join / removal latency of the whole system",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = "\n".join(f"  {name:<8} {text}" for name, text in TARGETS.items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = f"targets:\n{targets}"
    parser.add_argument("target", choices=sorted(TARGETS), metavar="TARGET")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the target's options")


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"moqmls.bench.{args.target}")
    parser = argparse.ArgumentParser(
        prog=f"moqmls bench {args.target}", description=TARGETS[args.target]
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as flat JSON")
    module.add_arguments(parser)
    code: int = module.run(parser.parse_args(args.options))
    return code
