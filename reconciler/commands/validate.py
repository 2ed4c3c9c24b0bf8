"""`reconciler validate PATH...`: check task documents; one line per error, then a summary."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "validate",
        help="check task documents against the schema and the rules",
        description="Check task files (and directories, recursively) against the schema, "
        "schedules, zones, hosts entries and unique names. Prints every error as "
        "FILE:LINE: TASK: FIELD: MESSAGE, then a summary. Exit 0 when all are valid, 1 "
        "otherwise (a path that does not exist is an error too).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="task file or spec directory")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(func=run)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def run(args: argparse.Namespace) -> int:
    from reconciler.spec import load_paths  # here: the other commands need not pay for it

    result = load_paths(args.paths)
    errors = result.errors
    files = set(result.files) | {e.file for e in errors}
    bad = {e.file for e in errors}
    tasks = sum(len(f.tasks) for f in result.files.values())
    if args.output == "json":
        report = {
            "valid": not errors,
            "files": len(files),
            "invalidFiles": len(bad),
            "tasks": tasks,
            "errors": [e.to_dict() for e in errors],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 1 if errors else 0
    lines = [str(e) for e in errors]
    if errors:
        lines.append(
            f"{_plural(len(errors), 'error')} in {len(bad)} of {_plural(len(files), 'file')}"
        )
    else:
        lines.append(f"{_plural(tasks, 'task')} in {_plural(len(files), 'file')} valid")
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if errors else 0
