"""What the controller remembers: its runs, its ledger, and how they are written down."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from reconciler.fleet import hashed_document
from reconciler.reconcile import DaemonState, RunView
from reconciler.spec import Task
from reconciler.state import APPLIED_FILE, LEDGER_DELTA, LEDGER_FILE, DamagedStateFile, StateDir
from reconciler.supervisor import RunHandle


def rfc3339(t: float, tz: Any = UTC) -> str:
    """A due second as RFC 3339, with the offset of the task's zone (`Z` for UTC)."""
    if tz is UTC:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def applied_document(task: Task) -> dict[str, Any]:
    """The document as the applied set keeps it: env values hashed, never in clear."""
    return hashed_document(task.document)


@dataclass
class Run:
    view: RunView
    handle: RunHandle | None
    trigger: str

    def record(self) -> dict[str, Any]:
        h = self.handle
        view = asdict(self.view)
        view.pop("started_mono", None)  # meaningless to another process
        return {
            **view,
            "trigger": self.trigger,
            "pgid": h.pgid if h else None,
            "start_ticks": h.start_ticks if h else None,
        }


@dataclass
class Ledger:
    cursors: dict[str, int] = field(default_factory=dict)
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)
    daemons: dict[str, DaemonState] = field(default_factory=dict)
    # Due runs being started right now: if the controller dies before they are recorded
    # as runs, its successor logs them as skipped ("interrupted") instead of losing them.
    starting: dict[str, int] = field(default_factory=dict)
    # The schedule (text and zone) each cursor was set under: a cursor of another
    # schedule (changed while no controller ran) is not caught up from.
    schedules: dict[str, str] = field(default_factory=dict)
    # Which snapshot this is. The delta file names the generation it follows, so a
    # delta already folded into a newer snapshot is never applied again.
    generation: int = 0
    # Cursors moved since the snapshot (not part of it): what the delta file holds.
    recent: dict[str, int] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "cursors": self.cursors,
            "anchors": self.anchors,
            "daemons": {k: asdict(v) for k, v in self.daemons.items()},
            "starting": self.starting,
            "schedules": self.schedules,
            "generation": self.generation,
        }

    def anchor(self, task: str, schedule_text: str | None) -> int | None:
        """The `@every` anchor in use for `task`, if it was set for this schedule text."""
        found = self.anchors.get(task)
        if found is None or found.get("schedule") != schedule_text:
            return None
        return int(found["at"])

    def delta(self, starting: dict[str, int]) -> dict[str, Any]:
        """The delta file: cursors moved since the snapshot, and the runs being started."""
        return {"generation": self.generation, "cursors": self.recent, "starting": starting}

    def replay(self, delta: Any) -> bool:
        """Fold in the delta file written after this snapshot; True if it applied.

        Cursors only move forward. Its `starting` is what a crash cut short: left in
        `starting`, for the interrupted report.
        """
        if not isinstance(delta, dict) or delta.get("generation") != self.generation:
            return False
        for task, due in _int_map(delta.get("cursors")).items():
            self.cursors[task] = max(self.cursors.get(task, due), due)
        self.starting = {**self.starting, **_int_map(delta.get("starting"))}
        return True

    @classmethod
    def from_json(cls, data: Any) -> Ledger:
        """Whatever of a ledger file is well-formed; a damaged entry is dropped, not fatal."""
        if not isinstance(data, dict):
            return cls()
        ledger = cls()
        ledger.cursors = _int_map(data.get("cursors"))
        generation = data.get("generation")
        ledger.generation = generation if _is_int(generation) else 0
        ledger.starting = _int_map(data.get("starting"))
        ledger.schedules = {
            str(k): v for k, v in _map(data.get("schedules")).items() if isinstance(v, str)
        }
        for name, value in _map(data.get("anchors")).items():
            if (
                isinstance(value, dict)
                and _is_int(value.get("at"))
                and isinstance(value.get("schedule"), str)
            ):
                ledger.anchors[str(name)] = {"schedule": value["schedule"], "at": value["at"]}
        for name, value in _map(data.get("daemons")).items():
            if not isinstance(value, dict):
                continue
            failures, not_before = value.get("failures"), value.get("not_before")
            finished = value.get("finished_fingerprint")
            failed = value.get("failed_fingerprint")
            if (
                _is_int(failures)
                and _is_number(not_before)
                and isinstance(finished, str | None)
                and isinstance(failed, str | None)
            ):
                ledger.daemons[str(name)] = DaemonState(
                    failures=failures,
                    not_before=float(not_before),
                    finished_fingerprint=finished,
                    failed_fingerprint=failed,
                )
        return ledger


@dataclass
class LedgerRead:
    ledger: Ledger
    behind: bool  # a delta applied: the snapshot is behind
    damaged: list[DamagedStateFile]  # ledger files that did not parse (not yet reported)


