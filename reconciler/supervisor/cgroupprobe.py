"""Where this host's cgroups are, and which limits a controller may enforce here.

Reads /proc/self/mountinfo and /proc/self/cgroup once: per controller (memory, cpu,
pids) the v2 hierarchy when it offers the controller to our own cgroup, else the v1
hierarchy that carries it, and whether we may write there. See cgroups.py for how runs
use them.
"""

from __future__ import annotations

import functools
import os
import re
import resource
from dataclasses import dataclass, field

from reconciler.supervisor.model import Limits

CONTROLLERS = ("memory", "cpu", "pids")
# Which limit needs which controller, and its name in a task's `resources`.
FIELD_OF = {"memory": "memoryMax", "cpu": "cpuMax", "pids": "processesMax"}


class CgroupError(Exception):
    """A run's cgroup could not be made or joined. The message is meant for users."""


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    mount: str  # where it is mounted
    own: str  # our own cgroup's folder in it


@dataclass(frozen=True)
class Support:
    """What this process can do with cgroups: for each controller, where, or why not."""

    where: dict[str, Hierarchy] = field(default_factory=dict)
    why_not: dict[str, str] = field(default_factory=dict)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str], bool]]:
    """(root, mount point, fstype, super options, read-write) of every cgroup mount."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        rw = "rw" in fields[5].split(",")
        opts = set(tail[2].split(","))
        out.append((root, point, tail[0], opts, rw and "ro" not in opts))
    return out


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def own_paths(proc_cgroup: str) -> dict[str, str]:
    """Controller (or '' for v2) -> our cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, names, path = parts
        if not names:
            out[""] = path
        for name in names.split(","):
            if name:
                out[name] = path
    return out


def path_inside(mount: str, root: str, path: str) -> str | None:
    """The folder of cgroup `path` under a mount of `root`; None if outside that mount."""
    root = root.rstrip("/") or "/"
    if root != "/" and path != root and not path.startswith(root + "/"):
        return None
    rel = path[len(root) :] if root != "/" else path
    return os.path.join(mount, rel.lstrip("/")).rstrip("/")


def read_text(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


def probe(mountinfo: str, proc_cgroup: str, euid: int) -> Support:
    """Which controllers we may use, from the texts of /proc/self/{mountinfo,cgroup}."""
    support = Support()
    own = own_paths(proc_cgroup)
    mounts = _mounts(mountinfo)
    v2_avail: set[str] = set()
    v2: Hierarchy | None = None
    v2_why = ""
    for root, point, fstype, _opts, rw in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        folder = path_inside(point, root, own[""])
        if folder is None or not os.path.isdir(folder):
            continue
        try:
            v2_avail = set(read_text(os.path.join(folder, "cgroup.controllers")).split())
        except OSError:
            continue
        if not rw or not os.access(folder, os.W_OK):
            v2_why = f"the cgroup v2 folder {folder} is not writable"
        else:
            v2 = Hierarchy(2, point, folder)
        break
    for name in CONTROLLERS:
        if name in v2_avail and v2 is not None:
            support.where[name] = v2
            continue
        why = v2_why if name in v2_avail else ""
        for root, point, fstype, opts, rw in mounts:
            if fstype != "cgroup" or name not in opts or name not in own:
                continue
            folder = path_inside(point, root, own[name])
            if folder is None or not os.path.isdir(folder):
                why = f"our {name} cgroup is not visible under {point}"
            elif not rw or not os.access(folder, os.W_OK):
                why = f"the {name} cgroup {folder} is not writable"
            else:
                support.where[name] = Hierarchy(1, point, folder)
            break
        if name not in support.where:
            if not why:
                why = f"no {name} cgroup controller is mounted"
            if euid != 0 and "writable" in why:
                why += " (a non-root controller needs a delegated cgroup)"
            support.why_not[name] = why
    return support


@functools.lru_cache(maxsize=1)
def support() -> Support:
    """What this host and process allow; looked at once (cheap, but not per run)."""
    try:
        mountinfo = read_text("/proc/self/mountinfo")
        proc_cgroup = read_text("/proc/self/cgroup")
    except OSError as exc:
        reason = f"cannot read /proc/self: {exc.strerror}"
        return Support(why_not={name: reason for name in CONTROLLERS})
    return probe(mountinfo, proc_cgroup, os.geteuid())


def needed(limits: Limits) -> list[str]:
    out = []
    if limits.memory_max is not None:
        out.append("memory")
    if limits.cpu_max is not None:
        out.append("cpu")
    if limits.processes_max is not None:
        out.append("pids")
    return out


def unenforceable(limits: Limits) -> dict[str, str]:
    """Field name (memoryMax, ...) -> why this controller cannot enforce it; {} if it can."""
    sup = support()
    out = {
        FIELD_OF[name]: f"cannot be enforced here: {sup.why_not[name]}"
        for name in needed(limits)
        if name in sup.why_not
    }
    nofile = limits.open_files_max
    if nofile is not None and os.geteuid() != 0:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and nofile > hard:
            out["openFilesMax"] = (
                f"cannot be enforced here: above this controller's hard limit {hard} "
                "(raising it needs a root controller)"
            )
    return out
