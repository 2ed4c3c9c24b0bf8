"""`reconciler runs [TASK]`: the run history, newest first, read from the state directory
(with or without a running controller)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from reconciler.commands import output as render
from reconciler.commands.options import add_state_dir, state_dir
from reconciler.history import HistoryReader
from reconciler.history import files as hfiles
from reconciler.history.view import api_record, duration_text, local_time

DEFAULT_ALL_LIMIT = 100  # without TASK; with TASK every kept run is listed


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "runs",
        help="list recorded runs, newest first: outcome, reason, duration",
        description="List the runs recorded in the state directory, newest first, live runs "
        "included. Without TASK the newest 100 of all tasks (--limit 0: all).",
    )
    p.add_argument("task", nargs="?", metavar="TASK", help="only this task's runs")
    p.add_argument("--limit", type=int, metavar="N", help="at most N runs (0: all)")
    p.add_argument("-o", "--output", choices=["wide", "json"], help="output format")
    add_state_dir(p)
    p.set_defaults(func=run)


def known_task(state_path: Any, task: str, reader: HistoryReader) -> bool:
    """A task with history, or in the controller's applied set."""
    if task in reader.tasks():
        return True
    try:
        fd = os.open(state_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        data = hfiles.read_file(fd, "applied.json")
        applied = json.loads(data) if data else {}
    except (OSError, hfiles.HistoryFileError, ValueError):
        applied = {}
    finally:
        os.close(fd)
    return isinstance(applied, dict) and task in applied


def report_problems(command: str, reader: HistoryReader) -> None:
    for problem in dict.fromkeys(reader.problems):
        render.error(command, f"warning: {problem}; skipped")


def run(args: argparse.Namespace) -> int:
    sd = state_dir(args)
    reader = HistoryReader(sd.path)
    if args.limit is not None and args.limit < 0:
        render.error("runs", "--limit must be 0 or more")
        return 2
    limit = args.limit if args.limit is not None else (None if args.task else DEFAULT_ALL_LIMIT)
    if args.task and not known_task(sd.path, args.task, reader):
        render.error("runs", f"unknown task {args.task!r}: no runs recorded and not applied")
        return 1
    records = reader.runs(args.task, limit or None)
    report_problems("runs", reader)
    if args.output == "json":
        render.dump_json([api_record(r) for r in records])
        return 0
    now = time.time()
    wide = args.output == "wide"
    headers = ["RUN", "TASK", "TRIGGER", "DUE", "STARTED", "DURATION", "OUTCOME", "REASON"]
    if wide:
        headers[-1:-1] = ["ATTEMPT", "PID", "EXIT", "SIGNAL"]
    rows = []
    for r in records:
        row = [
            str(r.get("run_id")), str(r.get("task")), str(r.get("trigger") or "-"),
            local_time(r.get("due")), local_time(r.get("started")), duration_text(r, now),
            str(r.get("outcome") or "-"),
        ]
        if wide:
            row += [str(r.get("attempt", 1)), str(r.get("pid") or "-"),
                    "-" if r.get("exit_code") is None else str(r["exit_code"]),
                    str(r.get("signal") or "-")]
        reason = str(r.get("reason") or "-")
        row.append(render.safe(reason) if wide else render.clip(reason, 60))
        rows.append([render.safe(c) for c in row])
    if not rows:
        print("No runs recorded." if not args.task else f"No runs of {args.task} recorded.",
              file=sys.stderr)
        return 0
    render.print_table(headers, rows)
    return 0
