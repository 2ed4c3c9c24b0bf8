"""Desired state: which tasks are in force on this host, and when each is next due.

Owns the SpecSet (the last good load of every file) and the DueQueue (the next due time of
every cron task). A read of the spec directory (a `Refresh`, made off the loop by
`SpecReader`) is applied here in one step: this host's tasks, `@every` anchors, cursors of
new tasks, the `@reboot` list at the first good read, spec errors logged once each. No
processes; unit-testable with a clock and a directory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.controller import events
from reconciler.controller.journal import DueJournal
from reconciler.controller.specset import Refresh, SpecSet
from reconciler.due import jitter_host
from reconciler.hosts import HostIdentity, matches
from reconciler.obs import Metrics
from reconciler.reconcile import DueQueue, DueSet
from reconciler.spec import SpecError, Task
from reconciler.supervisor import Limits, unenforceable


@dataclass(frozen=True)
class Applied:
    """What one read changed."""

    first: bool = False  # the first good read since start
    touched: frozenset[str] = frozenset()  # names whose task object changed or went
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: list[SpecError] = field(default_factory=list)

    @property
    def tasks_changed(self) -> bool:
        return bool(self.touched)


class DesiredState:
    def __init__(
        self,
        spec_dir: Path,
        identity: HostIdentity,
        journal: DueJournal,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.spec_dir = spec_dir
        self.identity = identity
        self.journal = journal
        self.metrics = metrics
        self.clock = clock
        self.specs = SpecSet(spec_dir)
        self.queue = DueQueue(jitter_host(identity))  # jitterSeconds: delays per host
        self.tasks: dict[str, Task] = {}  # this host's tasks in force
        self.all_tasks: dict[str, Task] = {}  # every task of the directory
        self.daemon_tasks: dict[str, Task] = {}
        self.anchors: dict[str, int] = {}
        self.ready = False  # a read has succeeded
        self.coordinated = False  # started with --etcd: placement: one can run here
        self.dir_error: str | None = None
        self._reboot: list[str] = []
        self._errors_seen: set[str] = set()

    # --- applying a read --------------------------------------------------------------

    def apply(self, result: Refresh) -> Applied | None:
        """Take in one read of the directory; None when the directory itself is missing
        (that changes nothing, and is logged once)."""
        if result.dir_error is not None:
            if self.dir_error != result.dir_error:
                events.spec_dir_invalid(str(self.spec_dir), result.dir_error)
                self.metrics.spec_error()
                self.dir_error = result.dir_error
            return None
        self.dir_error = None
        first = not self.ready
        applied = self._take(result.tasks, first)
        errors = result.errors + self.unrunnable()
        self._log_errors(errors)
        if first:
            # @reboot: once per controller start, at the first load that succeeds (the spec
            # directory may appear only after start, as with a git-sync sidecar).
            self._reboot = [
                n
                for n, t in self.tasks.items()
                if t.type == "cron" and t.schedule is not None and t.schedule.kind == "reboot"
            ]
            self.journal.prune(self.tasks)
        self.ready = True
        return Applied(
            first=first,
            touched=applied.touched,
            added=applied.added,
            changed=applied.changed,
            removed=applied.removed,
            errors=errors,
        )

    def _take(self, all_tasks: dict[str, Task], initial: bool) -> Applied:
        before, before_all = self.tasks, self.all_tasks
        # Tasks of unchanged files are the very same objects: only the others are looked at,
        # so an edit among 10,000 tasks costs one file's worth of work.
        touched = {n for n, t in all_tasks.items() if before_all.get(n) is not t}
        touched |= {n for n in before_all if n not in all_tasks}
        mine = dict(before)
        for name in touched:
            task = all_tasks.get(name)
            if task is not None and matches(task.hosts, self.identity):
                mine[name] = task
            else:
                mine.pop(name, None)
        added = tuple(sorted(n for n in touched if n in mine and n not in before))
        removed = tuple(sorted(n for n in touched if n in before and n not in mine))
        changed = tuple(
            sorted(
                n
                for n in touched
                if n in mine
                and n in before
                and mine[n].spec_fingerprint() != before[n].spec_fingerprint()
            )
        )
        self.all_tasks = all_tasks
        self.tasks = mine
        if touched:
            self.daemon_tasks = {n: t for n, t in mine.items() if t.type == "daemon"}
        now = math.floor(self.clock())
        self.anchors = {
            name: self.journal.anchor(name, task.schedule_text, now)
            for name, task in mine.items()
            if task.schedule is not None and task.schedule.kind == "every"
        }
        self.journal.keep_moves(
            self.queue.sync(
                mine,
                self.journal.cursors,
                self.anchors,
                now,
                only=None if initial else touched,
                schedules=self.journal.schedules,
            )
        )
        for name in removed:
            self.metrics.forget_task(name)
        # Series at 0 from the start, so the first failure is an increase, not a new series.
        self.metrics.declare_tasks(added)
        self.metrics.set_tasks_loaded(len(mine))
        if initial or added or changed or removed:
            events.spec_applied(added, changed, removed, len(mine), len(all_tasks))
        return Applied(touched=frozenset(touched), added=added, changed=changed, removed=removed)

    def unrunnable(self) -> list[SpecError]:
        """Tasks this controller cannot run as asked: `user` needs a root controller,
        `resources` a cgroup (or RLIMIT_NOFILE) it may set here.

        They stay loaded (the file is valid, and a root controller elsewhere can run them);
        the error stands in `status` and each run attempt fails with the same reason.
        """
        root = os.geteuid() == 0
        out: list[SpecError] = []
        for t in self.tasks.values():
            if t.user is not None and not root:
                message = f"running as user {t.user} needs a root controller"
                out.append(SpecError(t.file, t.line, t.name, "spec.user", message))
            if t.placement == "one" and not self.coordinated:
                why = "placement: one needs a controller started with --etcd"
                out.append(SpecError(t.file, t.line, t.name, "spec.placement", why))
            limits = Limits.of(t.resources)
            for name, why in (unenforceable(limits) if limits is not None else {}).items():
                out.append(SpecError(t.file, t.line, t.name, f"spec.resources.{name}", why))
        return out

    def _log_errors(self, errors: list[SpecError]) -> None:
        current: set[str] = set()
        for err in errors:
            text = str(err)
            current.add(text)
            if text in self._errors_seen:
                continue  # a standing error is logged once, not on every re-read
            events.spec_invalid(err)
            self.metrics.spec_error()
        self._errors_seen = current
        self.metrics.set_spec_errors(len({e.file for e in errors}))

    def status(self, errors: list[SpecError]) -> dict[str, Any]:
        """The spec part of status.json."""
        return {
            "updated_at": self.clock(),
            "spec_dir": str(self.spec_dir),
            "dir_error": self.dir_error,
            "spec_errors": [e.to_dict() for e in errors],
            "tasks_total": len(self.all_tasks),
            "tasks_for_host": len(self.tasks),
        }

    # --- what is due ------------------------------------------------------------------

    def pop_due(self, second: int) -> list[DueSet]:
        """Cron runs due at or before `second`; the journal records their new cursors."""
        return self.queue.pop_due(second, self.tasks, self.journal.cursors, self.anchors)

    def due_at(self, second: int) -> bool:
        """Whether a cron run may start at `second` (@reboot included)."""
        earliest = self.queue.earliest()
        return (earliest is not None and earliest <= second) or bool(self._reboot)

    def take_reboot(self) -> list[str]:
        reboot, self._reboot = self._reboot, []
        return reboot

    def task(self, name: str) -> Task | None:
        """This host's task of that name in force, if any."""
        return self.tasks.get(name)

    def is_suspended(self, name: str) -> bool:
        task = self.tasks.get(name)
        return task is not None and task.suspend
