"""`reconciler completion bash|zsh`: shell completion through argcomplete.

Why argcomplete rather than shtab: task names must be completed from a spec or state
directory, which takes Python (the spec loader, the state files). shtab writes a static
script and leaves such values to hand-written shell functions; argcomplete asks the
program itself, so completion always knows the options of the installed version and task
names come from the same code `validate` and `status` use. It is pure Python without
dependencies and is imported only when the shell asks for completions (`_ARGCOMPLETE` in
the environment), so an ordinary start pays nothing for it.

Task names (a `run NAME`, a `--task`): from the spec paths already on the command line,
else from the applied set of the state directory (the tasks its controller runs), else
from the spec directory that controller was started with.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SHELLS = ("bash", "zsh")
# Arguments that take a task name, by their dest; and those that hold spec paths.
TASK_DESTS = frozenset({"name", "task", "tasks"})
SPEC_DESTS = ("paths", "path", "dir", "spec_dir", "directory")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print the shell completion script for bash or zsh",
        description="Print the script that makes SHELL complete reconciler's commands, "
        "options and task names. bash: eval \"$(reconciler completion bash)\" in ~/.bashrc, "
        "or save it as /etc/bash_completion.d/reconciler. zsh: eval "
        "\"$(reconciler completion zsh)\" in ~/.zshrc after compinit.",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import argcomplete

    sys.stdout.write(argcomplete.shellcode(["reconciler"], shell=args.shell))
    return 0


def requested() -> bool:
    """Whether this process was started by the shell to compute completions."""
    return "_ARGCOMPLETE" in os.environ


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell and exit (argcomplete's protocol); returns at once otherwise."""
    import argcomplete

    for action in _task_actions(parser):
        action.completer = task_names  # type: ignore[attr-defined]
    argcomplete.autocomplete(parser, always_complete_options=False)


def _task_actions(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _task_actions(sub)
        elif action.dest in TASK_DESTS and action.nargs != 0:
            yield action


def task_names(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """Names of tasks starting with `prefix`, from the command line's spec paths, else the
    state directory. Never raises: a completion that fails offers nothing."""
    try:
        names = _names_from_specs(_spec_paths(parsed_args))
        if not names:
            names = _names_from_state(parsed_args)
    except Exception:  # noqa: BLE001 - a TAB must never print a traceback
        return []
    return sorted(n for n in names if n.startswith(prefix))


def _spec_paths(parsed_args: argparse.Namespace) -> list[str]:
    for dest in SPEC_DESTS:
        value = getattr(parsed_args, dest, None)
        if isinstance(value, (str, Path)):
            return [str(value)]
        if isinstance(value, list) and value:
            return [str(v) for v in value]
    return []


def _names_from_specs(paths: list[str]) -> set[str]:
    if not paths:
        return set()
    from reconciler.spec import load_paths

    loaded = load_paths(paths)
    return {task.name for load in loaded.files.values() for task in load.tasks}


def _names_from_state(parsed_args: argparse.Namespace) -> set[str]:
    from reconciler.commands.options import state_dir
    from reconciler.state import APPLIED_FILE, CONTROLLER_FILE

    state = state_dir(parsed_args)
    applied = state.read_json(APPLIED_FILE)
    if isinstance(applied, dict) and applied:
        return {str(name) for name in applied}
    controller = state.read_json(CONTROLLER_FILE)
    spec_dir = controller.get("spec_dir") if isinstance(controller, dict) else None
    return _names_from_specs([spec_dir]) if isinstance(spec_dir, str) else set()
