"""As cron and sshd do: as root, refuse task files that others could have written."""

from __future__ import annotations

import os
import stat

_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


def running_as_root() -> bool:
    return os.geteuid() == 0


def _writable(mode: int) -> bool:
    return bool(mode & _WRITABLE)


def _folder_mode(folder: str, cache: dict[str, int]) -> int:
    mode = cache.get(folder)
    if mode is None:
        mode = os.stat(folder).st_mode
        cache[folder] = mode
    return mode


def unsafe_reason(
    path: str, file_mode: int, root: str | None, cache: dict[str, int] | None = None
) -> str | None:
    """Why this file must not be trusted, or None.

    Checked: the file (its target, for a symlink); every folder from the file's up to the
    spec directory `root` (the file's own folder only when root is None), each through
    any symlink; for a symlinked file, the folder its target really lies in.
    """
    cache = {} if cache is None else cache
    if _writable(file_mode):
        return "refused: the file is group- or world-writable (chmod go-w it)"
    try:
        folders = _folders(path, root)
        for folder in folders:
            if _writable(_folder_mode(folder, cache)):
                return f"refused: folder {folder} is group- or world-writable (chmod go-w it)"
        real = os.path.realpath(path)
        if real != os.path.abspath(path):
            target_folder = os.path.dirname(real)
            if _writable(_folder_mode(target_folder, cache)):
                return (
                    f"refused: the symlink's target folder {target_folder} is group- or "
                    "world-writable (chmod go-w it)"
                )
    except OSError as exc:
        return f"refused: cannot check the folder permissions ({exc.strerror or exc})"
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
