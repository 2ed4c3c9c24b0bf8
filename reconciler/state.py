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

# No state file is read past this: the biggest (applied set, runs of a large fleet) stay
# far below it, and a file grown beyond it is not one the controller wrote.
MAX_STATE_FILE_BYTES = 64 * 1024 * 1024


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


class StateFileError(StateError):
    """A state file that is not safe to read: not a regular file, a symlink, too big, or
    unreadable. The message names the file and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"state file {path} {problem}")
        self.path = path


class DamagedStateFile(StateFileError):
    """A state file that is a regular file but not JSON (cut short, overwritten)."""


def _file_kind(mode: int) -> str:
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


def _not_regular(path: Path, mode: int) -> StateFileError:
    if stat.S_ISLNK(mode):
        return StateFileError(
            path, "is a symbolic link; state files are never read through one: remove it"
        )
    return StateFileError(path, f"is {_file_kind(mode)}, not a regular file; remove it")


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
        raise _not_regular(path, st.st_mode)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_regular(path, stat.S_IFLNK) from None
        if exc.errno == errno.ENXIO:
            raise _not_regular(path, stat.S_IFSOCK) from None
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st.st_mode)
    return fd


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
        """Hold the controller lock for the life of this process, then check that every
        file it is about to read is a regular file (StateFileError, lock let go, if not)."""
        path = self.path / LOCK_FILE
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
                raise _not_regular(path, os.lstat(path).st_mode)
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                try:
                    other = self.read_json(CONTROLLER_FILE)
                except StateError:
                    other = None
                pid = other.get("pid", "?") if isinstance(other, dict) else "?"
                raise StateError(
                    f"another controller (pid {pid}) is running on state directory {self.path}"
                ) from None
            raise StateError(f"cannot lock {path}: {exc.strerror}") from None
        try:
            self.check_files()
        except StateError:
            os.close(fd)
            raise
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

    def read_bytes(self, name: str, limit: int = MAX_STATE_FILE_BYTES) -> bytes | None:
        """A state file's bytes; None when it does not exist. Anything that is not a
        regular file of at most `limit` bytes raises StateFileError, naming the file."""
        path = self.path / name
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
            chunks: list[bytes] = []
            left = limit + 1  # a file that grows while read is still bounded
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > limit:
            raise StateFileError(path, f"is more than the {limit} bytes a state file may have")
        return data

    def load_json(self, name: str) -> Any | None:
        """A state file's JSON; None when it does not exist. Raises DamagedStateFile when
        it does not parse, StateFileError when it cannot be read safely."""
        data = self.read_bytes(name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DamagedStateFile(
                self.path / name, f"is damaged (not JSON: {str(exc)[:100]})"
            ) from None

    def read_json(self, name: str) -> Any | None:
        """As `load_json`, but a damaged file is as good as absent (None)."""
        try:
            return self.load_json(name)
        except DamagedStateFile:
            return None

    def check_files(self) -> None:
        """Every file the controller reads at start is a regular file (or absent): a
        FIFO, device or symlink where a state file belongs makes it refuse to start."""
        names = [LOCK_FILE, CONTROLLER_FILE, LEDGER_FILE, LEDGER_DELTA, RUNS_FILE,
                 HISTORY_FILE, APPLIED_FILE, STATUS_FILE]
        try:
            st = os.lstat(self.path / HISTORY_DIR)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise StateFileError(self.path / HISTORY_DIR, f"cannot be read: {exc.strerror}") from None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                raise StateFileError(
                    self.path / HISTORY_DIR, f"is {_file_kind(st.st_mode)}, not a directory; "
                    "remove it"
                )
            try:
                entries = sorted(os.listdir(self.path / HISTORY_DIR))
            except OSError as exc:
                raise StateFileError(
                    self.path / HISTORY_DIR, f"cannot be read: {exc.strerror}"
                ) from None
            names += [f"{HISTORY_DIR}/{e}" for e in entries if not e.startswith(".")]
        for name in names:
            path = self.path / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StateFileError(path, f"cannot be read: {exc.strerror}") from None
            if not stat.S_ISREG(st.st_mode):
                raise _not_regular(path, st.st_mode)
            if st.st_size > MAX_STATE_FILE_BYTES:
                raise StateFileError(
                    path, f"is {st.st_size} bytes, more than the {MAX_STATE_FILE_BYTES} a "
                    "state file may have; move it away"
                )

    # --- the running controller -----------------------------------------------------------

    def untrusted(self) -> str | None:
        """Why this state directory could be another user's forgery, if it could: it must
        be owned by this user or root and writable by nobody else, and no folder on the
        way to it (as named, and once symlinks are resolved) may let another user rename
        it: each is owned by this user or root and not group- or world-writable unless
        sticky, as /tmp. None when it is trusted (or does not exist: no controller)."""
        euid = os.geteuid()
        owners = {0, euid}
        path = Path(os.path.abspath(self.path))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot check state directory {self.path}: {exc.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            return f"state directory {self.path} is not a directory"
        if st.st_uid not in owners:
            return (
                f"state directory {self.path} is owned by uid {st.st_uid}, not by this user "
                f"(uid {euid}) or root; refusing to trust it"
            )
        if st.st_mode & 0o022:
            return (
                f"state directory {self.path} is group- or world-writable "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to trust it"
            )
        real = Path(os.path.realpath(path))
        for folder in dict.fromkeys([*path.parents, *real.parents]):
            try:
                fst = os.stat(folder)
            except OSError as exc:
                return f"cannot check {folder}, a folder above state directory {self.path}: {exc.strerror}"
            open_to_others = fst.st_mode & 0o022 and not fst.st_mode & stat.S_ISVTX
            if fst.st_uid not in owners or open_to_others:
                return (
                    f"{folder} lets other users rename state directory {self.path} "
                    f"(owner uid {fst.st_uid}, mode {stat.S_IMODE(fst.st_mode):04o}); "
                    "refusing to trust it"
                )
        return None

    def lock_holders(self) -> set[int]:
        """The pids holding the controller lock (empty: no controller runs). Read from
        /proc/locks: asking by taking the lock, even shared, could make a controller that
        starts at that moment fail to get it."""
        fd = open_regular(self.path / LOCK_FILE)
        if fd is None:
            return set()
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return flock_holders(st.st_dev, st.st_ino)

    def lock_held(self) -> bool:
        """True when some process holds the controller lock (another process asking)."""
        return bool(self.lock_holders())

    def find_controller(self) -> ControllerRef | None:
        """The live controller of this state dir, verified: the recorded pid holds the
        lock and its start time matches.

        A pid file left by a dead controller, naming a pid that was reused since, or
        naming a process that does not hold the lock gives None: such a pid is never
        signalled. A state file that is not a regular file raises StateFileError.
        """
        holders = self.lock_holders()
        if not holders:
            return None
        info = self.read_json(CONTROLLER_FILE)
        if not isinstance(info, dict):
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
