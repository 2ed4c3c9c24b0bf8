"""`reconciler import --from crontab|gotorch FILE [-o DIR]`.

Exit 0 when every entry converted as it was; 1 when an entry was reported on stderr
(what did convert is still written), when -o would duplicate a task (nothing is written)
or when the input could not be read; 2 for usage errors. Notes about the whole file (read
as a system crontab; no --run-as) go to stderr too and leave the exit code alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from reconciler.hosts import HostEntryError, parse_host_entry
from reconciler.importer import (
    ImportedTask,
    convert,
    decode,
    is_system_crontab,
    render_stream,
    write_files,
)
from reconciler.importer.emit import file_name
from reconciler.spec import load_paths


def host_entry(text: str) -> str:
    """A `hosts` entry, checked now: a typo would otherwise reject every imported task."""
    try:
        parse_host_entry(text)
    except HostEntryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import",
        help="convert a crontab or a gotorch task file into task documents",
        description="Convert a crontab or a gotorch task file into task documents: one "
        "YAML stream on stdout, or one file per task with -o. Lines that cannot be "
        "converted are reported on stderr as FILE:LINE: ... and the exit code is 1.",
    )
    parser.add_argument(
        "--from", dest="source_format", required=True, choices=("crontab", "gotorch"),
        help="format of FILE",
    )
    parser.add_argument("file", metavar="FILE", help="the file to convert; - reads stdin")
    parser.add_argument(
        "-o", "--output-dir", type=Path, metavar="DIR",
        help="write one NAME.yaml per task into DIR (created if missing); refuses, writing "
        "nothing, when DIR already holds a task or a file of a name it would write",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="with -o: replace DIR/NAME.yaml files of the same names instead of refusing",
    )
    parser.add_argument(
        "--system", action=argparse.BooleanOptionalAction, default=None,
        help="crontab has a user column (/etc/crontab, /etc/cron.d); default: when FILE "
        "is /etc/crontab or in /etc/cron.d, or when every entry names a user of this "
        "host before its command (a note says so)",
    )
    parser.add_argument(
        "--host", dest="hosts", action="append", type=host_entry, metavar="ENTRY",
        help="set `hosts` of the imported tasks (repeatable); gotorch entries "
        "with Ips keep theirs",
    )
    parser.add_argument(
        "--run-as", metavar="USER",
        help="set `user` of the imported tasks (a system crontab's user column wins)",
    )
    parser.set_defaults(func=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"reconciler import: {message}", file=sys.stderr)
    return code


def _existing_tasks(directory: Path) -> dict[str, str]:
    """Task name -> the file defining it, for every task found in DIR (even in a file
    with errors elsewhere)."""
    loaded = load_paths([str(directory)])
    return {t.name: t.file for load in loaded.files.values() for t in load.tasks}


def _clashes(tasks: list[ImportedTask], out_dir: Path, overwrite: bool) -> list[str]:
    """Why writing `tasks` into `out_dir` would duplicate or replace a task."""
    if not out_dir.exists():
        return []
    existing = _existing_tasks(out_dir)
    found = []
    for task in tasks:
        path = out_dir / file_name(task)
        where = existing.get(task.name)
        if where is not None and Path(where) != path:
            # --overwrite replaces NAME.yaml; a task defined in another file would stay.
            found.append(f"task {task.name!r} already exists in {where}; --overwrite "
                         f"replaces {path} only: rename or remove it first")
        elif not overwrite and where is not None:
            found.append(f"task {task.name!r} already exists in {path}")
        elif not overwrite and os.path.lexists(path):
            found.append(f"{path} already exists")
    return found


def run(args: argparse.Namespace) -> int:
    fmt = args.source_format
    if fmt == "gotorch" and args.system is not None:
        return _fail("--system and --no-system apply to crontabs only", 2)
    if args.overwrite and args.output_dir is None:
        return _fail("--overwrite applies to -o DIR only", 2)
    source = "<stdin>" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {source}: {exc.strerror or exc}")
    system = args.system
    if system is None and fmt == "crontab" and args.file != "-" and is_system_crontab(args.file):
        system = True  # else None: convert() looks for a user column

    out_dir: Path | None = args.output_dir
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        return _fail(f"{out_dir} is not a directory")

    result = convert(
        fmt, decode(data, fmt), source, system=system, hosts=args.hosts, run_as=args.run_as
    )
    for note in result.notes:
        print(f"{source}: {note}", file=sys.stderr)
    for problem in result.problems:
        print(problem.render(source), file=sys.stderr)

    if out_dir is None:
        sys.stdout.write(render_stream(result.tasks))
    else:
        clashes = _clashes(result.tasks, out_dir, args.overwrite)
        if clashes:
            for clash in clashes:
                print(f"reconciler import: {clash}", file=sys.stderr)
            return _fail(f"nothing written into {out_dir}: re-importing would duplicate "
                         "tasks; --overwrite replaces them, or name the entries apart")
        try:
            for path in write_files(result.tasks, out_dir, overwrite=args.overwrite):
                print(path)
        except OSError as exc:
            return _fail(f"cannot write into {out_dir}: {exc.strerror or exc}")
    return 1 if result.problems else 0
