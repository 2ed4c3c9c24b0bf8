"""The due journal: a cron run is due at most once per (task, due second), across crashes.

The protocol, in one place:

1. A tick's due times come from the DueQueue, which changes nothing. `before_spawn`
   moves their tasks' cursors and writes the delta file (the cursors moved since the
   last snapshot, and the runs about to start) before any process of them exists.
2. After the spawns, `after_spawn` writes runs.json, before any later delta drops the
   `starting` entries: a run is never both unrecorded and forgotten.
3. At start, `load` folds the delta into the snapshot; a due time at or before a task's
   cursor is never due again. `interrupted` gives the runs `starting` still names with
   no recorded run: a crash cut them short between the delta and the record.
4. When the snapshot is rewritten is StateFiles' policy (statefiles.py); each snapshot names
   its generation, so a delta already folded into it never applies twice.

The journal also keeps the rest of the ledger (anchors, daemon back-off, the schedule
each cursor was set under): one owner for one file.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from reconciler.controller.statefiles import StateFiles
from reconciler.reconcile import (
    Action,
    CursorMoves,
    DaemonState,
    DueSet,
    StartRun,
    WaitingRetry,
)
from reconciler.state import LEDGER_DELTA, LEDGER_FILE, RUNS_FILE
from reconciler.state.ledger import Ledger


class DueJournal:
    def __init__(self, files: StateFiles) -> None:
        self.files = files
        self.ledger = Ledger()

    def load(self) -> None:
        self.ledger = self.files.load_ledger()

    # --- what the decision reads ----------------------------------------------------------

    @property
    def cursors(self) -> Mapping[str, int]:
        return self.ledger.cursors

    @property
    def schedules(self) -> Mapping[str, str]:
        return self.ledger.schedules

    @property
    def daemons(self) -> Mapping[str, DaemonState]:
        return self.ledger.daemons

    @property
    def retries(self) -> Mapping[str, WaitingRetry]:
        return self.ledger.retries

    # --- changes between ticks ------------------------------------------------------------

    def keep_moves(self, moves: CursorMoves) -> None:
        """Cursors of new or rescheduled tasks, moved to now by DueQueue.sync."""
        if moves.cursors or moves.schedules:
            self.ledger.cursors.update(moves.cursors)
            self.ledger.schedules.update(moves.schedules)
            self.files.dirty.add(LEDGER_FILE)

    def anchor(self, task: str, schedule_text: str | None, now: int) -> int:
        """The `@every` anchor of `task`: when it was first applied with this schedule."""
        found = self.ledger.anchor(task, schedule_text)
        if found is None:
            self.ledger.anchors[task] = {"schedule": schedule_text, "at": now}
            self.files.dirty.add(LEDGER_FILE)
            found = now
        return found

    def set_daemon(self, task: str, state: DaemonState) -> None:
        self.ledger.daemons[task] = state
        self.files.dirty.add(LEDGER_FILE)

    def set_retry(self, task: str, retry: WaitingRetry) -> None:
        self.ledger.retries[task] = retry
        self.files.dirty.add(LEDGER_FILE)

    def drop_retry(self, task: str) -> None:
        if self.ledger.retries.pop(task, None) is not None:
            self.files.dirty.add(LEDGER_FILE)

    def settled(self, task: str, failed: bool) -> bool:
        """Note how a task's run ended after its last attempt; True when it is a recovery
        (a success after one or more failures)."""
        failing = self.ledger.failing
        recovered = not failed and task in failing
        if failed != (task in failing):
            (failing.add if failed else failing.discard)(task)
            self.files.dirty.add(LEDGER_FILE)
        return recovered

    def prune(self, keep: Collection[str]) -> None:
        """Forget tasks not in `keep`: a task removed while no controller ran and added
        back later is new, not owed its missed runs."""
        ledger = self.ledger
        for table in (
            ledger.cursors, ledger.schedules, ledger.anchors, ledger.daemons, ledger.retries
        ):
            # Replicas' daemon entries are `name/N`: kept with their task.
            for name in [n for n in table if n.partition("/")[0] not in keep]:
                del table[name]
        ledger.failing &= set(keep)
        self.files.dirty.add(LEDGER_FILE)

    # --- around the spawns of a tick ------------------------------------------------------

    def before_spawn(self, due: Sequence[DueSet], actions: Iterable[Action]) -> None:
        """Move the cursors of this tick's due times and put them on disk, before any run
        of them exists. Only the delta file is written here, not the whole ledger (that
        made one due task among 10,000 start 20 ms late); its fsync for power loss comes
        with the flush after the spawns, off the path from due second to exec.

        A waiting retry being started leaves the ledger here too, and the delta names it
        (task: [due, attempt]): after a crash it is not started a second time."""
        starts = [a for a in actions if isinstance(a, StartRun)]
        attempts = {
            a.task: [a.due, a.attempt]
            for a in starts
            if a.trigger == "retry" and a.due is not None
        }
        if not due and not attempts:
            return
        moved = {d.task: d.last for d in due if d.last is not None}
        self.ledger.cursors.update(moved)
        self.ledger.recent.update(moved)
        for task in attempts:
            self.drop_retry(task)
        starting = {
            a.task: a.due for a in starts if a.due is not None and a.trigger == "schedule"
        }
        self.files.write(LEDGER_DELTA, self.ledger.delta(starting, attempts))
        self.files.dirty.add(LEDGER_DELTA)  # rewritten without `starting`, fsynced

    def after_spawn(self, records: list[dict[str, Any]]) -> None:
        """Record the live runs at once: a controller killed now finds them (no second
        copy of a daemon), and runs.json is on disk before the delta drops `starting`."""
        self.files.dirty.discard(RUNS_FILE)
        self.files.write(RUNS_FILE, records)

    # --- at start -------------------------------------------------------------------------

    def interrupted(self, recorded: Collection[tuple[str, int | None]]) -> list[tuple[str, int]]:
        """Due runs that were being started when the previous controller died and that no
        run record shows; forgotten once returned (they are reported once)."""
        cut = sorted((t, d) for t, d in self.ledger.starting.items() if (t, d) not in recorded)
        if self.ledger.starting:
            self.ledger.starting = {}
            self.files.dirty.add(LEDGER_FILE)
        return cut
