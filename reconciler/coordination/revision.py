"""Which revision of the spec directory a controller applied, for drift in `fleet hosts`.

The git commit when the directory is (inside) a git checkout, read from .git/HEAD and the
refs without running git; else a hash of the documents in force. Called off the loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MAX_READ = 1 << 20


class _Fingerprinted(Protocol):
    def spec_fingerprint(self) -> str: ...


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(MAX_READ)
    except OSError:
        return None


def _git_dir(start: Path) -> Path | None:
    """The .git directory of the checkout holding `start` (a worktree's .git file too)."""
    here = start.absolute()
    for folder in (here, *here.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            text = _read(dot) or ""
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:"):].strip())
                return target if target.is_absolute() else (folder / target)
    return None


def git_commit(spec_dir: Path) -> str | None:
    """HEAD's commit of the checkout holding `spec_dir`, or None."""
    git = _git_dir(spec_dir)
    if git is None:
        return None
    head = (_read(git / "HEAD") or "").strip()
    if _SHA.match(head):
        return head  # a detached HEAD
    if not head.startswith("ref:"):
        return None
    ref = head[4:].strip()
    common = git
    commondir = _read(git / "commondir")
    if commondir:  # a linked worktree keeps its refs in the main .git
        common = (git / commondir.strip()).resolve()
    for base in (git, common):
        found = (_read(base / ref) or "").strip()
        if _SHA.match(found):
            return found
    for line in (_read(common / "packed-refs") or "").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1].strip() == ref and _SHA.match(parts[0]):
            return parts[0]
    return None


def documents_hash(tasks: Mapping[str, _Fingerprinted]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tasks):
        digest.update(f"{name}={tasks[name].spec_fingerprint()}\n".encode())
    return "sha256:" + digest.hexdigest()[:16]


def spec_revision(spec_dir: Path, tasks: Mapping[str, _Fingerprinted]) -> str:
    commit = git_commit(spec_dir)
    return f"git:{commit[:12]}" if commit else documents_hash(tasks)
