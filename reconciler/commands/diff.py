"""`reconciler diff DIR`: what `apply` would change on this host, as a dry run.

Compared with the applied set of the controller running on the state directory, or with
nothing when none runs. Exit codes as `kubectl diff`: 0 no differences, 1 differences,
2 an error (invalid documents, a path that does not exist).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import time
from typing import Any

from reconciler.commands import output as render
from reconciler.commands.options import add_identity, add_state_dir, state_dir
from reconciler.commands.status import unreadable
from reconciler.envmask import MASK, hashed_document, plain
from reconciler.forecast import Diff, ProcessAction, TaskChange, diff, load
from reconciler.hosts import HostEntryError, HostIdentity, detect_identity
from reconciler.notify.mask import secret_url_views
from reconciler.reconcile import DaemonState, RunView
from reconciler.state import ControllerRef
from reconciler.state.applied import AppliedTask, applied_schedule, read_applied
from reconciler.state.ledger import read_ledger
from reconciler.state.runs import read_runs


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "diff",
        help="dry run: what apply would change on this host",
        description="Show what `apply` would change on this host against the controller "
        "running on the state directory (or against nothing): tasks added, changed and "
        "removed, and the process actions that follow. Exit 0: no differences; 1: "
        "differences; 2: an error.",
    )
    p.add_argument("paths", nargs="+", metavar="DIR", help="spec directory or files")
    add_state_dir(p)
    add_identity(p)
    p.add_argument("-o", "--output", choices=["json"], help="output format")
    p.set_defaults(func=run, _parser=p)


def controller_identity(ref: ControllerRef) -> HostIdentity | None:
    """The identity the running controller uses, as it recorded it."""
    ident = ref.info.get("identity")
    if not isinstance(ident, dict):
        return None
    try:
        addresses = frozenset(ipaddress.ip_address(str(a)) for a in ident.get("addresses") or [])
    except ValueError:
        return None
    names = frozenset(str(n) for n in ident.get("names") or [])
    return HostIdentity(addresses=addresses, names=names)


# --- the YAML views -----------------------------------------------------------------------


def _env_views(old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    """Replace env values (hashes on both sides by now) by `***` / `*** (changed)`."""
    old_env = (old or {}).get("spec", {}).get("env") if old else None
    new_env = (new or {}).get("spec", {}).get("env") if new else None
    if isinstance(new_env, dict):
        before = old_env if isinstance(old_env, dict) else {}
        for k, v in new_env.items():
            changed = k in before and before[k] != v
            new_env[k] = MASK + (" (changed)" if changed else "")
    if isinstance(old_env, dict):
        for k in old_env:
            old_env[k] = MASK


# The order of the documentation and the schema; the applied set is stored with sorted
# keys, so both sides are put in this order before they are compared line by line.
KEY_ORDER = [
    "apiVersion", "kind", "metadata", "spec", "name", "labels", "type", "schedule",
    "timezone", "command", "hosts", "maxConcurrency", "concurrencyPolicy",
    "startingDeadlineSeconds", "timeoutSeconds", "terminationGracePeriodSeconds",
    "restartPolicy", "env", "workingDir", "user", "suspend",
]
_RANK = {k: i for i, k in enumerate(KEY_ORDER)}


def canonical(value: Any, depth: int = 0) -> Any:
    """Known fields in documentation order; user keys (labels, env) sorted."""
    if isinstance(value, dict):
        known = depth <= 1  # the document, metadata and spec levels
        keys = sorted(value, key=lambda k: (_RANK.get(k, len(_RANK)) if known else 0, str(k)))
        return {k: canonical(value[k], depth + 1) for k in keys}
    if isinstance(value, list):
        return [canonical(v, depth + 1) for v in value]
    return value


def _yaml(doc: dict[str, Any] | None) -> list[str]:
    if doc is None:
        return []
    import yaml

    doc = canonical(doc)
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return [render.safe(line) for line in text.splitlines()]


def unified(change: TaskChange) -> list[str]:
    """The change as a unified diff of the YAML of both documents, env masked."""
    old = plain(change.old.document) if change.old is not None else None
    new = hashed_document(change.new.document) if change.new is not None else None
    _env_views(old, new)
    secret_url_views(old, new)  # notify and healthcheck URLs: masked, `(changed)` told
    old_label = f"{change.name} (applied)" if old is not None else "/dev/null"
    new_label = "/dev/null"
    if change.new is not None:
        new_label = f"{change.name} ({change.new.file}:{change.new.line})"
    return list(
        difflib.unified_diff(
            _yaml(old), _yaml(new), render.safe(old_label), render.safe(new_label), lineterm="", n=3
        )
    )


# --- output ---------------------------------------------------------------------------


def _action_text(action: ProcessAction, zone: Any, now: float) -> str:
    if action.kind == "schedule":
        if action.next_due is None:
            return "new schedule: never due"
        return f"next run {render.when(action.next_due, now, zone)}"
    return action.message


def _zone(change: TaskChange) -> Any:
    if change.new is not None:
        return change.new.timezone
    assert change.old is not None
    return applied_schedule(change.old).zone


def _action_json(action: ProcessAction, zone: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"action": action.kind, "message": action.message}
    if action.run_ids:
        out["run_ids"] = list(action.run_ids)
        out["pids"] = list(action.pids)
    if action.kind == "schedule":
        out["next_due"] = render.rfc3339_offset(action.next_due, zone)
    return out


def as_json(result: Diff, against: dict[str, Any], identity: HostIdentity) -> dict[str, Any]:
    return {
        "against": against,
        "identity": identity.describe(),
        "added": result.added,
        "changed": result.changed,
        "removed": result.removed,
        "other_hosts": result.other_hosts,
        "tasks": [
            {
                "name": c.name,
                "change": c.change,
                "type": c.type,
                "fields": c.fields,
                "file": c.new.file if c.new is not None else (c.old.file if c.old else None),
                "line": c.new.line if c.new is not None else (c.old.line if c.old else None),
                "diff": "\n".join(unified(c)) + "\n",
                "actions": [_action_json(a, _zone(c)) for a in c.actions],
            }
            for c in result.changes
        ],
    }


def print_human(result: Diff, against_text: str, now: float) -> None:
    marks = {"added": "+", "changed": "~", "removed": "-"}
    print(f"Against: {against_text}")
    for c in result.changes:
        print()
        what = c.change
        if c.fields:
            shown = ", ".join(c.fields[:6]) + (", ..." if len(c.fields) > 6 else "")
            what += f" ({render.safe(shown)})"
        print(f"{marks[c.change]} {c.name} [{c.type}] {what}")
        for line in unified(c):
            print(f"    {line}")
        for a in c.actions:
            print(f"  => {render.safe(_action_text(a, _zone(c), now))}")
    print()
    if result.changes:
        print(
            f"{len(result.added)} added, {len(result.changed)} changed, "
            f"{len(result.removed)} removed."
        )
    else:
        print("No differences.")
    if result.other_hosts:
        n = len(result.other_hosts)
        verb = "does" if n == 1 else "do"
        print(f"({n} task{'s' if n != 1 else ''} in the documents {verb} not run on this host.)")


def run(args: argparse.Namespace) -> int:
    result = load(args.paths)
    if result.missing:
        for path in result.missing:
            render.error("diff", f"{path} does not exist")
        return 2
    if result.errors:
        render.print_spec_errors(result.errors)
        if args.output == "json":
            render.dump_json({"errors": [e.to_dict() for e in result.errors]})
        render.error("diff", f"{len(result.errors)} validation error(s); nothing compared")
        return 2

    sd = state_dir(args)
    problem = unreadable(sd)
    if problem:
        render.error("diff", problem)
        return 2
    ref = sd.find_controller()
    applied: dict[str, AppliedTask] = {}
    runs: list[RunView] = []
    anchors: dict[str, int] = {}
    daemons: dict[str, DaemonState] = {}
    identity: HostIdentity | None = None
    if ref is not None:
        found = read_applied(sd)
        if found is None:
            render.error(
                "diff", f"the controller (pid {ref.pid}) has not applied its documents yet; "
                "try again in a moment"
            )
            return 2
        applied = found
        # As the controller sees them: a run it is stopping counts as being stopped.
        runs = [r.view(keep_stopping=True) for r in read_runs(sd)]
        ledger, _ = read_ledger(sd)
        anchors = {n: at for n, t in applied.items()
                   if (at := ledger.anchor(n, t.spec.get("schedule"))) is not None}
        daemons = ledger.daemons
        if not (args.host_ip or args.hostname):
            identity = controller_identity(ref)
    if identity is None:
        try:
            identity = detect_identity(args.host_ip, args.hostname)
        except HostEntryError as exc:
            args._parser.error(f"--host-ip: {exc}")
            return 2
    now = time.time()
    outcome = diff(applied, result.tasks, identity, runs, anchors, now, ref is not None, daemons)
    if ref is not None:
        against = {
            "controller": True,
            "pid": ref.pid,
            "state_dir": str(sd.path),
            "spec_dir": ref.info.get("spec_dir"),
        }
        against_text = f"the controller running on {sd.path} (pid {ref.pid})"
        watched = ref.info.get("spec_dir")
        given = [os.path.abspath(p) for p in args.paths]
        if isinstance(watched, str) and given != [os.path.abspath(watched)]:
            against_text += f", which applies {render.safe(watched)}"
    else:
        against = {"controller": False, "pid": None, "state_dir": str(sd.path), "spec_dir": None}
        against_text = f"nothing (no controller is running for state directory {sd.path})"
    if args.output == "json":
        render.dump_json(render.camel_keys(as_json(outcome, against, identity)))
    else:
        print_human(outcome, against_text, now)
    return 1 if outcome.changes else 0
