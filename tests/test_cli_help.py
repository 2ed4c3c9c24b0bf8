"""Every option and argument of every command says what it is for in `--help`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from reconciler.cli import build_parser


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def _commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return list(_walk(build_parser(), ("reconciler",)))


def test_every_option_and_argument_has_a_description() -> None:
    commands = _commands()
    assert len(commands) >= 12  # the root and every command
    missing = [
        f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        for path, parser in commands
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS or not action.help.strip())
    ]
    assert missing == []


def test_every_command_has_a_help_line_and_a_description() -> None:
    for path, parser in _commands()[1:]:
        assert parser.description, " ".join(path)
    root = build_parser()
    [sub] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    assert [c.dest for c in sub._choices_actions if not c.help] == []


def test_help_prints_every_description() -> None:
    for path, parser in _commands():
        run = subprocess.run([sys.executable, "-m", "reconciler", *path[1:], "--help"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        text = " ".join(run.stdout.split())
        for action in parser._actions:
            if action.help and not isinstance(action, argparse._SubParsersAction):
                first = " ".join(str(action.help).split())[:30]
                if "%" not in first:  # argparse expands %(default)s and the like
                    assert first in text, (path, first)
