"""ledger.json and ledger-delta.json: the due ledger, snapshot and delta.

The ledger holds, per task, the last due time handled (cursor), the `@every` anchor,
daemon back-off (and crash-loop give-up), the due runs being started, the schedule each
cursor was set under, waiting retries, and which tasks' last run failed (for `recovery`).
The snapshot is rewritten now and then (controller/statefiles.py decides when); moved
cursors in between go to the small delta file, which names the snapshot generation it
follows. Readers: the controller at start (`load_ledger`, damage reported) and `status`
and `diff` (`read_ledger`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard

from reconciler.reconcile import DaemonState, WaitingRetry
from reconciler.state.directory import StateDir
from reconciler.state.layout import APPLIED_FILE, LEDGER_DELTA, LEDGER_FILE
from reconciler.state.safe import DamagedStateFile


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
    # The next attempt of a failed cron run, per task (at most one: a newer due time
    # supersedes it).
    retries: dict[str, WaitingRetry] = field(default_factory=dict)
    # Tasks whose last run (after its last attempt) failed: their next success is a
    # `recovery`.
    failing: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """The snapshot file (the writer: controller/statefiles.py)."""
        return {
            "cursors": self.cursors,
            "anchors": self.anchors,
            "daemons": {k: asdict(v) for k, v in self.daemons.items()},
            "starting": self.starting,
            "schedules": self.schedules,
            "generation": self.generation,
            "retries": {k: asdict(v) for k, v in self.retries.items()},
            "failing": sorted(self.failing),
        }

    def anchor(self, task: str, schedule_text: str | None) -> int | None:
        """The `@every` anchor in use for `task`, if it was set for this schedule text."""
        found = self.anchors.get(task)
        if found is None or found.get("schedule") != schedule_text:
            return None
        return int(found["at"])

    def delta(
        self, starting: dict[str, int], attempts: dict[str, list[int]] | None = None
    ) -> dict[str, Any]:
        """The delta file: cursors moved since the snapshot, the runs being started, and
        the waiting retries being started (task: [due, attempt]): taken, never again."""
        out: dict[str, Any] = {
            "generation": self.generation, "cursors": self.recent, "starting": starting
        }
        if attempts:
            out["attempts"] = attempts
        return out

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
        for task, taken in _map(delta.get("attempts")).items():
            waiting = self.retries.get(str(task))
            if waiting is not None and taken == [waiting.due, waiting.attempt]:
                del self.retries[str(task)]  # started before the crash: never twice
        return True

    @classmethod
    def from_json(cls, data: Any) -> Ledger:
        """Whatever of a ledger file is well-formed; a damaged entry is dropped, not fatal."""
        if not isinstance(data, dict):
            return cls()
        ledger = cls()
        ledger.cursors = _int_map(data.get("cursors"))
        generation = data.get("generation")
        ledger.generation = generation if is_int(generation) else 0
        ledger.starting = _int_map(data.get("starting"))
        ledger.schedules = {
            str(k): v for k, v in _map(data.get("schedules")).items() if isinstance(v, str)
        }
        for name, value in _map(data.get("anchors")).items():
            if (
                isinstance(value, dict)
                and is_int(value.get("at"))
                and isinstance(value.get("schedule"), str)
            ):
                ledger.anchors[str(name)] = {"schedule": value["schedule"], "at": value["at"]}
        for name, value in _map(data.get("daemons")).items():
            state = _daemon_state(value)
            if state is not None:
                ledger.daemons[str(name)] = state
        for name, value in _map(data.get("retries")).items():
            retry = _waiting_retry(value)
            if retry is not None:
                ledger.retries[str(name)] = retry
        failing = data.get("failing")
        if isinstance(failing, list):
            ledger.failing = {str(t) for t in failing if isinstance(t, str)}
        return ledger


def _daemon_state(value: Any) -> DaemonState | None:
    if not isinstance(value, dict):
        return None
    failures, not_before = value.get("failures"), value.get("not_before")
    finished = value.get("finished_fingerprint")
    failed = value.get("failed_fingerprint")
    if not (
        is_int(failures)
        and is_number(not_before)
        and isinstance(finished, str | None)
        and isinstance(failed, str | None)
    ):
        return None
    restarts = value.get("restarts", [])
    gave_up = value.get("gave_up")
    return DaemonState(
        failures=failures,
        not_before=float(not_before),
        finished_fingerprint=finished,
        failed_fingerprint=failed,
        restarts=tuple(
            float(t) for t in (restarts if isinstance(restarts, list) else []) if is_number(t)
        ),
        gave_up=gave_up if isinstance(gave_up, str) else None,
    )


def _waiting_retry(value: Any) -> WaitingRetry | None:
    if not isinstance(value, dict):
        return None
    due, attempt, not_before = value.get("due"), value.get("attempt"), value.get("not_before")
    if not (is_int(due) and is_int(attempt) and attempt > 1 and is_number(not_before)):
        return None
    return WaitingRetry(due=due, attempt=attempt, not_before=float(not_before))


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


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_map(value: Any) -> dict[str, int]:
    return {str(k): v for k, v in _map(value).items() if is_int(v)}
