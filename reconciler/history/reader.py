"""Reading the run history: for `runs`, `logs`, `run --wait` and the HTTP API.

Any thread, any process; never writes. A damaged file (not JSON, wrong shape, a symlink
or FIFO in its place) is reported in `problems` and skipped, never raised.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.history import files
from reconciler.history.files import INDEX_FILE, RUNS_DIR, TASK_NAME, HistoryFileError
from reconciler.history.output import line_bytes
from reconciler.history.records import task_of_run_id, valid_run_id

Index = dict[str, dict[str, Any]]
STREAMS = ("stdout", "stderr")


def _record_ok(rec: Any) -> bool:
    return (
        isinstance(rec, dict)
        and isinstance(rec.get("run_id"), str)
        and valid_run_id(rec["run_id"])
        and isinstance(rec.get("started"), int | float)
        and not isinstance(rec.get("started"), bool)
    )


def _parse(data: bytes | None, name: str, problems: list[str]) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        problems.append(f"{name} is damaged (not JSON)")
        return None


def load_index(
    root: int, task: str, problems: list[str], scan: bool
) -> tuple[Index, float | None]:
    """A task's kept runs by id, and when the task was seen removed. `scan`: also read
    run files the index does not list (a crash between the two writes). A missing or
    damaged index is rebuilt from the run files."""
    index: Index = {}
    removed_at = None
    try:
        fd = files.open_dir(task, root)
    except (OSError, HistoryFileError) as exc:
        problems.append(f"{RUNS_DIR}/{task}: {exc}")
        return index, None
    if fd is None:
        return index, None
    try:
        name = f"{RUNS_DIR}/{task}/{INDEX_FILE}"
        try:
            doc = _parse(files.read_file(fd, INDEX_FILE), name, problems)
        except HistoryFileError as exc:
            problems.append(f"{RUNS_DIR}/{task}/{exc}")
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("runs"), list):
            index = {r["run_id"]: r for r in doc["runs"] if _record_ok(r)}
            at = doc.get("removed_at")
            removed_at = float(at) if isinstance(at, int | float) else None
        else:
            if doc is not None:
                problems.append(f"{name} is damaged (not an index)")
            scan = True
        if scan:
            for entry in files.list_dir(fd):
                run_id = entry[:-5]
                if entry.endswith(".json") and run_id not in index and valid_run_id(run_id):
                    rec = _load_run(fd, f"{RUNS_DIR}/{task}", entry, problems)
                    if rec is not None:
                        index[run_id] = rec["record"]
    finally:
        os.close(fd)
    return index, removed_at


def _load_run(fd: int, folder: str, entry: str, problems: list[str]) -> dict[str, Any] | None:
    name = f"{folder}/{entry}"
    try:
        doc = _parse(files.read_file(fd, entry), name, problems)
    except HistoryFileError as exc:
        problems.append(f"{folder}/{exc}")
        return None
    if doc is None:
        return None
    out = doc.get("output") if isinstance(doc, dict) else None
    if not (
        _record_ok(doc.get("record"))
        and isinstance(out, dict)
        and isinstance(out.get("lines"), list)
    ):
        problems.append(f"{name} is damaged (not a run record)")
        return None
    return doc  # type: ignore[no-any-return]


class HistoryReader:
    def __init__(self, state_path: Path | str) -> None:
        self.path = Path(state_path) / RUNS_DIR
        self.problems: list[str] = []

    def _root(self) -> int | None:
        try:
            return files.open_dir(self.path)
        except (OSError, HistoryFileError) as exc:
            self.problems.append(f"{self.path}: {exc}")
            return None

    def tasks(self) -> list[str]:
        root = self._root()
        if root is None:
            return []
        try:
            return sorted(t for t in files.list_dir(root) if TASK_NAME.match(t))
        finally:
            os.close(root)

    def runs(self, task: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Records newest first (by start), live runs included; at most `limit`."""
        if task is not None and not TASK_NAME.match(task):
            return []
        root = self._root()
        if root is None:
            return []
        try:
            if task is not None:
                index, _ = load_index(root, task, self.problems, scan=False)
                found = sorted(index.values(), key=lambda r: r["started"], reverse=True)
                return found[:limit] if limit else found
            return self._newest(root, limit)
        finally:
            os.close(root)

    def _newest(self, root: int, limit: int | None) -> list[dict[str, Any]]:
        """The newest runs of all tasks. An index is written at each start and end of its
        task's runs, so its mtime bounds the start of every run it lists: indexes are read
        newest first until the next one cannot hold a run newer than the limit-th."""
        stamped = []
        for task in files.list_dir(root):
            if TASK_NAME.match(task):
                with contextlib.suppress(OSError):
                    st = os.stat(f"{task}/{INDEX_FILE}", dir_fd=root, follow_symlinks=False)
                    stamped.append((st.st_mtime, task))
        stamped.sort(reverse=True)
        best: list[tuple[float, str, dict[str, Any]]] = []  # a min-heap of the newest
        for mtime, task in stamped:
            if limit and len(best) >= limit and mtime + 1 < best[0][0]:
                break
            index, _ = load_index(root, task, self.problems, scan=False)
            for rec in index.values():
                item = (float(rec["started"]), rec["run_id"], rec)
                if not limit or len(best) < limit:
                    heapq.heappush(best, item)
                elif item[:2] > best[0][:2]:
                    heapq.heapreplace(best, item)
        return [rec for _, _, rec in sorted(best, key=lambda i: i[:2], reverse=True)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's file: {"record": ..., "output": ...}; None if absent or damaged."""
        task = task_of_run_id(run_id)
        root = self._root() if task is not None else None
        if root is None or task is None:
            return None
        try:
            fd = files.open_dir(task, root)
        except (OSError, HistoryFileError) as exc:
            self.problems.append(f"{RUNS_DIR}/{task}: {exc}")
            return None
        finally:
            os.close(root)
        if fd is None:
            return None
        try:
            return _load_run(fd, f"{RUNS_DIR}/{task}", f"{run_id}.json", self.problems)
        finally:
            os.close(fd)

    def latest(self, task: str) -> dict[str, Any] | None:
        found = self.runs(task, limit=1)
        return found[0] if found else None


@dataclass(frozen=True)
class Line:
    seq: int  # 0: the marker of output not kept
    ms: int | None
    stream: str  # stdout | stderr
    text: str

    @property
    def marker(self) -> bool:
        return self.seq == 0


def _marker(n: int) -> Line:
    return Line(0, None, "stdout", f"[... {n} bytes not kept ...]")


def _kept(output: dict[str, Any]) -> Iterator[tuple[int, Line]]:
    """(byte offset in the run's whole output, line) of each kept line."""
    cut = output.get("cut") if isinstance(output.get("cut"), dict) else None
    after = cut.get("after", 0) if cut else None
    skipped = cut.get("bytes", 0) if cut else 0
    offset = 0
    jumped = False
    for item in output.get("lines", []):
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[3], str)):
            continue
        seq, ms, stream, text = item
        if not isinstance(seq, int):
            continue
        if after is not None and not jumped and seq > after:
            offset += int(skipped) if isinstance(skipped, int) else 0
            jumped = True
        yield offset, Line(seq, ms if isinstance(ms, int) else None, STREAMS[stream == 1], text)
        offset += line_bytes(text)


