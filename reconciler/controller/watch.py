"""Watching the spec directory: any change anywhere below it only says "look again".

inotify (watchdog's native observer) by default, polling with `--watch poll`. The watch is
on the directory's parent too, so the directory vanishing and coming back (a git checkout
of the parent, a ConfigMap remount) is seen; the controller re-creates the watch then.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog import events as fs_events
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# watchdog logs a benign race between stopping an observer and its last read as an
# error on stderr; a stopped watch has nothing left to report.
logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)

# Changes only. Opens and closes without a write are left out of the inotify mask itself:
# every read of the directory (ours, git's, a backup's) would otherwise wake the watch
# thread for each file, and at start, with 10,000 tasks, that thread took 0.45 s of the
# first read's 1.1 s away from it.
CHANGES: list[type[FileSystemEvent]] = [
    FileModifiedEvent, DirModifiedEvent, FileCreatedEvent, DirCreatedEvent,
    FileMovedEvent, DirMovedEvent, FileDeletedEvent, DirDeletedEvent, FileClosedEvent,
]
# A mode or owner change decides whether a file is trusted. Newer watchdog reports it as
# its own event (older ones as a modification, whose mask already asks for IN_ATTRIB).
CHANGES += [
    cls for cls in (getattr(fs_events, "FileAttribEvent", None),
                    getattr(fs_events, "DirAttribEvent", None)) if cls is not None
]


class _Poke(FileSystemEventHandler):
    def __init__(self, poke: Callable[[], None], only: Path | None = None) -> None:
        self._poke = poke
        self._only = str(only) if only is not None else None

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (ours included) change nothing
        if self._only is not None:
            paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
            if not any(p == self._only or p.startswith(self._only + "/") for p in paths):
                return
        self._poke()


class SpecWatcher:
    def __init__(self, root: Path, mode: str, poke: Callable[[], None]) -> None:
        self.root = root.absolute()
        self.mode = mode
        self._poke = poke
        self._observer: BaseObserver | None = None
        self._watching_root = False
        self._lock = threading.Lock()
        self.fallback: str | None = None  # why the watch polls although inotify was asked
        self._root_id: tuple[int, int] | None = None

    def _new_observer(self) -> BaseObserver:
        if self.mode == "poll":
            return PollingObserver(timeout=1.0)
        return Observer()

    def start(self) -> None:
        with self._lock:
            self._stop_locked()
            try:
                self._start_locked(self._new_observer())
            except OSError as exc:
                if self.mode == "poll":
                    raise
                # inotify limits (max_user_watches, max_user_instances) are per user and
                # may be used up by others: a slower watch beats none.
                self.fallback = (
                    f"inotify is unavailable ({exc.strerror or exc}); polling the spec "
                    "directory every second instead"
                )
                self._start_locked(PollingObserver(timeout=1.0))

    def _root_identity(self) -> tuple[int, int] | None:
        try:
            st = self.root.stat()  # through a symlink: the directory actually watched
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def root_replaced(self) -> bool:
        """The spec directory is another directory now (a symlink to it was swapped, as
        git-sync does, or it was moved away and recreated): the watch must follow."""
        return self._watching_root and self._root_identity() != self._root_id

    def _start_locked(self, observer: BaseObserver) -> None:
        parent = self.root.parent
        self._watching_root = False
        self._root_id = self._root_identity()
        try:
            if parent.is_dir():
                observer.schedule(
                    _Poke(self._poke, only=self.root), str(parent), recursive=False,
                    event_filter=CHANGES,
                )
            if self.root.is_dir():
                # The directory itself, through a symlink if the root is one (inotify is
                # not told to follow links: a symlink cycle below must not loop the walk).
                observer.schedule(
                    _Poke(self._poke), os.path.realpath(self.root), recursive=True,
                    event_filter=CHANGES,
                )
                self._watching_root = True
            observer.daemon = True
            observer.start()
        except OSError:
            observer.stop()
            self._watching_root = False
            raise
        self._observer = observer

    @property
    def watching_root(self) -> bool:
        return self._watching_root

    def _stop_locked(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()
