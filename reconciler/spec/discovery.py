"""Which files are task files: recursive, sorted, symlinks followed, cycles cut.

Ignored below a given directory: names starting with '.' (files and folders: editor
swap files, Kubernetes `..data` and `..2026_...` folders) and editor leftovers ending in
'~', '.swp' or '.tmp'. A ConfigMap's top-level `name.yaml -> ..data/name.yaml` links are
ordinary names and are read through the link. Every real directory and file is visited
once, so symlink cycles end and a file linked twice is read once.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
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


def discover_roots(
    paths: Sequence[str | Path],
) -> tuple[list[tuple[Path, str | None]], list[SpecError]]:
    """As discover(), each file with the directory it was found in (None: given itself)."""
    found: list[tuple[Path, str | None]] = []
    errors: list[SpecError] = []
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
            continue
        if stat.S_ISDIR(st.st_mode):
            files: list[str] = []
            _walk(text, st, files, errors, seen_files, seen_dirs)
            found.extend((Path(f), text) for f in files)
        else:
            key = (st.st_dev, st.st_ino)
            if key not in seen_files:
                seen_files.add(key)
                found.append((Path(_display(text)), None))
    return found, errors


def _walk(
    top: str,
    top_stat: os.stat_result,
    files: list[str],
    errors: list[SpecError],
    seen_files: set[tuple[int, int]],
    seen_dirs: set[tuple[int, int]],
) -> None:
    # Iterative depth-first walk in sorted order; a stack instead of recursion because a
    # deep folder tree must not hit the recursion limit.
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
                if name.endswith(SUFFIXES):
                    errors.append(SpecError(_display(path), None, None, None, _os_message(exc)))
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
