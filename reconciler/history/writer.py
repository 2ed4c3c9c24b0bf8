"""The history writer: one thread that writes run files and task indexes, off the loop.

The loop and the output pump only hand things over (a dict entry, a deque append, a
condition notify); every read, encode, write and removal happens on this thread. A write
that fails (a full disk, an unwritable folder) loses that piece of history, never a run:
it is counted in `reconciler_state_write_errors_total{file="history"}` and logged once as
`state.write-failed` until writes work again (`state.written`, once none failed for
10 s: a disk with room for small files only is not reported on and off).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol

from reconciler.history import files
from reconciler.history.files import INDEX_FILE, RUNS_DIR, TASK_NAME, HistoryFileError
from reconciler.history.output import OutputBuffer
from reconciler.history.records import RunFinish, RunStart
from reconciler.obs import log_event

REFRESH_S = 1.0  # a live run's file is rewritten at most this often
REMOVED_KEEP_S = 7 * 86400  # a removed task's history is deleted after this
EXPIRE_CHECK_S = 3600.0
INDEX_CACHE = 512  # tasks whose index stays in memory
RECOVERED_AFTER_S = 10.0  # writes work again: none failed for this long (no flapping)
MAX_PENDING = 10_000  # ends waiting for the writer; beyond, the oldest are lost (counted)

OutputCallback = Callable[[str, str, str, str], None]
Index = dict[str, dict[str, Any]]  # run_id -> record


class _Metrics(Protocol):
    def state_write_error(self, file: str) -> None: ...


class HistoryWriter:
    def __init__(
        self, state_path: Path, metrics: _Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(state_path) / RUNS_DIR
        self.metrics = metrics
        self.clock = clock
        self._live: dict[str, tuple[RunStart, OutputBuffer]] = {}
        self._events: deque[tuple[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self._failed_at = 0.0
        self._damaged: set[str] = set()
        self._written: dict[str, tuple[int, float]] = {}  # run_id -> (seq, monotonic)
        self._indexes: OrderedDict[str, Index] = OrderedDict()
        self._checked: set[str] = set()  # tasks whose folder was listed in this life
        self._present: set[str] = set()  # tasks seen in the directory in this life
        self._names: frozenset[str] | None = None
        self._last_expire = 0.0

    # --- the loop's and the pump's side: no disk ------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def tee(self, callback: OutputCallback) -> OutputCallback:
        live = self._live

        def on_output(run_id: str, task: str, stream: str, line: str) -> None:
            callback(run_id, task, stream, line)
            found = live.get(run_id)
            if found is not None:
                found[1].append(stream, line)

        return on_output

    def started(self, start: RunStart) -> None:
        self._live[start.run_id] = (start, OutputBuffer(start.output_limit))
        self._put(("start", start.run_id))

    def finished(self, end: RunFinish) -> None:
        found = self._live.pop(end.start.run_id, None)
        self._put(("end", (end, found[1] if found else None)))

    def tasks_now(self, names: Collection[str]) -> None:
        self._put(("tasks", frozenset(names)))

    def _put(self, item: tuple[str, Any]) -> None:
        with self._cond:
            if len(self._events) >= MAX_PENDING:
                self._events.popleft()
                self._count_error()
            self._events.append(item)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending (live runs included), then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._events and not self._closing:
                    # Live runs: their files are refreshed about once a second. None: sleep
                    # until something happens (an idle controller wakes for nothing), or
                    # for the hourly expiry of removed tasks' history.
                    self._cond.wait(REFRESH_S / 2 if self._live else EXPIRE_CHECK_S)
                events = list(self._events)
                self._events.clear()
                closing = self._closing
            try:
                self._pass(events, force=closing)
            except Exception as exc:  # history must never take the controller down
                self._failed(OSError(str(exc)))
            if closing and not self._events:
                return

    def _pass(self, events: list[tuple[str, Any]], force: bool) -> None:
        root = self._root()
        if root is None:
            return
        try:
            touched: dict[str, int | None] = {}
            for kind, item in events:
                if kind == "start":
                    found = self._live.get(item)
                    if found is not None:
                        self._write_run(root, found[0], found[0].record(), *found[1].to_json())
                        self._index(root, found[0].task)[item] = found[0].record()
                        touched.setdefault(found[0].task, None)
                elif kind == "end":
                    self._ended(root, *item)
                    touched[item[0].start.task] = 1
                    self._retain(root, item[0])
                elif kind == "tasks":
                    self._names = item
                    self._present |= item
                    self._expire(root)
            for task in touched:
                self._write_index(root, task)
            mono = time.monotonic()
            for run_id, (start, buf) in list(self._live.items()):
                seq, at = self._written.get(run_id, (-1, 0.0))
                if buf.seq != seq and (force or mono - at >= REFRESH_S):
                    self._write_run(root, start, start.record(), *buf.to_json())
            if self._names is not None and mono - self._last_expire >= EXPIRE_CHECK_S:
                self._expire(root)
        finally:
            os.close(root)

    def _root(self) -> int | None:
        try:
            return files.open_dir(self.path, create=True)  # the state dir itself may be a link
        except (OSError, HistoryFileError) as exc:
            self._failed(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return None

    def _task_dir(self, root: int, task: str) -> int:
        fd = files.open_dir(task, root, create=True)
        assert fd is not None
        return fd

    def _write_run(
        self, root: int, start: RunStart, record: dict[str, Any], output: str, seq: int = 0
    ) -> None:
        data = f'{{"format":1,"record":{json.dumps(record)},"output":{output}}}'.encode()
        if self._write(root, start.task, f"{start.run_id}.json", data) and record["ended"] is None:
            self._written[start.run_id] = (seq, time.monotonic())

    def _ended(self, root: int, end: RunFinish, buf: OutputBuffer | None) -> None:
        run_id = end.start.run_id
        self._written.pop(run_id, None)
        record = end.record()
        if buf is not None:
            output, _ = buf.to_json()
        else:  # not started here (adopted, or it never started): keep what the file holds
            output = self._old_output(root, end.start.task, run_id)
        self._write_run(root, end.start, record, output)
        self._index(root, end.start.task)[run_id] = record

    def _old_output(self, root: int, task: str, run_id: str) -> str:
        empty = '{"limit":0,"lines":[],"cut":null,"count":0,"bytes":0}'
        try:
            fd = files.open_dir(task, root)
            if fd is None:
                return empty
            try:
                data = files.read_file(fd, f"{run_id}.json")
            finally:
                os.close(fd)
            old = json.loads(data) if data else None
            if isinstance(old, dict) and isinstance(old.get("output"), dict):
                return json.dumps(old["output"])
        except (OSError, HistoryFileError, ValueError):
            pass
        return empty

    def _retain(self, root: int, end: RunFinish) -> None:
        index = self._index(root, end.start.task)
        ended = sorted(
            (r for r in index.values() if r.get("ended") is not None),
            key=lambda r: r.get("started") or 0, reverse=True,
        )
        ok = [r for r in ended if r.get("outcome") == "succeeded"]
        other = [r for r in ended if r.get("outcome") != "succeeded"]
        drop = ok[end.keep_succeeded:] + other[end.keep_failed:]
        if not drop:
            return
        try:
            fd = self._task_dir(root, end.start.task)
        except (OSError, HistoryFileError):
            return
        try:
            for r in drop:
                index.pop(r["run_id"], None)
                with contextlib.suppress(OSError):
                    files.remove_file(fd, f"{r['run_id']}.json")
        finally:
            os.close(fd)

    # --- indexes -------------------------------------------------------------------------

    def _index(self, root: int, task: str) -> Index:
        found = self._indexes.get(task)
        if found is not None:
            self._indexes.move_to_end(task)
            return found
        from reconciler.history.reader import load_index

        problems: list[str] = []
        found, _ = load_index(root, task, problems, scan=task not in self._checked)
        self._checked.add(task)
        for problem in problems:
            self._report_damaged(problem)
        self._indexes[task] = found
        while len(self._indexes) > INDEX_CACHE:
            self._indexes.popitem(last=False)
        return found

    def _write_index(self, root: int, task: str, removed_at: float | None = None) -> None:
        index = self._index(root, task)
        runs = sorted(index.values(), key=lambda r: r.get("started") or 0)
        doc = {"format": 1, "runs": runs, "removed_at": removed_at}
        self._write(root, task, INDEX_FILE, json.dumps(doc).encode())

    def _expire(self, root: int) -> None:
        """Mark tasks no longer in the directory as removed; delete those gone 7 days."""
        from reconciler.history.reader import load_index

        self._last_expire = time.monotonic()
        names = self._names or frozenset()
        now = self.clock()
        try:
            folders = files.list_dir(root)
        except OSError:
            return
        for task in folders:
            if task in names or not TASK_NAME.match(task):
                continue
            _, removed_at = load_index(root, task, [], scan=False)
            if removed_at is None or task in self._present:
                self._present.discard(task)
                self._write_index(root, task, removed_at=now)
            elif now - removed_at >= REMOVED_KEEP_S:
                with contextlib.suppress(OSError):
                    files.remove_tree(root, task)
                self._indexes.pop(task, None)
                self._checked.discard(task)

    # --- writing and failing ---------------------------------------------------------------

    def _write(self, root: int, task: str, name: str, data: bytes) -> bool:
        try:
            fd = self._task_dir(root, task)
            try:
                files.write_file(fd, name, data)
            finally:
                os.close(fd)
        except (OSError, HistoryFileError) as exc:
            self._failed(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return False
        if self._failing and time.monotonic() - self._failed_at >= RECOVERED_AFTER_S:
            self._failing = False
            log_event("state.written", f"Wrote run history in {self.path} again.",
                      file=str(self.path))
        return True

    def _count_error(self) -> None:
        if self.metrics is not None:
            self.metrics.state_write_error("history")

    def _failed(self, exc: OSError) -> None:
        self._count_error()
        self._failed_at = time.monotonic()
        if self._failing:
            return
        self._failing = True
        error = exc.strerror or str(exc)
        log_event(
            "state.write-failed",
            f"Cannot write run history in {self.path}: {error}; runs go on, their history "
            "is lost until writes work again.",
            level="error", file=str(self.path), error=error,
        )

    def _report_damaged(self, problem: str) -> None:
        if problem in self._damaged:
            return
        self._damaged.add(problem)
        log_event("state.damaged", f"Run history: {problem}; skipped.", level="error",
                  file=str(self.path), error=problem)
