"""Which files are task files: recursive, sorted, symlinks followed, cycles cut.

Ignored below a given directory: names starting with '.' (files and folders: editor
swap files, Kubernetes `..data` and `..2026_...` folders) and editor leftovers ending in
'~', '.swp' or '.tmp'. A ConfigMap's top-level `name.yaml -> ..data/name.yaml` links are
ordinary names and are read through the link. Every real directory and file is visited
once, so symlink cycles end and a file linked twice is read once.

A folder that cannot be listed (EACCES, EMFILE, EIO), or an entry that cannot be looked
at for another reason than "not there", is reported as an error and also named in
`Discovery.unreadable`: what lies under it is unknown, not gone.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.spec.errors import SpecError

SUFFIXES = (".yaml", ".yml", ".json")
_LEFTOVERS = ("~", ".swp", ".tmp")


def ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(_LEFTOVERS)


def _display(path: str) -> str:
    return os.path.normpath(path) if path not in ("", ".") else path


def discover(paths: Sequence[str | Path]) -> tuple[list[Path], list[SpecError]]:
    """Task files under the given directories (and given files as they are), in order."""
    found, errors = discover_roots(paths)
    return [path for path, _ in found], errors


@dataclass
class Discovery:
    """Each file found with the directory it was found in (None: given itself), the
    errors, and the paths (folders, or entries that might be folders) that could not be
    read: files under them are unknown, not gone."""

    found: list[tuple[Path, str | None]] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def under_unreadable(self, path: str) -> bool:
        """Whether `path` (a display path as in `found`) lies at or under an unreadable one."""
        for folder in self.unreadable:
            if folder in (".", "") and not os.path.isabs(path):
                return True
            if path == folder or path.startswith(folder.rstrip(os.sep) + os.sep):
                return True
        return False


def discover_roots(
    paths: Sequence[str | Path],
) -> tuple[list[tuple[Path, str | None]], list[SpecError]]:
    """As discover(), each file with the directory it was found in (None: given itself)."""
    found = discover_tree(paths)
    return found.found, found.errors


def discover_tree(paths: Sequence[str | Path]) -> Discovery:
    """As discover_roots(), and which paths could not be read."""
    out = Discovery()
    found, errors = out.found, out.errors
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    for given in paths:
        text = str(given)
        try:
            st = os.stat(text)
        except FileNotFoundError:
            kind = "broken symlink" if os.path.islink(text) else "no such file or directory"
            errors.append(SpecError(text, None, None, None, kind))
            continue
        except OSError as exc:
            errors.append(SpecError(text, None, None, None, _os_message(exc)))
            out.unreadable.append(_display(text))
            continue
        if stat.S_ISDIR(st.st_mode):
            files: list[str] = []
            _walk(text, st, files, out, seen_files, seen_dirs)
            found.extend((Path(f), text) for f in files)
        else:
            key = (st.st_dev, st.st_ino)
            if key not in seen_files:
                seen_files.add(key)
                found.append((Path(_display(text)), None))
    return out


def _walk(
    top: str,
    top_stat: os.stat_result,
    files: list[str],
    out: Discovery,
    seen_files: set[tuple[int, int]],
    seen_dirs: set[tuple[int, int]],
) -> None:
    # Iterative depth-first walk in sorted order; a stack instead of recursion because a
    # deep folder tree must not hit the recursion limit.
    errors = out.errors
    root_key = (top_stat.st_dev, top_stat.st_ino)
    if root_key in seen_dirs:
        return
    seen_dirs.add(root_key)
    stack: list[str] = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                names = sorted(entry.name for entry in it)
        except OSError as exc:
            errors.append(SpecError(_display(folder), None, None, None, _os_message(exc)))
            out.unreadable.append(_display(folder))
            continue
        subdirs: list[str] = []
        for name in names:
            if ignored(name):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                if name.endswith(SUFFIXES):
                    errors.append(SpecError(_display(path), None, None, None, "broken symlink"))
                continue
            except OSError as exc:
                # EACCES (a folder listed but not entered), EIO, ELOOP: maybe a folder,
                # maybe a file; either way not known to be gone.
                if name.endswith(SUFFIXES):
                    errors.append(SpecError(_display(path), None, None, None, _os_message(exc)))
                out.unreadable.append(_display(path))
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if key not in seen_dirs:
                    seen_dirs.add(key)
                    subdirs.append(path)
            elif name.endswith(SUFFIXES) and key not in seen_files:
                # Not only regular files: reading a FIFO or device gives a clean error.
                seen_files.add(key)
                files.append(_display(path))
        stack.extend(reversed(subdirs))
    files.sort(key=lambda p: Path(p).parts)


def _os_message(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)
