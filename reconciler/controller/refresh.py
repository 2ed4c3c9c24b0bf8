"""When to read the spec directory again, and how: the watch, its debounce, the reader.

A file event starts a quiet period; the read is asked for once events have been quiet
for DEBOUNCE_QUIET_S (or DEBOUNCE_MAX_S after the first), on SIGHUP, every RESCAN_EVERY_S
as a safety net, and when the directory comes back. The watch is (re)started before each
read, so a file written between the two is seen by the read or raises an event, never
neither. Reads run on the SpecReader's thread; `take()` hands the loop a finished one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from reconciler.controller import events
from reconciler.controller.reader import SpecReader
from reconciler.controller.specset import Refresh, SpecSet
from reconciler.controller.watch import SpecWatcher

DEBOUNCE_QUIET_S = 0.04  # a burst of events settles when quiet this long...
DEBOUNCE_MAX_S = 0.5  # ...or after this long at most
RESCAN_EVERY_S = 300.0  # level-triggered safety net against a missed file event


class SpecRefresh:
    def __init__(
        self, spec_dir: Path, specs: SpecSet, watch_mode: str, wake: Callable[[], None]
    ) -> None:
        self.spec_dir = spec_dir
        self._wake = wake
        self.reader = SpecReader(specs, wake)
        self.watcher = SpecWatcher(spec_dir, watch_mode, self._on_fs_event)
        self._dirty_since: float | None = None
        self._last_event = 0.0
        self._requested = False
        self._last_rescan = time.monotonic()
        self._fallback_logged = False

    def _on_fs_event(self) -> None:
        # Watcher thread: note the burst, wake the loop.
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        self._last_event = now
        self._wake()

    def start(self) -> None:
        self.watcher.start()
        self._log_fallback()

    def close(self) -> None:
        self.reader.close()
        self.watcher.stop()

    def request(self) -> None:
        """Read again at once (SIGHUP)."""
        self._requested = True

    def read_now(self) -> Refresh:
        """Watch, then read on the caller's thread (at start)."""
        self._watch_before_read()
        return self.reader.read_now()

    def settles_in(self) -> float | None:
        """Seconds until a burst of file events has settled (None: no burst, or a read
        is running and will wake the loop when done)."""
        if self._dirty_since is None or self.reader.busy:
            return None
        settle = min(self._last_event + DEBOUNCE_QUIET_S, self._dirty_since + DEBOUNCE_MAX_S)
        return settle - time.monotonic()

    def take(self) -> Refresh | None:
        """A finished read, if there is one; asks for the next read when one is due."""
        result = self.reader.take()
        mono = time.monotonic()
        due = self._requested
        settled = self._dirty_since is not None and (
            mono - self._last_event >= DEBOUNCE_QUIET_S or mono - self._dirty_since >= DEBOUNCE_MAX_S
        )
        if settled or mono - self._last_rescan >= RESCAN_EVERY_S:
            due = True
        if not self.watcher.watching_root and self.spec_dir.is_dir():
            due = True  # the directory came back
        if due and not self.reader.busy:
            self._dirty_since = None
            self._requested = False
            self._last_rescan = mono
            self._watch_before_read()
            self.reader.ask()
        return result

    def directory_gone(self) -> None:
        """The last read found no directory: watch its parent for its return."""
        if self.watcher.watching_root:
            self.watcher.start()
            self._log_fallback()

    def _watch_before_read(self) -> None:
        if self.spec_dir.is_dir() and (
            not self.watcher.watching_root or self.watcher.root_replaced()
        ):
            self.watcher.start()
            self._log_fallback()

    def _log_fallback(self) -> None:
        if self.watcher.fallback and not self._fallback_logged:
            self._fallback_logged = True
            events.watch_fallback(self.watcher.fallback)
