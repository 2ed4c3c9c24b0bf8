"""`reconciler get DIR --inventory FILE` / `get DIR --etcd URL`: the task x host matrix,
which task runs on which machine (rendering; hosts come from reconciler.inventory or from
the fleet's live presence records).

A cell is `yes` where the task runs on that host, `one` where the host is one of the
candidates of a `placement: one` task (it runs on exactly one of them at a time), `-`
where it does not run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.commands import output as render
from reconciler.commands.etcd_opts import etcd_config
from reconciler.hosts import matches
from reconciler.inventory import InventoryError, InventoryHost, parse_inventory

if TYPE_CHECKING:
    from reconciler.spec import Task

MAX_INVENTORY_BYTES = 16 << 20


def add_matrix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", metavar="FILE",
        help="show the task x host matrix for the hosts in FILE (one 'NAME [IP,...]' a "
        "line, or an Ansible INI inventory with ansible_host=IP)",
    )
    from reconciler.commands.etcd_opts import add_etcd

    add_etcd(parser)


def _read_hosts(args: argparse.Namespace) -> list[InventoryHost]:
    if args.inventory:
        with open(args.inventory, encoding="utf-8", errors="replace") as fh:
            text = fh.read(MAX_INVENTORY_BYTES + 1)
        if len(text) > MAX_INVENTORY_BYTES:
            raise InventoryError(f"larger than {MAX_INVENTORY_BYTES} bytes")
        return parse_inventory(text)
    config = etcd_config(args, args._parser)
    assert config is not None
    from reconciler.coordination.fleetview import FleetReader

    reader = FleetReader(config)
    try:
        records = reader.alive_records()
    finally:
        reader.close()
    return sorted(
        (InventoryHost(str(r.get("host")), tuple(str(a) for a in r.get("addresses") or ()))
         for r in records if r.get("host")),
        key=lambda h: h.name,
    )


def cell(task: Task, host: InventoryHost) -> str:
    if not matches(task.hosts, host.identity()):
        return "-"
    return "one" if task.placement == "one" else "yes"


def run_matrix(args: argparse.Namespace, tasks: Mapping[str, Task]) -> int:
    from reconciler.coordination.etcd import Unavailable

    try:
        hosts = _read_hosts(args)
    except (OSError, InventoryError) as exc:
        render.error("get", f"{args.inventory}: {exc}")
        return 2
    except Unavailable as exc:
        render.error("get", f"etcd cannot be reached: {exc}")
        return 1
    ordered = [tasks[n] for n in sorted(tasks)]
    grid = [[cell(t, h) for h in hosts] for t in ordered]
    if args.output == "json":
        render.dump_json(_as_json(ordered, hosts, grid))
        return 0
    if not hosts:
        print("No hosts in the inventory." if args.inventory else "No live hosts in the fleet.",
              file=sys.stderr)
    headers = ["TASK", "PLACEMENT", *(render.clip(h.name, 30) for h in hosts), "HOSTS"]
    rows = [
        [t.name, t.placement, *cells, str(sum(c != "-" for c in cells))]
        for t, cells in zip(ordered, grid, strict=True)
    ]
    if rows:
        render.print_table(headers, rows)
    nowhere = [t.name for t, cells in zip(ordered, grid, strict=True)
               if all(c == "-" for c in cells)]
    if nowhere and hosts:
        print(f"Runs on none of these hosts: {', '.join(nowhere)}", file=sys.stderr)
    return 0


def _as_json(
    tasks: Sequence[Task], hosts: Sequence[InventoryHost], grid: list[list[str]]
) -> dict[str, Any]:
    return {
        "hosts": [{"name": h.name, "addresses": list(h.addresses)} for h in hosts],
        "tasks": [
            {
                "name": t.name,
                "type": t.type,
                "placement": t.placement,
                "runsOn": [h.name for h, c in zip(hosts, cells, strict=True) if c != "-"],
            }
            for t, cells in zip(tasks, grid, strict=True)
        ],
    }
