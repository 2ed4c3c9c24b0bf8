"""Command-line entry point: parses arguments and hands off to one command module.

Each module in ``reconciler.commands`` owns one command (or a small family): it exposes
``register(subparsers)`` which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning the exit code. This file only wires them together.

Only the chosen command's module is imported: an operator's `reconciler status` must not
pay for the controller, pydantic and YAML that `apply` and `validate` need. The other
commands are listed from ``COMMAND_HELP`` (name and help line, as in their modules;
tests/test_cli_lazy.py checks that the two agree), which is all `reconciler --help` and
an "invalid choice" error show of them. ``build_parser()`` still builds every parser (the
help tests and shell completion walk it).
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    "control",  # reload, stop, run
    "import_tasks",  # import
    "fleet_cmd",  # fleet hosts, fleet runs (etcd)
    "schema",
    "completion",  # the shell completion script
]


# Per module: the commands it registers with their help lines, in its order. A module
# missing here is imported for `--help` and for any command not found here.
COMMAND_HELP: dict[str, list[tuple[str, str]]] = {
    "apply": [("apply", "run the controller on a spec directory (foreground, until SIGTERM)")],
    "diff": [("diff", "dry run: what apply would change on this host")],
    "validate": [("validate", "check task documents against the schema and the rules")],
    "get": [("get", "list the tasks of a spec directory: schedule, hosts, next run")],
    "plan": [("plan", "list the due times of a host's cron tasks in a time window")],
    "status": [("status", "show what the controller on this host is doing")],
    "runs": [("runs", "list recorded runs, newest first: outcome, reason, duration")],
    "logs": [("logs", "print the output of a task's latest run (or one run); -f follows it")],
    "control": [
        ("reload", "make the running controller re-read its spec directory now (SIGHUP)"),
        ("stop", "stop the running controller (SIGTERM) and wait for it to exit"),
        ("run", "start one run of a cron task now"),
    ],
    "import_tasks": [("import", "convert a crontab or a gotorch task file into task documents")],
    "fleet_cmd": [("fleet", "the fleet as etcd knows it: hosts, runs (with --etcd)")],
    "schema": [("schema", "print the JSON Schema of task documents")],
    "completion": [("completion", "print the shell completion script for bash or zsh")],
}
_MODULE_OF = {name: module for module, cmds in COMMAND_HELP.items() for name, _ in cmds}
_ROOT_FLAGS = ("-h", "--help", "--version")


class UsageParser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep that, as the contract says."""


def build_parser(command: str | None = None, *, every: bool = True) -> argparse.ArgumentParser:
    """The parser; with ``every=False`` only ``command``'s module (if known) is imported
    and the other commands are stubs that carry their name and help line."""
    parser = UsageParser(
        prog="reconciler",
        description="Declarative cron jobs and daemons for a fleet of hosts.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _MODULE_OF.get(command) if command is not None else None
    for name in COMMAND_MODULES:
        listed = COMMAND_HELP.get(name)
        if not every and listed is not None and name != chosen:
            for cmd, help_line in listed:
                sub.add_parser(cmd, help=help_line, add_help=False)
            continue
        try:
            module = importlib.import_module(f"reconciler.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"reconciler.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def _command_of(args: Sequence[str]) -> str | None:
    """The command word, when everything before it is a root flag; else None."""
    for arg in args:
        if arg in _ROOT_FLAGS:
            continue
        return None if arg.startswith("-") else arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["apply"]:
        # Before the imports below: a controller told to stop while still starting
        # stops cleanly (exit 0) instead of dying of the signal.
        from reconciler.commands.apply import catch_early_signals

        catch_early_signals()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: every parser
        parser = build_parser()
        try:
            from reconciler.commands.completion import complete
        except ModuleNotFoundError as exc:
            if exc.name != "reconciler.commands.completion":
                raise
        else:
            complete(parser)
    else:
        command = _command_of(args_list)
        # An unknown word: every module, so that a command missing from COMMAND_HELP
        # still runs, and the error lists them all.
        parser = build_parser(command, every=command is not None and command not in _MODULE_OF)
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
