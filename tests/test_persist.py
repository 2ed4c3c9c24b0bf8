"""When the controller writes which state file (StateFiles), on a real state directory."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from reconciler.controller.statefiles import DELTA_MAX_TASKS, StateFiles
from reconciler.obs import Metrics
from reconciler.state import LEDGER_DELTA, LEDGER_FILE, RUNS_FILE, StateDir
from reconciler.state.ledger import Ledger


def files_in(tmp_path: Path) -> StateFiles:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    files = StateFiles(sd, Metrics())
    files.load_history()
    return files


def item(n: int) -> dict:
    return {"run_id": f"r{n}", "outcome": "succeeded"}


def test_history_waits_for_the_moment_after_a_tick(tmp_path) -> None:
    files = files_in(tmp_path)
    ledger = Ledger()
    path = files.state.path / "history" / "a.json"
    files.remember("a", item(1))
    files.flush(ledger, {})
    assert not path.exists()
    files.flush(ledger, {}, after_tick=True)
    assert json.loads(path.read_text()) == [item(1)]
    # Written at most every couple of seconds; kept dirty meanwhile, and shutdown forces it.
    files.remember("a", item(2))
    files.flush(ledger, {}, after_tick=True)
    assert json.loads(path.read_text()) == [item(1)]
    files.flush(ledger, {}, force=True)
    assert json.loads(path.read_text()) == [item(1), item(2)]


def test_a_full_delta_makes_a_new_snapshot_after_a_tick(tmp_path) -> None:
    files = files_in(tmp_path)
    ledger = Ledger()
    ledger.recent = {f"t{i}": i for i in range(DELTA_MAX_TASKS - 1)}
    ledger.cursors = dict(ledger.recent)
    files.dirty.add(LEDGER_DELTA)
    files.flush(ledger, {}, after_tick=True)
    assert not (files.state.path / LEDGER_FILE).exists()  # the delta carries them
    delta = json.loads((files.state.path / LEDGER_DELTA).read_text())
    assert delta["generation"] == 0 and len(delta["cursors"]) == DELTA_MAX_TASKS - 1

    ledger.recent["one-more"] = ledger.cursors["one-more"] = 5
    files.dirty.add(LEDGER_DELTA)
    files.flush(ledger, {})  # not just after a tick: waits
    assert not (files.state.path / LEDGER_FILE).exists()
    files.flush(ledger, {}, after_tick=True)
    snapshot = json.loads((files.state.path / LEDGER_FILE).read_text())
    assert snapshot["generation"] == 1 and len(snapshot["cursors"]) == DELTA_MAX_TASKS
    assert ledger.generation == 1 and ledger.recent == {}
    # The old delta names generation 0: a restart ignores it.
    again = files_in(tmp_path).load_ledger()
    assert again.generation == 1 and again.cursors == ledger.cursors


def test_runs_come_before_the_delta_that_drops_starting(tmp_path) -> None:
    files = files_in(tmp_path)
    ledger = Ledger()
    order: list[str] = []
    write = files.state.write_json

    def spy(name: str, obj: object, *, sync: bool = True, sort: bool = True) -> None:
        order.append(name)
        write(name, obj, sync=sync, sort=sort)

    files.state.write_json = spy  # type: ignore[method-assign]
    files.dirty |= {LEDGER_DELTA, "runs.json"}
    files.flush(ledger, {"runs.json": lambda: []})
    assert order == ["runs.json", LEDGER_DELTA]


# --- damaged state files ---------------------------------------------------------------


def _logged(monkeypatch) -> list[dict]:
    import reconciler.controller.statefiles as persist

    seen: list[dict] = []
    monkeypatch.setattr(
        persist, "log_event",
        lambda event, message, level="info", **f: seen.append(
            {"event": event, "message": message, "level": level, **f}),
    )
    return seen


def test_a_damaged_delta_is_reported_once_and_goes_with_the_next_snapshot(
    tmp_path, monkeypatch
) -> None:
    seen = _logged(monkeypatch)
    files = files_in(tmp_path)
    files.state.write_json(LEDGER_FILE, {"cursors": {"a": 100}, "generation": 3})
    (files.state.path / LEDGER_DELTA).write_text('{"generation": 3, "cursors": {"a": 1')
    ledger = files.load_ledger()
    assert [e["event"] for e in seen] == ["state.damaged"]
    assert seen[0]["level"] == "error" and seen[0]["file"] == str(files.state.path / LEDGER_DELTA)
    assert (files.state.path / f"{LEDGER_DELTA}.damaged").read_text().startswith('{"generation"')
    files.flush(ledger, {})  # the new snapshot: the damaged delta no longer applies
    assert not (files.state.path / LEDGER_DELTA).exists()
    assert json.loads((files.state.path / LEDGER_FILE).read_text())["generation"] == 4
    again = StateFiles(files.state, Metrics())
    again.load_ledger()
    assert len(seen) == 1  # nothing left to report


def test_a_damaged_runs_file_is_reported_and_adopts_nothing(tmp_path, monkeypatch) -> None:
    seen = _logged(monkeypatch)
    files = files_in(tmp_path)
    assert files.load_runs() == []
    (files.state.path / RUNS_FILE).write_text('[{"run_id": "r1", "pid"')
    assert files.load_runs() == []
    files.state.write_json(RUNS_FILE, {"not": "a list"})
    assert files.load_runs() == []
    assert [e["event"] for e in seen] == ["state.damaged"]  # once per file
    files.state.write_json(RUNS_FILE, [{"run_id": "r1"}])
    assert files.load_runs() == [{"run_id": "r1"}]


def test_a_fifo_history_file_is_reported_not_waited_on(tmp_path, monkeypatch) -> None:
    import os

    seen = _logged(monkeypatch)
    files = files_in(tmp_path)
    os.mkfifo(files.state.path / "history" / "a.json", 0o600)
    def hung(*_: object) -> None:
        raise TimeoutError("blocked on the FIFO")

    old = signal.signal(signal.SIGALRM, hung)  # a regression fails instead of hanging
    signal.alarm(10)
    try:
        files.remember("a", item(1))  # reads the task's file first: must not block
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert [e["event"] for e in seen] == ["state.damaged"]
    assert "is a FIFO, not a regular file" in seen[0]["message"]
    files.flush(Ledger(), {}, force=True)  # replaced by rename, as every state file
    assert json.loads((files.state.path / "history" / "a.json").read_text()) == [item(1)]