class Follower:
    """Prints each kept line of a run once across reads of its file, and one marker
    for every stretch it never saw (not kept, or gone from the tail between reads)."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.pos = 0
        self.record: dict[str, Any] | None = None

    def feed(self, doc: dict[str, Any]) -> list[Line]:
        self.record = doc["record"]
        out: list[Line] = []
        for offset, line in _kept(doc["output"]):
            if line.seq <= self.last_seq:
                continue
            if offset > self.pos:
                out.append(_marker(offset - self.pos))
            out.append(line)
            self.pos = offset + line_bytes(line.text)
            self.last_seq = line.seq
        total = doc["output"].get("bytes")
        if self.ended and isinstance(total, int) and total > self.pos:
            out.append(_marker(total - self.pos))  # the end was not kept (limit 0)
            self.pos = total
        return out

    @property
    def ended(self) -> bool:
        return self.record is not None and self.record.get("ended") is not None


def lines_of(doc: dict[str, Any]) -> list[Line]:
    """A run's kept output as `logs` prints it, the marker where the middle was cut."""
    return Follower().feed(doc)


def follow(
    load: Callable[[], dict[str, Any] | None],
    alive: Callable[[], bool],
    emit: Callable[[Line], None],
    interval: float = 0.2,
) -> Follower:
    """Emit a run's lines until its record says it ended, or no controller runs (checked
    when a read brings nothing new); then one last read. Returns the follower, whose
    `record` is the last one read."""
    f = Follower()
    while True:
        doc = load()
        new = f.feed(doc) if doc is not None else []
        for line in new:
            emit(line)
        if f.ended:
            return f
        if not new and not alive():
            doc = load()
            if doc is not None:
                for line in f.feed(doc):
                    emit(line)
            return f
        time.sleep(interval)
