"""What the controller writes to its state directory, and when.

The loop marks files dirty as things change (`dirty`); `flush()` writes them once per
turn of the loop. Work that can wait (a task's history file, the periodic ledger
snapshot) is done just after a tick, a second away from the next one. A file whose
content grows with the fleet (the applied set: 4 MB for 10,000 tasks) is built and
written on a thread of its own (`LateWriter`), from a snapshot the loop hands over, so
no tick waits for it. A write that fails (a full disk) never stops runs: it is logged
once, counted, and tried again at the next flush.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from reconciler.obs import Metrics, log_event
from reconciler.state import (
    HISTORY_DIR,
    HISTORY_FILE,
    LEDGER_DELTA,
    LEDGER_FILE,
    RUNS_FILE,
    DamagedStateFile,
    StateDir,
    StateFileError,
)
from reconciler.state.history import (
    HISTORY_PER_TASK,
    history_file,
    load_task_history,
    parse_history,
    read_legacy,
    task_of_history_file,
)
from reconciler.state.ledger import Ledger, load_ledger
from reconciler.state.runs import load_runs

HISTORY_WRITE_EVERY_S = 2.0
# Moved cursors go to the small delta file; the whole ledger is rewritten when the delta
# holds this many tasks or is this old (and whenever something other than a cursor
# changes).
DELTA_MAX_TASKS = 1000
LEDGER_SNAPSHOT_EVERY_S = 60.0

History = deque[dict[str, Any]]
Builder = Callable[[], Any]  # builds a file's data from a snapshot, off the loop


class LateWriter:
    """One thread that builds and writes the big state files, newest snapshot first.

    A snapshot handed over while the previous one is being written replaces any that
    still waits (only the newest matters). A write that failed is reported by `failed()`
    for the loop to hand over again at its next flush.
    """

    def __init__(self, write: Callable[[str, Any], bool]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._waiting: dict[str, Builder] = {}
        self._busy = False
        self._failed: set[str] = set()
        self._error: Exception | None = None  # a bug in a build: raised on the loop
        self._thread: threading.Thread | None = None

    def submit(self, name: str, build: Builder) -> None:
        with self._cond:
            self._waiting[name] = build
            self._failed.discard(name)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="state-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def failed(self) -> set[str]:
        """Names whose last write failed (and nothing newer waits); cleared here. A build
        that raised (a bug) raises here, on the loop's thread."""
        with self._cond:
            error, self._error = self._error, None
            out, self._failed = self._failed, set()
        if error is not None:
            raise error
        return out

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing waits or is being written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting))
                name, build = self._waiting.popitem()
                self._busy = True
            ok = False
            try:
                ok = self._write(name, build())
            except Exception as exc:
                self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    if not ok and name not in self._waiting:
                        self._failed.add(name)
                    self._cond.notify_all()


