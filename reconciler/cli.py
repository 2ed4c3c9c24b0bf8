"""Command-line entry point: parses arguments and hands off to one command module.

Each module in ``reconciler.commands`` owns one command (or a small family): it exposes
``register(subparsers)`` which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning the exit code. This file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from reconciler import __version__

# Order here is the order of `reconciler --help`.
COMMAND_MODULES = [
    "apply",
    "diff",
    "validate",
    "get",
    "plan",
    "status",
    "runs",  # run history
    "logs",
    "signals",  # reload, stop, run
    "importer",  # import
    "fleet_cmd",  # fleet hosts, fleet runs (etcd)
    "schema",
]


class UsageParser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep that, as the contract says."""


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="reconciler",
        description="Declarative cron jobs and daemons for a fleet of hosts.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"reconciler.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reconciler.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["apply"]:
        # Before the imports below: a controller told to stop while still starting
        # stops cleanly (exit 0) instead of dying of the signal.
        from reconciler.commands.apply import catch_early_signals

        catch_early_signals()
    parser = build_parser()
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `reconciler get specs/ | head` must not print a traceback.
        return 0
