"""`reconciler import --from crontab|gotorch FILE [-o DIR]`.

Exit 0 when everything converted; 1 when anything was reported on stderr (what did
convert is still written) or the input could not be read; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler.hosts import HostEntryError, parse_host_entry
from reconciler.importer import (
    convert,
    decode,
    is_system_crontab,
    render_stream,
    write_files,
)
from reconciler.importer.emit import file_name
from reconciler.spec import load_paths
from reconciler.spec.discovery import SUFFIXES


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
        help="write one NAME.yaml per task into DIR (created if missing; existing "
        "files are never overwritten, their task names are not reused)",
    )
    parser.add_argument(
        "--system", action=argparse.BooleanOptionalAction, default=None,
        help="crontab has a user column (/etc/crontab, /etc/cron.d); default: "
        "only when FILE is /etc/crontab or in /etc/cron.d",
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


def _reserved_names(directory: Path) -> set[str]:
    """Names of tasks and spec files already in DIR, so that nothing is overwritten."""
    names = {p.stem for p in directory.iterdir() if p.suffix in SUFFIXES}
    names.update(load_paths([str(directory)]).tasks)
    return names


def run(args: argparse.Namespace) -> int:
    fmt = args.source_format
    if fmt == "gotorch" and args.system is not None:
        return _fail("--system and --no-system apply to crontabs only", 2)
    source = "<stdin>" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(f"cannot read {source}: {exc.strerror or exc}")
    system = args.system
    if system is None:
        system = fmt == "crontab" and args.file != "-" and is_system_crontab(args.file)

    out_dir: Path | None = args.output_dir
    reserved: set[str] = set()
    if out_dir is not None and out_dir.exists():
        if not out_dir.is_dir():
            return _fail(f"{out_dir} is not a directory")
        reserved = _reserved_names(out_dir)

    result = convert(
        fmt, decode(data, fmt), source,
        system=system, hosts=args.hosts, run_as=args.run_as, reserved=reserved,
    )
    for problem in result.problems:
        print(problem.render(source), file=sys.stderr)

    if out_dir is None:
        sys.stdout.write(render_stream(result.tasks))
    else:
        clashes = [file_name(t) for t in result.tasks if (out_dir / file_name(t)).exists()]
        if clashes:
            return _fail(f"{out_dir}: would overwrite {', '.join(clashes)}")
        try:
            for path in write_files(result.tasks, out_dir):
                print(path)
        except OSError as exc:
            return _fail(f"cannot write into {out_dir}: {exc.strerror or exc}")
    return 1 if result.problems else 0
