"""When the controller writes which state file (StateFiles), on a real state directory."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.controller.persist import DELTA_MAX_TASKS, StateFiles
from reconciler.controller.records import Ledger
from reconciler.obs import Metrics
from reconciler.state import LEDGER_DELTA, LEDGER_FILE, StateDir


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

    def spy(name: str, obj: object, *, sync: bool = True) -> None:
        order.append(name)
        write(name, obj, sync=sync)

    files.state.write_json = spy  # type: ignore[method-assign]
    files.dirty |= {LEDGER_DELTA, "runs.json"}
    files.flush(ledger, {"runs.json": lambda: []})
    assert order == ["runs.json", LEDGER_DELTA]
