"""Run history: a record of every run, with the output it printed, kept on disk.

Layout (below the state directory, which keeps its rules: folders 0700, files 0600,
nothing opened through a symlink, every file replaced by rename of a temp file)::

    runs/TASK/RUN_ID.json   one run: {"format": 1, "record": {...}, "output": {...}}
    runs/TASK/index.json    the task's kept runs (records only, no output), newest last

Why per-task JSON files and not SQLite: the state directory's rule is that every file
is replaced by rename, never appended to in place (a WAL is exactly that); the queries
are per task or "the newest N", which an index file per task answers (its mtime bounds
the start of every run it lists), and a file per run lets `logs -f` poll one small file.

API
---
``HistoryWriter(state_path, metrics)``: owns the writer thread; every method is O(1) on
the caller's thread and never touches the disk.
    - ``start()`` / ``close(timeout)`` (writes what is pending, then stops).
    - ``tee(callback)``: wraps the supervisor's output callback so each line is also kept.
    - ``started(RunStart)``, ``finished(RunFinish)``: a run's record at start and at end.
    - ``tasks_now(names)``: the directory's tasks; history of a task gone 7 days goes.
``HistoryReader(state_path)``: for `runs`, `logs` and HTTP; any thread, any process.
    - ``runs(task=None, limit=None)``, ``run(run_id)``, ``latest(task)``, ``tasks()``;
      ``problems`` lists damaged files met (reported, skipped).
``OutputBuffer(limit)``: the head and tail of one run's output.
``reason_of(...)``: the human sentence of a run's end.
``follow(...)``: the lines of a run file as `logs` prints them, each once.

Output kept per run: at most ``outputLimitBytes`` (line bytes + 1 for the newline): the
first quarter, and the last three quarters; what falls between is counted, and shown as
one ``[... N bytes not kept ...]`` line. Each kept line is ``[seq, ms, stream, text]``
(``stream`` 0 stdout, 1 stderr; ``ms`` epoch milliseconds); ``seq`` counts every line of
the run, kept or not, so a follower prints each line once. A live run's file is
rewritten at most once a second while it prints.
"""

from reconciler.history.output import OutputBuffer
from reconciler.history.reader import HistoryReader, Line, follow, lines_of
from reconciler.history.records import RunFinish, RunStart, reason_of, valid_run_id
from reconciler.history.writer import HistoryWriter

__all__ = [
    "HistoryReader",
    "HistoryWriter",
    "Line",
    "OutputBuffer",
    "RunFinish",
    "RunStart",
    "follow",
    "lines_of",
    "reason_of",
    "valid_run_id",
]
