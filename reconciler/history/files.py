"""Files of the run history, opened relative to folder descriptors: no path component is
ever followed through a symlink (O_NOFOLLOW at each step), folders are 0700, files 0600
and replaced by rename of a temp file, never written in place."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from reconciler.boundedread import read_at_most

RUNS_DIR = "runs"
INDEX_FILE = "index.json"
MAX_FILE_BYTES = 64 * 1024 * 1024  # as every state file
TASK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class HistoryFileError(Exception):
    """A history file or folder that cannot be used: the message names it and says why."""


def open_dir(name: str | Path, dir_fd: int | None = None, create: bool = False) -> int | None:
    """A folder's descriptor (never through a symlink); None when it does not exist."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=dir_fd)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise HistoryFileError(f"{name} is not a folder (a symlink or a file)") from None
        raise
    if create:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != 0o700:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o700)
    return fd


def read_file(dir_fd: int, name: str, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """A regular file's bytes (None: absent); a symlink, FIFO, device or oversized file
    raises HistoryFileError. Non-blocking open: a FIFO swapped in cannot hang a reader."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise HistoryFileError(f"{name} is not a regular file") from None
        raise HistoryFileError(f"{name} cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HistoryFileError(f"{name} is not a regular file")
        if st.st_size > limit:
            raise HistoryFileError(f"{name} is {st.st_size} bytes, more than {limit}")
        return read_at_most(fd, limit)
    except OSError as exc:
        raise HistoryFileError(f"{name} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def write_file(dir_fd: int, name: str, data: bytes) -> None:
    """Replace `name` by rename of a new 0600 temp file (no fsync: history is atomic
    against a crash, not durable across power loss). OSError (a full disk) propagates;
    no temp file is left behind."""
    tmp = f".{name}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def remove_file(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def remove_tree(dir_fd: int, name: str) -> None:
    """A task's history folder and the files in it (never following a symlink)."""
    fd = open_dir(name, dir_fd)
    if fd is None:
        return
    try:
        for entry in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=dir_fd)


def list_dir(dir_fd: int) -> list[str]:
    return os.listdir(dir_fd)
