"""History retention with real files and an injected clock: failed runs past
failedRunsHistoryLimit go, succeeded ones past successfulRunsHistoryLimit go, and a
removed task's history is deleted 7 days after it left the directory, not before."""

from __future__ import annotations

from pathlib import Path

from reconciler.history.records import RunFinish, RunStart
from reconciler.history.writer import REMOVED_KEEP_S, HistoryWriter

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def run(writer: HistoryWriter, task: str, n: int, outcome: str, keep: int) -> None:
    start = RunStart(
        run_id=f"{task}-{outcome}-{n}", task=task, type="cron", trigger="schedule",
        attempt=1, due=int(T0) + n, started=T0 + n, pid=100 + n, output_limit=1024,
    )
    writer.started(start)
    writer.finished(RunFinish(
        start=start, ended=T0 + n + 0.5, exit_code=0 if outcome == "succeeded" else 1,
        signal=None, outcome=outcome, reason="exit code 1" if outcome == "failed" else "",
        keep_succeeded=keep, keep_failed=keep,
    ))


def kept(state: Path, task: str) -> list[str]:
    folder = state / "runs" / task
    if not folder.exists():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.name != "index.json")


def test_failed_and_succeeded_runs_are_kept_to_their_limits(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    writer = HistoryWriter(state)
    writer.start()
    for n in range(5):
        run(writer, "job", n, "failed", keep=2)
    for n in range(5, 9):
        run(writer, "job", n, "succeeded", keep=3)
    writer.close()
    names = kept(state, "job")
    assert [n for n in names if "-failed-" in n] == ["job-failed-3", "job-failed-4"]
    assert [n for n in names if "-succeeded-" in n] == [
        "job-succeeded-6", "job-succeeded-7", "job-succeeded-8"
    ]


def test_a_removed_tasks_history_goes_after_seven_days(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    clock = Clock()
    writer = HistoryWriter(state, clock=clock)
    writer.start()
    writer.tasks_now({"gone", "stays"})
    run(writer, "gone", 1, "succeeded", keep=20)
    run(writer, "stays", 1, "succeeded", keep=20)
    writer.close()
    assert kept(state, "gone") and kept(state, "stays")

    def expire_at(t: float) -> None:
        """A writer of a later controller life whose directory no longer holds `gone`."""
        clock.t = t
        later = HistoryWriter(state, clock=clock)
        later.start()
        later.tasks_now({"stays"})
        later.close()  # writes what is pending, the expiry among it

    expire_at(T0 + 10)  # marked removed now
    assert kept(state, "gone"), "kept while less than 7 days have passed"
    expire_at(T0 + REMOVED_KEEP_S - 60)
    assert kept(state, "gone")
    expire_at(T0 + 10 + REMOVED_KEEP_S + 1)
    assert not (state / "runs" / "gone").exists(), "deleted 7 days after it left"
    assert kept(state, "stays")
