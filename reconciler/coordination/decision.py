"""The pure half of fleet placement: given the decision of `reconcile` and what the loop
observed of etcd (a CoordView), what this host does with `placement: one` tasks.

- A cron run of a `placement: one` task due by its schedule is not started: it is
  claimed (`Decision.claims`), and until its result arrives it holds its place like a
  run (maxConcurrency). Its result, in a later pass: won -> start it with the claim's
  fencing token; lost -> `run.skipped` reason `elsewhere` with the winner's `host`;
  unavailable -> `placementFallback`: `skip` (reason `no-coordination`) or `run` (start
  it anyway, without a token). Manual and @reboot runs are this host's own: not claimed.
- A `placement: one` daemon runs only while this host holds its lock (LockHold, judged on
  the monotonic clock). Without it, its runs stop with reason `placement` and a grace cut
  to what is left of the lease, so the process is gone before the lease can expire.
  Before the first attempt to reach etcd is over, such daemons are left as they are.
- A controller without --etcd starts none of them (cron: `no-coordination`).

Nothing here touches etcd, processes or clocks: tests hand it views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from reconciler.coordination.model import CoordView
from reconciler.reconcile import (
    Action,
    Inputs,
    RunView,
    SkipRun,
    StartRun,
    StopRun,
    TaskLike,
    reconcile,
)

STOP_SAFETY_S = 0.5  # SIGKILL at least this long before the lease can expire


@dataclass(frozen=True)
class Decision:
    actions: list[Action]
    claims: list[tuple[str, int]] = field(default_factory=list)  # (task, due) to claim


def _placeholder(task: str, due: int, now: float) -> RunView:
    return RunView(
        run_id=f"claim:{task}:{due}", task=task, kind="cron", pid=0, started_at=now, due=due,
        fingerprint="", timeout_s=None, grace_s=0.0,
    )


def _lock_stop(run: RunView, view: CoordView) -> StopRun:
    left = 0.0
    if view.lease_expires is not None:
        left = max(0.0, view.lease_expires - view.mono - STOP_SAFETY_S)
    return StopRun(run.run_id, "placement", min(run.grace_s, left))


def decide(inputs: Inputs, view: CoordView) -> Decision:
    """`view.placed`: this host's `placement: one` tasks (name -> task)."""
    placed: Mapping[str, TaskLike] = view.placed
    if not placed and not view.results:
        return Decision(reconcile(inputs))
    tasks = inputs.tasks
    before: list[Action] = []
    for r in view.results:
        task = tasks.get(r.task)
        if task is None:
            continue  # removed while its claim was in flight
        if task.suspend:
            before.append(SkipRun(r.task, r.due, "suspended"))
        elif r.outcome == "won":
            before.append(StartRun(r.task, r.due, "schedule", fencing_token=r.token))
        elif r.outcome == "lost":
            before.append(SkipRun(r.task, r.due, "elsewhere", host=r.winner))
        elif getattr(task, "placement_fallback", "skip") == "run":
            before.append(StartRun(r.task, r.due, "schedule"))
        else:
            before.append(SkipRun(r.task, r.due, "no-coordination"))

    # Daemons of placement: one: only under the lock.
    held = {n for n, h in view.locks.items() if view.mono < h.held_until}
    kept_out: set[str] = set()
    stops: list[Action] = []
    for name, task in placed.items():
        if getattr(task, "type", "") != "daemon" or getattr(task, "suspend", False):
            continue
        if view.enabled and view.settled and name in held:
            continue
        kept_out.add(name)
    observed = list(inputs.observed)
    if kept_out:
        for run in observed:
            if run.task in kept_out and run.stopping is None and (view.settled or not view.enabled):
                stops.append(_lock_stop(run, view))
        observed = [r for r in observed if r.task not in kept_out]
        tasks = {n: t for n, t in tasks.items() if n not in kept_out}
    observed += [_placeholder(t, d, inputs.now) for t, d in view.pending]
    daemon_tasks = inputs.daemon_tasks
    if daemon_tasks is not None and kept_out:
        daemon_tasks = {n: t for n, t in daemon_tasks.items() if n not in kept_out}
    actions = reconcile(
        replace(inputs, tasks=tasks, observed=observed, daemon_tasks=daemon_tasks)
    )

    claims: list[tuple[str, int]] = []
    out: list[Action] = [*stops, *before]
    for action in actions:
        if isinstance(action, StartRun) and action.task in placed:
            if action.trigger == "schedule" and action.due is not None:
                if view.enabled:
                    claims.append((action.task, action.due))
                else:
                    out.append(SkipRun(action.task, action.due, "no-coordination"))
                continue
            if action.trigger == "daemon":
                hold = view.locks.get(action.task)
                action = replace(action, fencing_token=hold.token if hold else None)
        out.append(action)
    return Decision(out, claims)
