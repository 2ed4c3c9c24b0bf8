"""`reconciler get DIR`: the fleet table of every task in the documents."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from reconciler.commands import output as render
from reconciler.commands.matrix import add_matrix, run_matrix
from reconciler.commands.options import add_identity
from reconciler.forecast import load, next_due
from reconciler.hosts import HostEntryError, HostIdentity, detect_identity, matches

if TYPE_CHECKING:
    from reconciler.spec import Task

HOSTS_SHOWN = 3  # the narrow table shortens longer hosts lists; `-o wide` shows all


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "get",
        help="list the tasks of a spec directory: schedule, hosts, next run",
        description="List every task in the documents: type, schedule, hosts, next run, and "
        "whether it runs on this host. Invalid documents are reported on stderr; the "
        "valid tasks are still listed (exit 0).",
    )
    p.add_argument("paths", nargs="+", metavar="DIR", help="spec directory or files")
    p.add_argument("-o", "--output", choices=["wide", "json"], help="output format")
    add_identity(p)
    add_matrix(p)  # --inventory FILE / --etcd URL: the task x host matrix instead
    p.set_defaults(func=run, _parser=p)


def hosts_text(task: Task, wide: bool) -> str:
    if task.hosts is None:
        return "*"
    if not task.hosts:
        return "none"
    texts = [h.text for h in task.hosts]
    if not wide and len(texts) > HOSTS_SHOWN:
        return ",".join(texts[:HOSTS_SHOWN]) + f",+{len(texts) - HOSTS_SHOWN} more"
    return ",".join(texts)


def schedule_text(task: Task) -> str:
    if task.type != "cron" or task.schedule is None:
        return "-"
    if task.timezone_name:
        return f"{task.schedule_text} ({task.timezone_name})"
    return task.schedule_text or "-"


def next_run(task: Task, now: float) -> tuple[int | None, str]:
    """The next due second and how to show it."""
    if task.type != "cron" or task.schedule is None:
        return None, "-"
    if task.suspend:
        return None, "suspended"
    if task.schedule.kind == "reboot":
        return None, "@reboot"
    if task.schedule.kind == "every":
        # Anchored when the controller first applied the task: `status` knows it.
        return None, "-"
    due = next_due(task.schedule, task.timezone, now)
    return due, render.when(due, now, task.timezone) if due is not None else "never"


def as_json(task: Task, here: bool, due: int | None) -> dict[str, Any]:
    doc = render.masked_document(task.document)
    return {
        **doc,
        "file": task.file,
        "line": task.line,
        "onThisHost": here,
        "nextRun": render.rfc3339_offset(due, task.timezone),
    }


def run(args: argparse.Namespace) -> int:
    try:
        identity: HostIdentity = detect_identity(args.host_ip, args.hostname)
    except HostEntryError as exc:
        args._parser.error(f"--host-ip: {exc}")
    result = load(args.paths)
    if result.missing:
        for path in result.missing:
            render.error("get", f"{path} does not exist")
        return 2
    render.print_spec_errors(result.errors)
    if args.inventory or args.etcd:
        return run_matrix(args, result.tasks)
    now = time.time()
    tasks = [result.tasks[n] for n in sorted(result.tasks)]
    if args.output == "json":
        items = []
        for task in tasks:
            due, _ = next_run(task, now)
            items.append(as_json(task, matches(task.hosts, identity), due))
        render.dump_json(items)
        return 0
    wide = args.output == "wide"
    headers = ["NAME", "TYPE", "SCHEDULE", "HOSTS", "NEXT RUN", "HERE"]
    if wide:
        headers += ["FILE:LINE", "LABELS", "COMMAND"]
    rows = []
    for task in tasks:
        row = [
            task.name,
            task.type,
            render.clip(schedule_text(task), 60),
            render.clip(hosts_text(task, wide), 200 if wide else 40),
            next_run(task, now)[1],
            "yes" if matches(task.hosts, identity) else "no",
        ]
        if wide:
            labels = ",".join(f"{k}={v}" for k, v in sorted(task.labels.items())) or "-"
            where = f"{task.file}:{task.line}" if task.line is not None else task.file
            row += [render.clip(where, 200), render.clip(labels, 200),
                    render.clip(render.command_text(task.command), 120)]
        rows.append(row)
    if rows:
        render.print_table(headers, rows)
    else:
        print("No tasks found.", file=sys.stderr)
    return 0
