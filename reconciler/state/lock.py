"""controller.lock and controller.json: which controller holds a state directory.

The controller holds an exclusive flock on controller.lock for its life and records its
pid and start time in controller.json. Another process (`status`, `reload`, `stop`,
`run`) believes a pid only when the directory is trusted (`untrusted`), the pid holds the
lock and its start time matches (`find_controller`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.state.layout import CONTROLLER_FILE, LOCK_FILE
from reconciler.state.safe import (
    DamagedStateFile,
    StateError,
    StateFileError,
    not_regular,
    open_regular,
    parse_json,
    read_regular,
)
from reconciler.supervisor.procinfo import process_start_ticks


@dataclass(frozen=True)
class ControllerRef:
    pid: int
    info: dict[str, Any]


def read_info(folder: Path) -> dict[str, Any] | None:
    """controller.json as recorded (None: absent, damaged or not an object). A file that
    is not a regular file raises StateFileError."""
    path = folder / CONTROLLER_FILE
    data = read_regular(path)
    if data is None:
        return None
    try:
        info = parse_json(path, data)
    except DamagedStateFile:
        return None
    return info if isinstance(info, dict) else None


def take_lock(folder: Path, check_files: Callable[[], None]) -> int:
    """Take the controller lock (its fd, held for the life of this process), then check
    that every file about to be read is a regular file (StateFileError, lock let go, if
    not)."""
    path = folder / LOCK_FILE
    fd = open_regular(path, os.O_RDWR)
    if fd is None:
        try:
            fd = os.open(
                path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                0o600,
            )
        except OSError as exc:
            raise StateError(f"cannot create {path}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in since the check
            os.close(fd)
            raise not_regular(path, os.lstat(path).st_mode)
    os.fchmod(fd, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            try:
                other = read_info(folder)
            except StateError:
                other = None
            pid = other.get("pid", "?") if other is not None else "?"
            raise StateError(
                f"another controller (pid {pid}) is running on state directory {folder}"
            ) from None
        raise StateError(f"cannot lock {path}: {exc.strerror}") from None
    try:
        check_files()
    except StateError:
        os.close(fd)
        raise
    return fd


def untrusted(folder: Path) -> str | None:
    """Why this state directory could be another user's forgery, if it could: it must
    be owned by this user or root and writable by nobody else, and no folder on the
    way to it (as named, and once symlinks are resolved) may let another user rename
    it: each is owned by this user or root and not group- or world-writable unless
    sticky, as /tmp. None when it is trusted (or does not exist: no controller)."""
    euid = os.geteuid()
    owners = {0, euid}
    path = Path(os.path.abspath(folder))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot check state directory {folder}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"state directory {folder} is not a directory"
    if st.st_uid not in owners:
        return (
            f"state directory {folder} is owned by uid {st.st_uid}, not by this user "
            f"(uid {euid}) or root; refusing to trust it"
        )
    if st.st_mode & 0o022:
        return (
            f"state directory {folder} is group- or world-writable "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to trust it"
        )
    real = Path(os.path.realpath(path))
    for parent in dict.fromkeys([*path.parents, *real.parents]):
        try:
            fst = os.stat(parent)
        except OSError as exc:
            return f"cannot check {parent}, a folder above state directory {folder}: {exc.strerror}"
        open_to_others = fst.st_mode & 0o022 and not fst.st_mode & stat.S_ISVTX
        if fst.st_uid not in owners or open_to_others:
            return (
                f"{parent} lets other users rename state directory {folder} "
                f"(owner uid {fst.st_uid}, mode {stat.S_IMODE(fst.st_mode):04o}); "
                "refusing to trust it"
            )
    return None


def lock_holders(folder: Path) -> set[int]:
    """The pids holding the controller lock (empty: no controller runs). Read from
    /proc/locks: asking by taking the lock, even shared, could make a controller that
    starts at that moment fail to get it."""
    fd = open_regular(folder / LOCK_FILE)
    if fd is None:
        return set()
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return flock_holders(st.st_dev, st.st_ino)


def find_controller(folder: Path) -> ControllerRef | None:
    """The live controller of this state dir, verified: the recorded pid holds the
    lock and its start time matches.

    A pid file left by a dead controller, naming a pid that was reused since, or
    naming a process that does not hold the lock gives None: such a pid is never
    signalled. A state file that is not a regular file raises StateFileError.
    """
    holders = lock_holders(folder)
    if not holders:
        return None
    info = read_info(folder)
    if info is None:
        return None
    pid = info.get("pid")
    ticks = info.get("start_ticks")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(ticks, int):
        return None
    if pid not in holders or process_start_ticks(pid) != ticks:
        return None
    return ControllerRef(pid=pid, info=info)


def flock_holders(dev: int, ino: int, locks: str = "/proc/locks") -> set[int]:
    """Pids holding a flock(2) lock on the file (dev, ino), from /proc/locks.

    A line reads `1: FLOCK  ADVISORY  WRITE 1234 fe:00:2146330 0 EOF` (major and minor in
    hex); a waiter's line has `->` after the number and holds nothing. On an overlay file
    system the device /proc/locks shows may differ from stat's: then the inode alone.
    """
    try:
        with open(locks, encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return set()
    exact: set[int] = set()
    same_inode: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            if int(inode) != ino:
                continue
            same_dev = (int(major, 16), int(minor, 16)) == (os.major(dev), os.minor(dev))
        except ValueError:
            continue
        if pid > 0:
            (exact if same_dev else same_inode).add(pid)
    return exact or same_inode


__all__ = ["ControllerRef", "StateFileError", "find_controller", "flock_holders",
           "lock_holders", "read_info", "take_lock", "untrusted"]
