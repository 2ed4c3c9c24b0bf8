"""`reconciler fleet hosts` and `reconciler fleet runs [TASK] [--since 24h]`: the fleet as
etcd knows it (rendering only; the reading and its meaning are in coordination.fleetview)."""

from __future__ import annotations

import argparse
import re
import sys
import time

from reconciler.commands import output as render
from reconciler.commands.etcd_opts import add_etcd, etcd_config

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SINCE_S = 7 * 86400  # what the summaries keep


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "fleet",
        help="the fleet as etcd knows it: hosts, runs (with --etcd)",
        description="Read the fleet's records in etcd: the live and gone hosts, and which "
        "host ran each due time of each task.",
    )
    fleet_sub = p.add_subparsers(dest="fleet_command", metavar="COMMAND")
    hosts = fleet_sub.add_parser(
        "hosts", help="HOST, ADDRESSES, STATE, SPEC REVISION (drift marked), TASKS, ERRORS, "
        "LAST SEEN",
        description="Every controller of the fleet seen in the last week: alive while its "
        "lease lives, gone after. A spec revision that differs from the most common one "
        "among live hosts is marked (drift).",
    )
    runs = fleet_sub.add_parser(
        "runs", help="each due time with the host that ran it; missed ones (exit 1)",
        description="Each due time of each task with the host that ran it and its outcome, "
        "and `missed` where hosts recorded the due time but none ran it. Exit 1 when "
        "anything was missed.",
    )
    runs.add_argument("task", nargs="?", metavar="TASK", help="only this task")
    runs.add_argument("--since", default="24h", metavar="DURATION",
                      help="how far back: 90s, 30m, 24h, 7d (default 24h; at most 7d)")
    for q in (hosts, runs):
        add_etcd(q)
        q.add_argument("-o", "--output", choices=["json"], help="output format")
        q.set_defaults(func=run, _parser=q)
    p.set_defaults(func=lambda _a: _usage(p), _parser=p)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def parse_since(text: str) -> int:
    m = _SINCE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return min(int(m.group(1)) * _UNIT[m.group(2)], MAX_SINCE_S)


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args._parser
    config = etcd_config(args, parser)
    if config is None:
        parser.error("--etcd URL (or RECONCILER_ETCD_ENDPOINTS) is needed")
    since_s = 0
    if args.fleet_command == "runs":
        try:
            since_s = parse_since(args.since)
        except ValueError as exc:
            parser.error(f"--since: {exc}")
    from reconciler.coordination.etcd import Unavailable
    from reconciler.coordination.fleetview import FleetReader

    reader = FleetReader(config)
    try:
        if args.fleet_command == "hosts":
            return _hosts(reader, args.output == "json")
        return _runs(reader, args.task, since_s, args.output == "json")
    except Unavailable as exc:
        render.error(f"fleet {args.fleet_command}", f"etcd cannot be reached: {exc}")
        return 1
    finally:
        reader.close()


def _hosts(reader: object, as_json: bool) -> int:
    from reconciler.coordination.fleetview import FleetReader, host_rows

    assert isinstance(reader, FleetReader)
    rows = host_rows(reader.members(), reader.alive())
    if as_json:
        render.dump_json([r.to_json() for r in rows])
        return 0
    now = time.time()
    table = [
        [
            r.host,
            render.clip(",".join(r.addresses) or "-", 60),
            "alive" if r.alive else "gone",
            (r.spec_revision or "-") + (" (drift)" if r.drift else ""),
            str(r.tasks),
            str(r.errors),
            render.relative(r.last_seen, now) if r.last_seen else "-",
        ]
        for r in rows
    ]
    if table:
        render.print_table(
            ["HOST", "ADDRESSES", "STATE", "SPEC REVISION", "TASKS", "ERRORS", "LAST SEEN"], table
        )
    else:
        print("No hosts have reported to this fleet.", file=sys.stderr)
    return 0


def _runs(reader: object, task: str | None, since_s: int, as_json: bool) -> int:
    from reconciler.coordination.fleetview import FleetReader, run_rows

    assert isinstance(reader, FleetReader)
    now = time.time()
    summaries = reader.summaries([task] if task else None, int(now) - since_s)
    rows = run_rows(summaries, reader.alive())
    missed = sum(1 for r in rows if r.missed)
    if as_json:
        render.dump_json([
            {
                "task": r.task,
                "due": render.rfc3339_offset(r.due),
                "host": r.host,
                "outcome": r.outcome,
                "reason": r.reason,
                "runId": r.run_id,
                "fencingToken": r.token,
                "started": render.rfc3339_offset(r.started),
                "ended": render.rfc3339_offset(r.ended),
            }
            for r in rows
        ])
    elif rows:
        render.print_table(
            ["TASK", "DUE", "HOST", "OUTCOME", "REASON"],
            [[r.task, render.human_time(r.due), r.host or "-", r.outcome,
              render.clip(r.reason or "-", 80)] for r in rows],
        )
    else:
        print("No runs recorded in that time.", file=sys.stderr)
    if missed:
        print(f"{missed} due time(s) missed: due, and run on no host.", file=sys.stderr)
        return 1
    return 0
