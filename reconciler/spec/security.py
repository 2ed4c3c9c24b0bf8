"""As cron and sshd do: as root, refuse task files that others could have written."""

from __future__ import annotations

import os
import stat

_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


def running_as_root() -> bool:
    return os.geteuid() == 0


def _writable(mode: int) -> bool:
    return bool(mode & _WRITABLE)


def unsafe_reason(
    path: str, file_mode: int, root: str | None, cache: dict[str, str | None] | None = None
) -> str | None:
    """Why this file must not be trusted, or None.

    Checked: the file (its target, for a symlink); every folder from the file's up to the
    spec directory `root` (the file's own folder only when root is None), each through
    any symlink; for a symlinked file, the folder its target really lies in. `cache`
    keeps the verdict per folder across the files of one load.
    """
    cache = {} if cache is None else cache
    if _writable(file_mode):
        return "refused: the file is group- or world-writable (chmod go-w it)"
    try:
        folder = os.path.dirname(path) or "."
        key = f"{root}\0{folder}"
        if key not in cache:
            cache[key] = _folders_reason(_folders(path, root))
        if cache[key]:
            return cache[key]
        if os.path.islink(path):
            target_folder = os.path.dirname(os.path.realpath(path))
            if _writable(os.stat(target_folder).st_mode):
                return (
                    f"refused: the symlink's target folder {target_folder} is group- or "
                    "world-writable (chmod go-w it)"
                )
    except OSError as exc:
        return f"refused: cannot check the folder permissions ({exc.strerror or exc})"
    return None


def _folders_reason(folders: list[str]) -> str | None:
    for folder in folders:
        if _writable(os.stat(folder).st_mode):
            return f"refused: folder {folder} is group- or world-writable (chmod go-w it)"
    return None


def _folders(path: str, root: str | None) -> list[str]:
    folder = os.path.normpath(os.path.dirname(path) or ".")
    if root is None:
        return [folder]
    stop = os.path.normpath(root)
    if os.path.relpath(folder, stop).startswith(".."):
        return [folder]  # not below the spec directory: its own folder only
    out = [folder]
    current = folder
    while current != stop:
        parent = os.path.dirname(current) or "."
        if parent == current:
            break
        current = parent
        out.append(current)
    return out
