"""A cgroup per run: memory, cpu and pids limits, the run's whole process tree, OOM kills.

Where the cgroups are
---------------------
Each controller (``memory``, ``cpu``, ``pids``) is taken from cgroup v2 when the unified
hierarchy offers it to our own cgroup, else from the v1 hierarchy that carries it (a
hybrid host may mix both). The runs' cgroups live in ``reconciler`` below the controller
process's own cgroup of that hierarchy, one per run, named
``<controller pid>.<its start ticks>.<seq>.<run id>``: the prefix tells a leftover of a
controller that is gone (a crash) from a cgroup of a live one, so that several
controllers on one host never remove each other's.

cgroup v2 forbids processes in a cgroup whose controllers are enabled for its children.
When our own cgroup is not the root and holds processes (systemd ``Delegate=yes``, a
container with its own cgroup namespace), its processes are first moved into a leaf
``<own>/supervisor``, as systemd's documentation on delegation asks.

How a run gets into its cgroup
------------------------------
The cgroup is created and its limits written before the spawn; the child writes ``0`` to
each ``cgroup.procs`` in its last step before exec (spawn.py), before it switches user and
before it can fork: nothing it starts is ever outside. Runs with no limit get no cgroup
and keep the vfork() fast path.

Leftovers of a crashed controller are removed at the next start (``clean_leftovers``):
cgroups still holding processes (runs that outlived the crash) stay, and go once the new
controller has adopted their run and seen it end.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.supervisor.cgroupprobe import (
    CONTROLLERS,
    FIELD_OF,
    CgroupError,
    Hierarchy,
    Support,
    needed,
    own_paths,
    read_text,
    support,
    unenforceable,
)
from reconciler.supervisor.model import Limits
from reconciler.supervisor.procinfo import read_stat

BASE_NAME = "reconciler"
LEAF_NAME = "supervisor"  # v2: where our own processes go when our cgroup gets children
CPU_PERIOD_US = 100_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_seq = itertools.count(1)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def pids_in(folder: str) -> set[int]:
    try:
        return {int(x) for x in read_text(os.path.join(folder, "cgroup.procs")).split()}
    except (OSError, ValueError):
        return set()


@dataclass
class RunCgroup:
    """The cgroup folders of one run (one per hierarchy it uses)."""

    run_id: str
    folders: list[str]
    memory: tuple[int, str] | None = None  # (version, folder) of its memory cgroup

    def procs_files(self) -> tuple[bytes, ...]:
        return tuple(os.fsencode(os.path.join(f, "cgroup.procs")) for f in self.folders)

    def pids(self) -> set[int]:
        """Every process in the run's cgroup (of any hierarchy, they hold the same)."""
        out: set[int] = set()
        for folder in self.folders:
            out |= pids_in(folder)
        return out

    def oom_killed(self) -> bool:
        """Did the kernel kill a process of this run for memory (its memory limit)?"""
        if self.memory is None:
            return False
        version, folder = self.memory
        name = "memory.events" if version == 2 else "memory.oom_control"
        try:
            text = read_text(os.path.join(folder, name))
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def remove(self) -> bool:
        """rmdir each folder; False while processes remain in one (it stays for later)."""
        left = []
        for folder in self.folders:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(folder)
        self.folders = left
        return not left


