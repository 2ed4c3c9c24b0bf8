"""runs.json: the live runs, as the controller records them after each change.

One record per run: its RunView (what was started, with which limits, and the stop
reason once a stop was sent), its trigger, and the process group and start time that
let a successor adopt it. Read by the controller after a crash (adoption) and by
`status` and `diff`, through one parser (`RunRecord.parse`): a hand-edited or damaged
record is skipped, the same way for all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from reconciler.reconcile import RunView
from reconciler.state.directory import StateDir
from reconciler.state.layout import RUNS_FILE
from reconciler.state.ledger import is_int, is_number
from reconciler.state.safe import DamagedStateFile


def encode(view: RunView, trigger: str, pgid: int | None, start_ticks: int | None) -> dict[str, Any]:
    """One record of runs.json (the writer: the executor's `records`)."""
    fields = asdict(view)
    fields.pop("started_mono", None)  # meaningless to another process
    return {**fields, "trigger": trigger, "pgid": pgid, "start_ticks": start_ticks}


@dataclass(frozen=True)
class RunRecord:
    """One record of runs.json, checked."""

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
    stopping: str | None = None  # the stop reason the recording controller sent
    attempt: int = 1  # 2, 3, ... for retries of the same due time
    replica: int = 0  # which of a daemon's `replicas` this process is

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
        if not (is_number(started_at) and is_number(grace_s) and grace_s >= 0):
            return None
        if ticks is not None and not is_int(ticks):
            return None
        if due is not None and not is_int(due):
            return None
        if timeout_s is not None and not (is_int(timeout_s) and timeout_s > 0):
            return None
        stopping, attempt, replica = rec.get("stopping"), rec.get("attempt"), rec.get("replica")
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
            stopping=stopping if isinstance(stopping, str) else None,
            attempt=attempt if is_int(attempt) and attempt >= 1 else 1,
            replica=replica if is_int(replica) and replica >= 0 else 0,
        )

    def view(self, keep_stopping: bool = False) -> RunView:
        """As observed state. A controller adopting the run decides its stop afresh (the
        default: no stop sent yet); `diff`, predicting what the recording controller
        does, keeps the stop it sent."""
        view = RunView(
            run_id=self.run_id,
            task=self.task,
            kind="daemon" if self.kind == "daemon" else "cron",
            pid=self.pid,
            started_at=self.started_at,
            due=self.due,
            fingerprint=self.fingerprint,
            timeout_s=self.timeout_s,
            grace_s=self.grace_s,
            attempt=self.attempt,
            replica=self.replica,
        )
        return replace(view, stopping=self.stopping) if keep_stopping else view


def parse_runs(data: Any) -> list[RunRecord]:
    """The well-formed records of runs.json, in file order."""
    if not isinstance(data, list):
        return []
    return [r for r in map(RunRecord.parse, data) if r is not None]


def load_runs(state: StateDir) -> list[Any]:
    """runs.json as written, records unchecked (parse them with RunRecord.parse); [] when
    absent. DamagedStateFile when it is not JSON or not a list, StateFileError when it
    cannot be read safely."""
    raw = state.load_json(RUNS_FILE)
    if raw is not None and not isinstance(raw, list):
        raise DamagedStateFile(state.path / RUNS_FILE, "is damaged (not a JSON list)")
    return raw or []


def read_runs(state: StateDir) -> list[RunRecord]:
    """The live runs for `status` and `diff`, by task, then start: a damaged file shows
    none (reporting it is the controller's job)."""
    try:
        records = parse_runs(load_runs(state))
    except DamagedStateFile:
        return []
    return sorted(records, key=lambda r: (r.task, r.started_at, r.run_id))
