"""Safe reads of state files: regular files only, never through a symlink, never blocking
on a FIFO or device, never past a size bound. What is not safe raises StateFileError
naming the file; a regular file that is not JSON raises DamagedStateFile."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from reconciler.boundedread import read_at_most

# No state file is read past this: the biggest (applied set, runs of a large fleet) stay
# far below it, and a file grown beyond it is not one the controller wrote.
MAX_STATE_FILE_BYTES = 64 * 1024 * 1024


class StateError(Exception):
    """The state directory cannot be used; the message says why, for an operator."""


class StateFileError(StateError):
    """A state file that is not safe to read: not a regular file, a symlink, too big, or
    unreadable. The message names the file and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"state file {path} {problem}")
        self.path = path


class DamagedStateFile(StateFileError):
    """A state file that is a regular file but not JSON (cut short, overwritten)."""


def file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def not_regular(path: Path, mode: int) -> StateFileError:
    if stat.S_ISLNK(mode):
        return StateFileError(
            path, "is a symbolic link; state files are never read through one: remove it"
        )
    return StateFileError(path, f"is {file_kind(mode)}, not a regular file; remove it")


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int | None:
    """Open a state file that must be a regular file, never blocking on it: no symlink
    followed, a FIFO or device never opened for real (checked before the open, and the
    open is non-blocking in case it was swapped in between). None when it does not exist."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, st.st_mode)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise not_regular(path, stat.S_IFLNK) from None
        if exc.errno == errno.ENXIO:
            raise not_regular(path, stat.S_IFSOCK) from None
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_regular(path, st.st_mode)
    return fd


def read_regular(path: Path, limit: int = MAX_STATE_FILE_BYTES) -> bytes | None:
    """A state file's bytes; None when it does not exist. Anything that is not a regular
    file of at most `limit` bytes raises StateFileError, naming the file."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise StateFileError(
                path, f"is {size} bytes, more than the {limit} a state file may have; "
                "move it away"
            )
        data = read_at_most(fd, limit)
    except OSError as exc:
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise StateFileError(path, f"is more than the {limit} bytes a state file may have")
    return data


def parse_json(path: Path, data: bytes) -> Any:
    """A state file's bytes as JSON; DamagedStateFile when they do not parse."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DamagedStateFile(path, f"is damaged (not JSON: {str(exc)[:100]})") from None


def check_regular(path: Path) -> None:
    """A file the controller will read is a regular file within the bound, or absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, st.st_mode)
    if st.st_size > MAX_STATE_FILE_BYTES:
        raise StateFileError(
            path, f"is {st.st_size} bytes, more than the {MAX_STATE_FILE_BYTES} a "
            "state file may have; move it away"
        )
