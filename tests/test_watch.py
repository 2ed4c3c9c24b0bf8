"""The spec watch: inotify, its fallback to polling, the directory's parent."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest
from watchdog.observers.inotify import InotifyObserver

import reconciler.controller.watch as watch
from reconciler.controller.watch import SpecWatcher


def test_inotify_sees_a_new_file(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    root.mkdir()
    poked = threading.Event()
    w = SpecWatcher(root, "inotify", poked.set)
    w.start()
    try:
        assert w.watching_root and w.fallback is None
        (root / "a.yaml").write_text("x")
        assert poked.wait(10)
    finally:
        w.stop()


class _NoWatchesLeft(InotifyObserver):
    def start(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (inotify watch limit)")


def test_falls_back_to_polling_when_inotify_is_exhausted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Error injection: the kernel's inotify limits are per user and shared with the
    # whole machine, so they are not lowered for real here.
    monkeypatch.setattr(watch, "Observer", _NoWatchesLeft)
    root = tmp_path / "specs"
    root.mkdir()
    poked = threading.Event()
    w = SpecWatcher(root, "inotify", poked.set)
    w.start()
    try:
        assert w.fallback is not None and "polling" in w.fallback
        assert w.watching_root
        (root / "a.yaml").write_text("x")
        assert poked.wait(10), "the polling fallback did not see the new file"
    finally:
        w.stop()


def test_parent_watch_sees_the_directory_come_back(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    poked = threading.Event()
    w = SpecWatcher(root, "inotify", poked.set)
    w.start()
    try:
        assert not w.watching_root
        (tmp_path / "unrelated").mkdir()
        assert not poked.wait(0.5)  # siblings of the spec directory are not its business
        root.mkdir()
        assert poked.wait(10)
    finally:
        w.stop()