class Cgroups:
    """Makes, fills and removes the runs' cgroups of one controller process."""

    def __init__(self, sup: Support | None = None) -> None:
        self._support = sup
        self._lock = threading.Lock()
        self._ready: dict[str, str] = {}  # hierarchy own folder -> the base folder
        me = os.getpid()
        st = read_stat(me)
        self._prefix = f"{me}.{st.start_ticks if st else 0}."

    @property
    def support(self) -> Support:
        if self._support is None:
            self._support = support()
        return self._support

    def _base(self, h: Hierarchy, controllers: Iterable[str]) -> str:
        with self._lock:
            base = self._ready.get(h.own)
            if base is not None:
                return base
            base = os.path.join(h.own, BASE_NAME)
            if h.version == 2:
                _delegate_v2(h.own, base, list(controllers))
            else:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(base)
            self._ready[h.own] = base
            return base

    def create(self, run_id: str, limits: Limits) -> RunCgroup | None:
        """The run's cgroup with its limits written, or None if it needs none."""
        names = needed(limits)
        if not names:
            return None
        missing = (
            unenforceable(limits)
            if self._support is None
            else {
                FIELD_OF[n]: f"cannot be enforced here: {self.support.why_not[n]}"
                for n in names
                if n in self.support.why_not
            }
        )
        if missing:
            key, why = next(iter(missing.items()))
            raise CgroupError(f"{key}: {why}")
        by_hierarchy: dict[Hierarchy, list[str]] = {}
        for name in names:
            by_hierarchy.setdefault(self.support.where[name], []).append(name)
        name = f"{self._prefix}{next(_seq)}.{_SAFE.sub('_', run_id)[:120]}"
        rc = RunCgroup(run_id, [])
        try:
            for h, controllers in by_hierarchy.items():
                enable = [n for n in CONTROLLERS if self.support.where.get(n) == h]
                folder = os.path.join(self._base(h, enable), name)
                os.mkdir(folder)
                rc.folders.append(folder)
                for c in controllers:
                    _set_limit(h.version, folder, c, limits)
                    if c == "memory":
                        rc.memory = (h.version, folder)
        except OSError as exc:
            rc.remove()
            what = exc.filename or "cgroup"
            raise CgroupError(f"cannot set up the run's cgroup ({what}): {exc.strerror}") from None
        return rc

    def adopt(self, run_id: str, pid: int) -> RunCgroup | None:
        """The cgroup of a run left by an earlier controller, if it has one of ours."""
        try:
            own = own_paths(read_text(f"/proc/{pid}/cgroup"))
        except OSError:
            return None
        rc = RunCgroup(run_id, [])
        for name, h in self.support.where.items():
            path = own.get("" if h.version == 2 else name)
            if path is None:
                continue
            folder = os.path.join(h.mount, path.lstrip("/"))
            parent = os.path.dirname(folder)
            if os.path.basename(parent) != BASE_NAME or folder in rc.folders:
                continue
            rc.folders.append(folder)
            if name == "memory":
                rc.memory = (h.version, folder)
        return rc if rc.folders else None

    def clean_leftovers(self) -> int:
        """Remove the empty run cgroups of controllers that are gone; the number removed."""
        removed = 0
        seen: set[str] = set()
        for h in self.support.where.values():
            base = os.path.join(h.own, BASE_NAME)
            if base in seen:
                continue
            seen.add(base)
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for entry in names:
                if not _owner_gone(entry) or not os.path.isdir(os.path.join(base, entry)):
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(base, entry))
                    removed += 1
        return removed


def _owner_gone(name: str) -> bool:
    parts = name.split(".", 3)
    if len(parts) < 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return False  # not ours to judge
    st = read_stat(int(parts[0]))
    return st is None or st.start_ticks != int(parts[1])


def _set_limit(version: int, folder: str, controller: str, limits: Limits) -> None:
    if controller == "memory":
        assert limits.memory_max is not None
        if version == 2:
            _write(os.path.join(folder, "memory.max"), str(limits.memory_max))
            swap = os.path.join(folder, "memory.swap.max")
            if os.path.exists(swap):
                _write(swap, "0")
        else:
            _write(os.path.join(folder, "memory.limit_in_bytes"), str(limits.memory_max))
            memsw = os.path.join(folder, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):  # swap counts too: the limit is not escaped by swapping
                _write(memsw, str(limits.memory_max))
    elif controller == "cpu":
        assert limits.cpu_max is not None
        quota = max(1000, round(limits.cpu_max * CPU_PERIOD_US))
        if version == 2:
            _write(os.path.join(folder, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
        else:
            _write(os.path.join(folder, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(os.path.join(folder, "cpu.cfs_quota_us"), str(quota))
    else:
        assert limits.processes_max is not None
        _write(os.path.join(folder, "pids.max"), str(limits.processes_max))


def _delegate_v2(own: str, base: str, controllers: list[str]) -> None:
    """Enable the controllers for `base` below our own v2 cgroup: if our cgroup holds
    processes (and is not the root), they move to a leaf first (no internal processes)."""
    wanted = " ".join(f"+{c}" for c in controllers)
    is_root = not os.path.exists(os.path.join(own, "cgroup.type"))
    try:
        _write(os.path.join(own, "cgroup.subtree_control"), wanted)
    except OSError as exc:
        if exc.errno != errno.EBUSY or is_root:
            raise
        leaf = os.path.join(own, LEAF_NAME)
        with contextlib.suppress(FileExistsError):
            os.mkdir(leaf)
        for pid in sorted(pids_in(own)):
            with contextlib.suppress(ProcessLookupError, OSError):
                _write(os.path.join(leaf, "cgroup.procs"), str(pid))
        _write(os.path.join(own, "cgroup.subtree_control"), wanted)
    with contextlib.suppress(FileExistsError):
        os.mkdir(base)
    _write(os.path.join(base, "cgroup.subtree_control"), wanted)


def kill_all(rc: RunCgroup, sig: signal.Signals) -> None:
    """v2 with cgroup.kill: SIGKILL every process of the run at once."""
    if sig != signal.SIGKILL:
        return
    for folder in rc.folders:
        path = os.path.join(folder, "cgroup.kill")
        if os.path.exists(path):
            with contextlib.suppress(OSError):
                _write(path, "1")
            return
