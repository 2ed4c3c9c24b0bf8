"""`reconciler plan DIR [--host H] [--task NAME]... --from T (--until T | --count N)`: due
times of one host (this machine without --host), with each run's start under jitterSeconds."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

from reconciler.commands import output as render
from reconciler.due import jitter_host
from reconciler.forecast import PLAN_LIMIT, PlanEntry, PlanTooLarge, load, plan, plan_tasks
from reconciler.hosts import HostIdentity, detect_identity, identity_for


def rfc3339_arg(text: str) -> float:
    """An instant in RFC 3339 with an offset or `Z`; a time without one is ambiguous."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{render.clip(text, 60)!r} is not an RFC 3339 time (e.g. 2026-03-29T03:00:00+02:00)"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{render.clip(text, 60)!r} has no offset; add Z or one like +02:00"
        )
    return value.timestamp()


def count_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{render.clip(text, 20)!r} is not a number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def host_arg(text: str) -> HostIdentity:
    """`web-1`, `10.0.1.7`, or both comma-separated: one host known by several names."""
    addresses: set = set()
    names: set[str] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        ident = identity_for(part.strip())
        addresses |= ident.addresses
        names |= ident.names
    if not addresses and not names:
        raise argparse.ArgumentTypeError(f"{render.clip(text, 60)!r} names no host")
    return HostIdentity(addresses=frozenset(addresses), names=frozenset(names))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="list the due times of a host's cron tasks in a time window",
        description="List the due times of the cron tasks that run on host H (default: this "
        "machine), merged and sorted by start time then task. A task with jitterSeconds "
        "starts its runs a delay after their due time that depends on the host's name: "
        "START shows it (JSON: start). --from is included, --until excluded, both for the "
        "start; times are "
        "RFC 3339 with an offset or Z. @every is anchored at --from, @reboot, daemons and "
        f"suspended tasks are not listed. A --until window with more than {PLAN_LIMIT} "
        "due times is refused: use --count.",
    )
    p.add_argument("paths", nargs="+", metavar="DIR", help="spec directory or files")
    p.add_argument(
        "--host",
        type=host_arg,
        metavar="H",
        help="the host: an IP address or a hostname (or both, comma-separated; jitter needs "
        "the name); default: this machine (RECONCILER_HOST_IP, RECONCILER_HOSTNAME honoured)",
    )
    p.add_argument("--task", dest="tasks", action="append", metavar="NAME",
                   help="list only this task (repeatable)")
    p.add_argument("--from", dest="start", type=rfc3339_arg, metavar="T",
                   help="first instant, included (default: now)")
    end = p.add_mutually_exclusive_group(required=True)
    end.add_argument("--until", type=rfc3339_arg, metavar="T", help="end of the window, excluded")
    end.add_argument("--count", type=count_arg, metavar="N", help="the first N due times")
    p.add_argument("-o", "--output", choices=["json"], help="output format")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    result = load(args.paths)
    if result.missing:
        for path in result.missing:
            render.error("plan", f"{path} does not exist")
        return 2
    render.print_spec_errors(result.errors)
    start = args.start if args.start is not None else time.time()
    if args.until is not None and args.until <= start:
        args._parser.error("--until must be after --from")
    identity = args.host if args.host is not None else detect_identity()
    if args.tasks:
        unknown = sorted(set(args.tasks) - result.tasks.keys())
        if unknown:
            names = ", ".join(map(repr, unknown))
            render.error("plan", f"no task named {names} in {' '.join(args.paths)}")
            return 2
    chosen = {n: t for n, t in result.tasks.items() if not args.tasks or n in args.tasks}
    tasks = plan_tasks(chosen, identity)
    zones = {t.name: t.timezone for t in tasks}
    jittered = {t.name for t in tasks if t.jitter_seconds}
    try:
        entries = plan(tasks, start, until=args.until, count=args.count,
                       host=jitter_host(identity))
    except PlanTooLarge:
        render.error(
            "plan",
            f"the window holds more than {PLAN_LIMIT} due times; "
            "shorten it with --until or ask for --count N",
        )
        return 2

    def text(u: int, e: PlanEntry) -> str:
        return render.rfc3339_offset(u, zones[e.task]) or ""

    out = sys.stdout
    # Streamed: `--count` may ask for many lines, and each line is final once merged.
    if args.output == "json":
        out.write("[")
        n = 0
        for e in entries:
            out.write(",\n  " if n else "\n  ")
            item = {"task": e.task, "due": text(e.due, e)}
            if e.task in jittered:  # only tasks with jitterSeconds: the run's start
                item["start"] = text(e.start, e)
            out.write(json.dumps(item))
            n += 1
        out.write("\n]\n" if n else "]\n")
        return 0
    width = 25  # an RFC 3339 second with offset
    header = False
    for e in entries:
        if not header:
            start_col = f"{'START'.ljust(width)}   " if jittered else ""
            out.write(f"{start_col}{'DUE'.ljust(width)}   TASK\n")
            header = True
        start_col = f"{text(e.start, e).ljust(width)}   " if jittered else ""
        out.write(f"{start_col}{text(e.due, e).ljust(width)}   {e.task}\n")
    if not header:
        print("No due times in this window.", file=sys.stderr)
    return 0