def load_ledger(state: StateDir) -> LedgerRead:
    """The ledger as the controller left it: its snapshot, then the delta written after
    it. A state file that is not a regular file raises StateFileError (the controller
    refuses to start).

    A damaged snapshot or delta (not JSON, or not an object) is given back in `damaged`
    for the caller to report, and the cursors it held are not guessed: every task the
    controller had applied, and every cursor still known, is moved to the last time a
    ledger file was written. The previous controller handled every due time up to then,
    so none of them is due again, even when the clock has since stepped back; due times
    after it are caught up as after any restart.
    """
    damaged: list[DamagedStateFile] = []

    def load(name: str) -> Any:
        try:
            data = state.load_json(name)
        except DamagedStateFile as exc:
            damaged.append(exc)
            return None
        if data is not None and not isinstance(data, dict):
            damaged.append(DamagedStateFile(state.path / name, "is damaged (not a JSON object)"))
            return None
        return data

    ledger = Ledger.from_json(load(LEDGER_FILE))
    behind = ledger.replay(load(LEDGER_DELTA))
    if damaged:
        floor = _last_written(state)
        applied = state.read_json(APPLIED_FILE)
        names = set(ledger.cursors) | (set(map(str, applied)) if isinstance(applied, dict) else set())
        if floor is not None:
            for name in names:
                ledger.cursors[name] = max(ledger.cursors.get(name, floor), floor)
    return LedgerRead(ledger, behind, damaged)


def _last_written(state: StateDir) -> int | None:
    """When a ledger file was last written (its mtime), in whole seconds."""
    times = []
    for name in (LEDGER_FILE, LEDGER_DELTA):
        try:
            times.append(int(os.lstat(state.path / name).st_mtime))
        except OSError:
            continue
    return max(times, default=None)


def read_ledger(state: StateDir) -> tuple[Ledger, bool]:
    """`load_ledger` for readers that show it (`status`, `diff`): damage is not theirs to
    report; the flag tells whether a delta applied (the snapshot is then behind)."""
    found = load_ledger(state)
    return found.ledger, found.behind


def _map(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_map(value: Any) -> dict[str, int]:
    return {str(k): v for k, v in _map(value).items() if _is_int(v)}


@dataclass(frozen=True)
class RunRecord:
    """One line of runs.json, checked: a hand-edited or damaged record is skipped."""

    run_id: str
    task: str
    kind: str
    pid: int
    start_ticks: int | None
    started_at: float
    due: int | None
    fingerprint: str
    timeout_s: int | None
    grace_s: float
    trigger: str

    @classmethod
    def parse(cls, rec: Any) -> RunRecord | None:
        if not isinstance(rec, dict):
            return None
        run_id, task, pid = rec.get("run_id"), rec.get("task"), rec.get("pid")
        ticks, started_at, due = rec.get("start_ticks"), rec.get("started_at"), rec.get("due")
        timeout_s, grace_s = rec.get("timeout_s"), rec.get("grace_s", 30.0)
        if not (isinstance(run_id, str) and isinstance(task, str)):
            return None
        if not (isinstance(pid, int) and not isinstance(pid, bool) and pid > 0):
            return None
        if not (_is_number(started_at) and _is_number(grace_s) and grace_s >= 0):
            return None
        if ticks is not None and not _is_int(ticks):
            return None
        if due is not None and not _is_int(due):
            return None
        if timeout_s is not None and not (_is_int(timeout_s) and timeout_s > 0):
            return None
        return cls(
            run_id=run_id,
            task=task,
            kind="daemon" if rec.get("kind") == "daemon" else "cron",
            pid=pid,
            start_ticks=ticks,
            started_at=float(started_at),
            due=due,
            fingerprint=str(rec.get("fingerprint", "")),
            timeout_s=timeout_s,
            grace_s=float(grace_s),
            trigger=str(rec.get("trigger", "schedule")),
        )

    def view(self) -> RunView:
        """As observed state, for a run this controller adopts."""
        return RunView(
            run_id=self.run_id,
            task=self.task,
            kind="daemon" if self.kind == "daemon" else "cron",
            pid=self.pid,
            started_at=self.started_at,
            due=self.due,
            fingerprint=self.fingerprint,
            timeout_s=self.timeout_s,
            grace_s=self.grace_s,
        )


def outcome_of(
    stop_reason: str | None, exit_code: int | None, signal: str | None, adopted: bool
) -> str:
    """The `outcome` of `run.exited`: why a run ended, as far as the controller knows."""
    if stop_reason == "timeout":
        return "timed-out"
    if stop_reason is not None:
        return "stopped"
    if adopted and exit_code is None and signal is None:
        return "unknown"  # not our child: its exit status is nobody's to read
    return "succeeded" if exit_code == 0 else "failed"
