"""`reconciler logs TASK [--run RUN_ID] [-f]`: a run's kept output as the run printed it:
stdout lines to stdout, stderr lines to stderr; `-f` follows a live run until it ends."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.commands import output as render
from reconciler.commands.options import add_state_dir, state_dir
from reconciler.commands.runs import report_problems
from reconciler.history import HistoryReader, Line, follow, lines_of
from reconciler.history.reader import Follower
from reconciler.history.records import task_of_run_id
from reconciler.history.view import iso
from reconciler.state import StateDir, StateError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "logs",
        help="print the output of a task's latest run (or one run); -f follows it",
        description="Print what a run printed, from the run history: stdout lines to stdout, "
        "stderr lines to stderr, '[... N bytes not kept ...]' where the middle of a long "
        "output was not kept. Exit 1 when there is no such run.",
    )
    p.add_argument("task", metavar="TASK", help="the task whose run output to show")
    p.add_argument("--run", metavar="RUN_ID", help="this run instead of the latest")
    p.add_argument("-f", "--follow", action="store_true", help="follow a live run until it ends")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--stream", choices=["stdout", "stderr"], help="only this stream")
    add_state_dir(p)
    p.set_defaults(func=run)


class Printer:
    """Writes lines to the streams they came from (the marker to the shown stream)."""

    def __init__(self, timestamps: bool = False, only: str | None = None) -> None:
        self.timestamps = timestamps
        self.only = only
        self.outs: dict[str, BinaryIO] = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}

    def __call__(self, line: Line) -> None:
        stream = (self.only or "stdout") if line.marker else line.stream
        if self.only is not None and stream != self.only:
            return
        text = line.text
        if self.timestamps:
            stamp = iso(line.ms / 1000) if line.ms is not None else "-"
            text = f"{stamp} {text}"
        out = self.outs[stream]
        out.write(text.encode("utf-8", "surrogateescape") + b"\n")
        out.flush()


def controller_alive(path: Path) -> bool:
    try:
        return StateDir(path).lock_held()
    except StateError:
        return False


def stream_run(
    state_path: Path, run_id: str, printer: Printer, follow_it: bool
) -> dict[str, Any] | None:
    """Print a run's output (following it while live); the last record read, or None
    when the run's file cannot be read."""
    reader = HistoryReader(state_path)
    if not follow_it:
        doc = reader.run(run_id)
        if doc is None:
            return None
        for line in lines_of(doc):
            printer(line)
        return dict(doc["record"])
    f: Follower = follow(lambda: reader.run(run_id), lambda: controller_alive(state_path), printer)
    return f.record


def run(args: argparse.Namespace) -> int:
    sd = state_dir(args)
    reader = HistoryReader(sd.path)
    run_id = args.run
    if run_id is not None and task_of_run_id(run_id) != args.task:
        render.error("logs", f"{run_id!r} is not a run of {args.task}")
        return 1
    if run_id is None:
        latest = reader.latest(args.task)
        report_problems("logs", reader)
        if latest is None:
            render.error("logs", f"no runs of {args.task} recorded in {sd.path}")
            return 1
        run_id = str(latest["run_id"])
    record = stream_run(sd.path, run_id, Printer(args.timestamps, args.stream), args.follow)
    if record is None:
        report_problems("logs", reader)
        render.error("logs", f"no run {run_id} recorded in {sd.path}")
        return 1
    if args.follow and record.get("ended") is None:
        render.error("logs", "the controller stopped while the run was live; its end is "
                     "not recorded")
    return 0


def wait_for_run(state_path: Path, run_id: str) -> int:
    """`run NAME --wait`: stream the run's output until it ends; its exit code, 128 +
    the signal's number when killed, 1 when it could not start or its end is unknown.
    Ctrl-C stops waiting, not the run (exit 130)."""
    import signal as signals

    try:
        record = stream_run(state_path, run_id, Printer(), follow_it=True)
    except KeyboardInterrupt:
        render.error("run", f"stopped waiting; run {run_id} goes on "
                     f"(reconciler logs {task_of_run_id(run_id)} --run {run_id} -f)")
        return 130
    if record is None or record.get("ended") is None:
        render.error("run", "the controller stopped before the run's end was recorded")
        return 1
    render.error("run", f"{run_id}: {record.get('outcome')}, {record.get('reason')}")
    code = record.get("exit_code")
    if isinstance(code, int):
        return code
    sig = record.get("signal")
    if isinstance(sig, str) and hasattr(signals, sig):
        return 128 + int(getattr(signals, sig))
    return 1
