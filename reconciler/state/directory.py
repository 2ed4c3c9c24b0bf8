"""The state directory itself: created private, files written atomically, read safely.

Files are JSON, 0600, in a 0700 directory, replaced by rename of a fsynced temp file and
never opened through a symlink. What each file holds is its format module's business
(ledger, runs, applied, status, history, lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.state import lock
from reconciler.state.layout import CONTROLLER_FILE, HISTORY_DIR, READ_AT_START
from reconciler.state.lock import ControllerRef
from reconciler.state.safe import (
    MAX_STATE_FILE_BYTES,
    DamagedStateFile,
    StateError,
    StateFileError,
    check_regular,
    file_kind,
    parse_json,
    read_regular,
)


@dataclass(frozen=True)
class JsonPieces:
    """A big file's JSON text made piece by piece as it is written (`write_json`): no
    copy of the whole in memory, and other threads get the GIL between pieces."""

    pieces: Callable[[], Iterator[bytes]]


def default_state_dir(environ: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if environ is None else environ
    if env.get("RECONCILER_STATE_DIR"):
        return Path(env["RECONCILER_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/reconciler")
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "reconciler"


class StateDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._spare: dict[str, int] = {}  # name -> fd of its next temp file (prepare)

    # --- setup ------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the directory 0700 (whatever the umask) and check nobody else can write it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.path}: {exc.strerror}") from None
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError as exc:
            raise StateError(f"cannot read state directory {self.path}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(self.path)
        if not stat.S_ISDIR(st.st_mode):
            raise StateError(f"state directory {self.path} is not a directory")
        if st.st_uid != os.geteuid():
            raise StateError(
                f"state directory {self.path} is owned by uid {st.st_uid}, not by this user "
                f"(uid {os.geteuid()}); refusing to use it"
            )
        if st.st_mode & 0o022:
            raise StateError(
                f"state directory {self.path} is group- or world-writable "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 700 {self.path}"
            )
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.path, 0o700)

    def acquire(self) -> None:
        """Hold the controller lock for the life of this process, then check that every
        file it is about to read is a regular file (StateFileError, lock let go, if not)."""
        self._lock_fd = lock.take_lock(self.path, self.check_files)

    def release(self) -> None:
        for name, fd in list(self._spare.items()):
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self._temp_path(name))
        self._spare.clear()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path / CONTROLLER_FILE)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- writing ----------------------------------------------------------------------

    def write_json(self, name: str, obj: Any, *, sync: bool = True, sort: bool = True) -> None:
        """`sort`: keys in order (files people read). The ledger is not sorted: its 100,000
        task names come in no order, and sorting them cost 0.25 s of a 0.35 s write."""
        if isinstance(obj, JsonPieces):
            self.write_bytes(name, obj.pieces(), sync=sync)
            return
        data = json.dumps(obj, separators=(",", ":"), sort_keys=sort).encode()
        self.write_bytes(name, data, sync=sync)

    def _temp_path(self, name: str) -> Path:
        target = self.path / name
        return target.parent / f".{target.name}.{os.getpid()}.tmp"

    def _create_temp(self, name: str) -> int:
        tmp = self._temp_path(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:  # left by a write that failed
            os.unlink(tmp)
            fd = os.open(tmp, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
        except OSError:
            os.close(fd)
            raise
        return fd

    def prepare(self, name: str) -> None:
        """Create the temp file of the next write of `name` now, off a hurried path: on
        some file systems each metadata operation costs a millisecond."""
        if name not in self._spare:
            with contextlib.suppress(OSError):
                self._spare[name] = self._create_temp(name)

    def write_bytes(self, name: str, data: bytes | Iterable[bytes], *, sync: bool = True) -> None:
        """Replace `name` with `data` (or the pieces it yields, written as they come)."""
        target = self.path / name
        tmp = self._temp_path(name)
        fd = self._spare.pop(name, None)
        if fd is None:
            fd = self._create_temp(name)
        try:
            try:
                for piece in (data,) if isinstance(data, bytes) else data:
                    view = memoryview(piece)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, target)  # replaces a symlink itself, never follows it
        except BaseException:  # OSError, or a piece that could not be made
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk keeps no half-written temp file
            raise
        if sync:
            dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def remove_stale_temps(self) -> None:
        """Temp files of writes a crashed controller left (the lock is ours: none is live)."""
        for folder in (self.path, self.path / HISTORY_DIR):
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for entry in names:
                if entry.startswith(".") and entry.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(folder / entry)

    def ensure_subdir(self, name: str) -> None:
        """A private folder of the state directory, never a symlink."""
        path = self.path / name
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise StateError(f"{path} is not a directory")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path / name)

    # --- reading (safe.py's rules) ----------------------------------------------------

    def read_bytes(self, name: str, limit: int = MAX_STATE_FILE_BYTES) -> bytes | None:
        """A state file's bytes; None when it does not exist. Anything that is not a
        regular file of at most `limit` bytes raises StateFileError, naming the file."""
        return read_regular(self.path / name, limit)

    def load_json(self, name: str) -> Any | None:
        """A state file's JSON; None when it does not exist. Raises DamagedStateFile when
        it does not parse, StateFileError when it cannot be read safely."""
        data = self.read_bytes(name)
        if data is None:
            return None
        return parse_json(self.path / name, data)

    def read_json(self, name: str) -> Any | None:
        """As `load_json`, but a damaged file is as good as absent (None)."""
        try:
            return self.load_json(name)
        except DamagedStateFile:
            return None

    def check_files(self) -> None:
        """Every file the controller reads at start is a regular file (or absent): a
        FIFO, device or symlink where a state file belongs makes it refuse to start."""
        names = list(READ_AT_START)
        folder = self.path / HISTORY_DIR
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise StateFileError(folder, f"cannot be read: {exc.strerror}") from None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                raise StateFileError(
                    folder, f"is {file_kind(st.st_mode)}, not a directory; remove it"
                )
            try:
                entries = sorted(os.listdir(folder))
            except OSError as exc:
                raise StateFileError(folder, f"cannot be read: {exc.strerror}") from None
            names += [f"{HISTORY_DIR}/{e}" for e in entries if not e.startswith(".")]
        for name in names:
            check_regular(self.path / name)

    # --- the running controller (lock.py) -----------------------------------------------

    def untrusted(self) -> str | None:
        """Why this directory could be another user's forgery (lock.untrusted); None
        when it is trusted."""
        return lock.untrusted(self.path)

    def lock_holders(self) -> set[int]:
        return lock.lock_holders(self.path)

    def lock_held(self) -> bool:
        """True when some process holds the controller lock (another process asking)."""
        return bool(self.lock_holders())

    def find_controller(self) -> ControllerRef | None:
        """The live controller of this state dir, verified (lock.find_controller)."""
        return lock.find_controller(self.path)
