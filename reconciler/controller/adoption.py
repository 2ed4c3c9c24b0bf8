"""After a crash: the runs the previous controller left, and the starts it cut short.

Runs still alive are adopted (observed state: they count against maxConcurrency, a daemon
is not started twice, they are stopped like any other run); runs that ended meanwhile are
accounted for as ended unwatched. Due runs the journal shows as being started with no run
recorded are reported as skipped (`interrupted`): they may have started unrecorded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from reconciler.controller import events
from reconciler.controller.executor import Executor
from reconciler.controller.journal import DueJournal
from reconciler.obs import Metrics
from reconciler.spec import Task
from reconciler.state import RUNS_FILE
from reconciler.state.runs import RunRecord


def adopt_previous_runs(
    executor: Executor,
    journal: DueJournal,
    metrics: Metrics,
    task_of: Callable[[str], Task | None],
) -> None:
    # A damaged runs.json is reported (state.damaged); nothing of it can be adopted.
    records = [r for r in map(RunRecord.parse, executor.files.load_runs()) if r]
    for rec in records:
        executor.adopt(rec)
    executor.files.dirty.add(RUNS_FILE)
    executor.running_changed()
    for task, due in journal.interrupted({(r.task, r.due) for r in records}):
        t = task_of(task)
        events.run_interrupted(task, due, t.timezone if t is not None else UTC)
        metrics.run_skipped(task, "interrupted")
