"""The state directory: lock, pid file, applied task set, due ledger, runs, history.

Everything a restarted controller (or `status`, `diff`, `reload`, `stop`, `run`) needs to
know about the one before it. Files are JSON, 0600, in a 0700 directory, replaced by
rename of a fsynced temp file and never opened through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Re-exported: the commands that verify a controller's pid read start times from here.
from reconciler.supervisor.procinfo import process_start_ticks as process_start_ticks

LOCK_FILE = "controller.lock"
CONTROLLER_FILE = "controller.json"
LEDGER_FILE = "ledger.json"
LEDGER_DELTA = "ledger-delta.json"
RUNS_FILE = "runs.json"
HISTORY_FILE = "history.json"  # before 0.2: one file for all tasks; read, then removed
HISTORY_DIR = "history"  # one file per task: history/<task>.json, its last runs
APPLIED_FILE = "applied.json"
STATUS_FILE = "status.json"
CONTROL_SOCKET = "control.sock"

HISTORY_PER_TASK = 20


def history_file(task: str) -> str:
    """The state file of one task's last runs (task names are safe file names)."""
    return f"{HISTORY_DIR}/{task}.json"


def task_of_history_file(name: str) -> str | None:
    prefix, suffix = f"{HISTORY_DIR}/", ".json"
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


class StateError(Exception):
    """The state directory cannot be used; the message says why, for an operator."""


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


@dataclass(frozen=True)
class ControllerRef:
    pid: int
    info: dict[str, Any]


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
        """Hold the controller lock for the life of this process."""
        fd = os.open(
            self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                other = self.read_json(CONTROLLER_FILE) or {}
                pid = other.get("pid", "?")
                raise StateError(
                    f"another controller (pid {pid}) is running on state directory {self.path}"
                ) from None
            raise StateError(f"cannot lock {self.path / LOCK_FILE}: {exc.strerror}") from None
        self._lock_fd = fd

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

    # --- files ------------------------------------------------------------------------

    def write_json(self, name: str, obj: Any, *, sync: bool = True) -> None:
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
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

    def write_bytes(self, name: str, data: bytes, *, sync: bool = True) -> None:
        target = self.path / name
        tmp = self._temp_path(name)
        fd = self._spare.pop(name, None)
        if fd is None:
            fd = self._create_temp(name)
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, target)  # replaces a symlink itself, never follows it
        except OSError:
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

    def read_json(self, name: str) -> Any | None:
        try:
            fd = os.open(self.path / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                return json.loads(fh.read())
        except (OSError, ValueError):
            return None

    # --- the running controller -----------------------------------------------------------

    def lock_held(self) -> bool:
        """True when some process holds the controller lock (another process asking)."""
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def find_controller(self) -> ControllerRef | None:
        """The live controller of this state dir, verified: lock held and start time matching.

        A pid file left by a dead controller, or naming a pid that was reused since, gives
        None: such a pid is never signalled.
        """
        if not self.lock_held():
            return None
        info = self.read_json(CONTROLLER_FILE)
        if not isinstance(info, dict):
            return None
        pid = info.get("pid")
        ticks = info.get("start_ticks")
        if not isinstance(pid, int) or pid <= 0 or not isinstance(ticks, int):
            return None
        if process_start_ticks(pid) != ticks:
            return None
        return ControllerRef(pid=pid, info=info)
