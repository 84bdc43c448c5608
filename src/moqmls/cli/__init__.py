"""The `moqmls` command: a thin dispatcher over one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and is
imported only when its subcommand is chosen, so `moqmls relay` never pays for the MLS
stack and a missing optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("demo", "moqmls.cli.demo", "run the whole system on loopback and show it working"),
    Command("relay", "moqmls.cli.relay", "run a caching MoQT relay"),
    Command("lock-service", "moqmls.cli.lock_service", "run the group lock service (HTTP)"),
    Command("chat", "moqmls.cli.chat", "interactive end-to-end encrypted group chat"),
    Command("bench", "moqmls.cli.bench", "benchmarks: mls | relay | objects | lock | e2e"),
    Command("check-vectors", "moqmls.cli.check_vectors", "run the official MLS test vectors"),
)


def build_parser(command: Command) -> argparse.ArgumentParser:
    """The argument parser of one subcommand, built by its own module."""
    module = importlib.import_module(command.module)
    parser = argparse.ArgumentParser(prog=f"moqmls {command.name}", description=command.help)
    module.add_arguments(parser)
    return parser


def _usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = ["usage: moqmls COMMAND [options]", "", "commands:"]
    lines += [f"  {c.name:<{width}}  {c.help}" for c in COMMANDS]
    lines += ["", "`moqmls COMMAND --help` describes each command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `moqmls` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from moqmls import __version__

        print(f"moqmls {__version__}")
        return 0
    by_name = {c.name: c for c in COMMANDS}
    command = by_name.get(args[0])
    if command is None:
        print(f"moqmls: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(command.module)
    parser = build_parser(command)
    try:
        code: int = module.run(parser.parse_args(args[1:]))
    except KeyboardInterrupt:
        return 130
    return code