class StateFiles:
    def __init__(self, state: StateDir, metrics: Metrics) -> None:
        self.state = state
        self.metrics = metrics
        self.dirty: set[str] = set()
        self.history: dict[str, History] = {}  # tasks whose runs ended since start
        self._ledger_written = time.monotonic()
        self._history_written = 0.0
        self._failed: set[str] = set()  # what failed to write last time (logged once)
        self._legacy_history = False
        self._damaged: set[str] = set()  # files reported as damaged (once each)
        self._damaged_delta = False  # a damaged delta goes with the next snapshot
        self._lock = threading.Lock()  # write() runs on the loop and on the late writer
        self.late = LateWriter(lambda name, data: self.write(name, data, retry=False))

    # --- at start -------------------------------------------------------------------------

    def load_ledger(self) -> Ledger:
        """The ledger at start. A damaged ledger file is reported (`state.damaged`) and a
        copy of it kept as `<name>.damaged`; the controller goes on with what
        `load_ledger` could rebuild. The damaged file stays in place (its time of writing
        is what bars old due times, should this start be cut short) until the first
        flush replaces it with a sound snapshot: the next start has nothing to report."""
        found = load_ledger(self.state)
        for exc in found.damaged:
            name = exc.path.name
            kept = ""
            try:
                data = self.state.read_bytes(name)
                if data is not None:
                    self.state.write_bytes(f"{name}.damaged", data, sync=False)
                    kept = f"a copy is kept as {exc.path}.damaged; "
            except (OSError, StateFileError):
                pass
            if name == LEDGER_DELTA:
                self._damaged_delta = True
            self._report_damaged(
                exc, f"{kept}going on without it: no due time up to its last write runs "
                "again, and @every anchors and daemon back-off start afresh",
            )
        if found.behind or found.damaged:
            self.dirty.add(LEDGER_FILE)  # a new snapshot: folds the delta in, ends the damage
        return found.ledger

    def load_runs(self) -> list[Any]:
        """The records of runs.json as the previous controller left them (not checked
        one by one: RunRecord.parse does that). Damaged, it is reported (`state.damaged`)
        and nothing is adopted."""
        try:
            return load_runs(self.state)
        except DamagedStateFile as exc:
            self._report_damaged(exc, "runs of the previous controller are not adopted")
            return []

    def load_history(self) -> None:
        """Ready the history folder; split a history.json of an older version into it."""
        self.state.ensure_subdir(HISTORY_DIR)
        legacy = read_legacy(self.state)
        if isinstance(legacy, dict):
            # One file for all tasks (rewritten whole, 56 ms for 1,000 tasks): split it.
            for task, items in legacy.items():
                if isinstance(items, list):
                    self.history[str(task)] = deque(parse_history(items), HISTORY_PER_TASK)
                    self.dirty.add(history_file(str(task)))
        # Removed once every task's file is written; at once if there is nothing to split.
        self._legacy_history = bool(legacy) and isinstance(legacy, dict)
        if legacy is not None and not self._legacy_history:
            self.state.remove(HISTORY_FILE)

    def prune_history(self, keep: Collection[str]) -> None:
        """History files of tasks not in `keep` (the directory's tasks) go."""
        try:
            names = os.listdir(self.state.path / HISTORY_DIR)
        except OSError:
            names = []
        on_disk = {t for e in names if (t := task_of_history_file(f"{HISTORY_DIR}/{e}"))}
        for task in (on_disk | set(self.history)) - set(keep):
            self.state.remove(history_file(task))
            self.history.pop(task, None)
            self.dirty.discard(history_file(task))

    # --- history ------------------------------------------------------------------------

    def remember(self, task: str, item: dict[str, Any]) -> None:
        self.history_of(task).append(item)
        self.dirty.add(history_file(task))

    def history_of(self, task: str) -> History:
        """A task's last runs, read from its file the first time they are needed."""
        found = self.history.get(task)
        if found is None:
            try:
                items = load_task_history(self.state, task)
            except StateFileError as exc:  # damaged, or not a regular file: rewritten anew
                items = []
                self._report_damaged(exc, "its last runs are not shown until it is rewritten")
            found = self.history[task] = deque(items, HISTORY_PER_TASK)
        return found

    def _report_damaged(self, exc: StateFileError, consequence: str) -> None:
        """One `state.damaged` error per file for the life of the controller."""
        if str(exc.path) in self._damaged:
            return
        self._damaged.add(str(exc.path))
        log_event(
            "state.damaged",
            f"{exc}; {consequence}.",
            level="error",
            file=str(exc.path),
            error=str(exc),
        )

    # --- writing --------------------------------------------------------------------------

    def flush(
        self,
        ledger: Ledger,
        contents: Mapping[str, Callable[[], Any]],
        *,
        late: Mapping[str, Callable[[], Builder]] | None = None,
        force: bool = False,
        after_tick: bool = False,
    ) -> None:
        """Write what is dirty. `contents` gives the other files' data (runs, status) by
        name, written in that order. `late` gives, for the files written by the late
        writer (the applied set), a snapshot taken now: a function that builds the data
        on the writer's thread. `force` (at shutdown) writes the runs, the ledger and
        everything that waits, the late files too, before it returns."""
        late = late or {}
        self.dirty |= self.late.failed()  # tried again now
        dirty = self.dirty
        if force:
            dirty |= {RUNS_FILE, LEDGER_FILE}
        mono = time.monotonic()
        recent = ledger.recent
        if recent and (force or after_tick) and (
            len(recent) >= DELTA_MAX_TASKS or mono - self._ledger_written >= LEDGER_SNAPSHOT_EVERY_S
        ):
            dirty.add(LEDGER_FILE)
        history = {n for n in dirty if task_of_history_file(n) is not None}
        later: set[str] = set()
        if history and not (
            force or (after_tick and mono - self._history_written >= HISTORY_WRITE_EVERY_S)
        ):
            later, history = history, set()  # busy fleets: every few seconds at most
            dirty = dirty - later
        if not dirty:
            return  # what waits stays in self.dirty
        self.dirty = later
        # Only the ledger guards a promise across power loss (at most once per due
        # second): it alone is fsynced. The others are atomic against a crash, which is
        # what adoption and `status` need.
        for name, make in contents.items():
            if name in dirty:
                self.write(name, make())
        if LEDGER_FILE in dirty:
            self._write_ledger(ledger)
        elif LEDGER_DELTA in dirty:
            self.write(LEDGER_DELTA, ledger.delta({}), sync=True)
        # The big files after the ledger: the promise rests on the ledger, so it is on disk
        # before a thread starts building the applied set next to the loop.
        for name, snapshot in late.items():
            if name in dirty:
                self.late.submit(name, snapshot())
        if force:
            self.late.drain()
            self.dirty |= self.late.failed()
        if history:
            self._history_written = mono
            # One small file per task that ran: the cost follows the runs, not the fleet.
            ok = [self.write(n, list(self.history_of(task_of_history_file(n) or "")))
                  for n in sorted(history)]
            if self._legacy_history and all(ok):
                self.state.remove(HISTORY_FILE)
                self._legacy_history = False

    def _write_ledger(self, ledger: Ledger) -> None:
        """A new snapshot, of a new generation: the delta file before it no longer applies."""
        data = ledger.to_json()
        data["generation"] = ledger.generation + 1
        if self.write(LEDGER_FILE, data, sync=True, sort=False):
            if self._damaged_delta:  # of an older generation now: it no longer applies
                self.state.remove(LEDGER_DELTA)
                self._damaged_delta = False
            ledger.generation += 1
            ledger.recent = {}
            self._ledger_written = time.monotonic()

    def write(
        self, name: str, obj: Any, *, sync: bool = False, retry: bool = True, sort: bool = True
    ) -> bool:
        """Write one state file; False when that failed (and, with `retry`, marked dirty
        again; the late writer hands it back itself)."""
        # The history files of all tasks are one thing to report and count.
        kind = HISTORY_DIR if task_of_history_file(name) is not None else name
        path = self.state.path / kind
        try:
            self.state.write_json(name, obj, sync=sync, sort=sort)
        except OSError as exc:
            self.metrics.state_write_error(kind)
            if retry:
                self.dirty.add(name)
            with self._lock:
                first = kind not in self._failed
                self._failed.add(kind)
            if first:
                log_event(
                    "state.write-failed",
                    f"Cannot write {path}: {exc.strerror or exc}; runs go on, and it is "
                    "written again as soon as possible.",
                    level="error",
                    file=str(path),
                    error=exc.strerror or str(exc),
                )
            return False
        with self._lock:
            again = kind in self._failed
            self._failed.discard(kind)
        if again:
            log_event("state.written", f"Wrote {path} again.", file=str(path))
        return True
