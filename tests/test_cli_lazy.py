"""The CLI imports only the chosen command's module; the others are listed from
reconciler.cli.COMMAND_HELP, which must say what their modules say."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from reconciler import cli


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, str | None]]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [(a.dest, a.help) for a in sub._choices_actions]


def test_the_help_table_agrees_with_the_modules() -> None:
    full = _commands(cli.build_parser())
    listed = [
        item for name in cli.COMMAND_MODULES for item in cli.COMMAND_HELP.get(name, [])
    ]
    assert listed == full
    assert sorted(cli.COMMAND_HELP) == sorted(cli.COMMAND_MODULES)


def test_the_lazy_parser_lists_the_same_commands() -> None:
    full = _commands(cli.build_parser())
    assert _commands(cli.build_parser(None, every=False)) == full
    for name, _ in full:
        assert _commands(cli.build_parser(name, every=False)) == full


def _imported(*args: str) -> list[str]:
    code = (
        "import sys, json\n"
        "from reconciler.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write(json.dumps(sorted(sys.modules)))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    return list(json.loads(run.stderr.splitlines()[-1]))


HEAVY = ("pydantic", "yaml", "jsonschema", "jinja2", "reconciler.controller", "reconciler.spec")


def test_help_imports_no_command_module() -> None:
    mods = _imported("--help")
    assert [m for m in mods if m.startswith("reconciler.commands.")] == []
    assert [m for m in mods if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


def test_a_command_imports_its_own_module_only(tmp_path: object) -> None:
    mods = _imported("status", "--state-dir", str(tmp_path))
    commands = [m for m in mods if m.startswith("reconciler.commands.")]
    # Besides its own module: the shared option and output helpers, no other command.
    shared = {"reconciler.commands.options", "reconciler.commands.output"}
    assert set(commands) <= {"reconciler.commands.status"} | shared
    assert "reconciler.commands.status" in commands
    assert not any(m == h or m.startswith(h + ".") for m in mods for h in HEAVY)


def test_schema_needs_no_loader() -> None:
    mods = _imported("schema")
    assert not any(m == h or m.startswith(h + ".") for m in mods for h in HEAVY)


def test_an_unknown_command_still_lists_every_command() -> None:
    run = subprocess.run([sys.executable, "-m", "reconciler", "bogus"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 2
    for name, _ in _commands(cli.build_parser()):
        assert f"'{name}'" in run.stderr
