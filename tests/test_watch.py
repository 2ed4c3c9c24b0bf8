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


IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN = 0x1, 0x10, 0x20
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE = (
    0x2, 0x4, 0x8, 0x80, 0x100, 0x200
)


def _inotify_masks() -> list[int]:
    """The event masks of this process's inotify watches, as the kernel holds them."""
    masks = []
    fdinfo = Path("/proc/self/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            text = entry.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("inotify wd:"):
                field = next(f for f in line.split() if f.startswith("mask:"))
                masks.append(int(field[5:], 16))
    return masks


def test_reads_of_the_directory_are_not_watched(tmp_path: Path) -> None:
    # Every read of the spec files (the controller's own, git's, a backup's) woke the
    # watch thread once per open and close: at start with 10,000 tasks it took 0.45 s of
    # the first read's CPU. The kernel is asked for changes only.
    root = tmp_path / "specs"
    (root / "sub").mkdir(parents=True)
    before = set(_inotify_masks())
    w = SpecWatcher(root, "inotify", lambda: None)
    w.start()
    try:
        masks = [m for m in _inotify_masks() if m not in before] or _inotify_masks()
        assert len(masks) >= 3  # the parent, the directory, its sub-folder
        for mask in masks:
            assert mask & (IN_ACCESS | IN_OPEN | IN_CLOSE_NOWRITE) == 0, hex(mask)
        changes = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
        recursive = [m for m in masks if m & changes == changes]
        assert len(recursive) >= 2, [hex(m) for m in masks]
    finally:
        w.stop()


def test_a_file_written_in_place_is_seen(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    root.mkdir()
    target = root / "a.yaml"
    target.write_text("one")
    poked = threading.Event()
    w = SpecWatcher(root, "inotify", poked.set)
    w.start()
    try:
        target.read_text()
        assert not poked.wait(0.5), "a read is not a change"
        with open(target, "r+") as fh:  # as an editor saving in place does
            fh.write("two")
        assert poked.wait(10)
        poked.clear()
        target.chmod(0o600)
        assert poked.wait(10), "a mode change decides whether the file is trusted"
    finally:
        w.stop()
