"""As cron and sshd do: as root, refuse task files that others could have written.

A file is trusted when nobody but root (or the controller's own user) could have chosen
what it says. So, for the file and for every folder the path to it passes through, at or
below the spec directory: not group- or world-writable, owned by root or by the
controller's user. A symlink, of the file or of any folder, is followed hop by hop: each
link's target and the folders the target is reached through are held to the same rules,
outside the spec directory too; the folder a link lies in is checked before the link is
read. Folders above the spec directory are not judged (whoever can rename them can rename
the spec directory too), nor are they when a link leads back through them.
"""

from __future__ import annotations

import os
import pwd
import stat

_WRITABLE = stat.S_IWGRP | stat.S_IWOTH
MAX_HOPS = 40  # as the kernel's limit on symbolic links in one lookup


def running_as_root() -> bool:
    return os.geteuid() == 0


def _writable(mode: int) -> bool:
    return bool(mode & _WRITABLE)


def _owner_problem(uid: int) -> str | None:
    """Why an owner is not trusted, or None: trusted are root and the controller's user."""
    me = os.geteuid()
    if uid in (0, me):
        return None
    try:
        who = f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, OverflowError):
        who = f"uid {uid}"
    trusted = "root" if me == 0 else f"root or uid {me}"
    return f"owned by {who}, not {trusted} (chown it)"


def _problem(st: os.stat_result) -> str | None:
    if _writable(st.st_mode):
        return "group- or world-writable (chmod go-w it)"
    return _owner_problem(st.st_uid)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unsafe_reason(
    path: str,
    file_stat: os.stat_result,
    root: str | None,
    cache: dict[str, str | None] | None = None,
) -> str | None:
    """Why this file must not be trusted, or None.

    `file_stat` is the fstat of the file as opened (the final target of any link); it is
    checked, and must still be what the path leads to. `root` is the spec directory the
    file was found in (None: the file was given itself, and only its own folder, then
    any link hops, are checked). `cache` keeps verdicts per folder across one load.
    """
    problem = _problem(file_stat)
    if problem is not None:
        return f"refused: the file is {problem}"
    cache = {} if cache is None else cache
    try:
        final = _walk(path, root, cache)
        if final is None:
            return None
        if (final.st_dev, final.st_ino) != (file_stat.st_dev, file_stat.st_ino):
            return "refused: the file was replaced while it was being checked"
    except _Refused as exc:
        return exc.reason
    except OSError as exc:
        return (
            f"refused: cannot check the folder permissions ({(exc.strerror or str(exc)).lower()})"
        )
    return None


def _walk(path: str, root: str | None, cache: dict[str, str | None]) -> os.stat_result | None:
    """Follow `path` component by component, checking each folder and each link's target.

    Returns the stat of what the path leads to (None when it was not looked up).
    """
    path = os.path.normpath(path)
    top = os.path.normpath(root) if root is not None else None
    if top is not None and os.path.relpath(path, top).startswith(".."):
        top = None  # not below the spec directory: as if given itself
    if top is None:
        top = os.path.dirname(path) or "."
    key = "\0top\0" + top
    real_top = cache.get(key)
    if real_top is None:
        real_top = cache[key] = os.path.realpath(top)
    # The spec directory (or the given file's folder) itself, then what lies below it.
    _check_folder(real_top, top, False, real_top, cache)
    rest = os.path.relpath(path, top).split(os.sep)
    return _resolve(real_top, top, rest, real_top, cache)


def _resolve(
    current: str,
    shown: str | None,
    parts: list[str],
    real_top: str,
    cache: dict[str, str | None],
) -> os.stat_result:
    """Resolve `parts` from the real folder `current` (already checked).

    `shown` is the path as the user wrote it while no link has been followed (folders are
    then named that way), None after the first link.
    """
    pending = list(reversed(parts))
    hops = 0
    st: os.stat_result | None = None
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current) or "/"
            shown = None
            continue
        nxt = os.path.join(current, part)
        st = os.lstat(nxt)
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_HOPS:
                raise _Refused("refused: too many levels of symbolic links")
            target = os.readlink(nxt)
            if os.path.isabs(target):
                current = "/"
            pending.extend(reversed(target.split("/")))
            shown = None
            continue
        if pending:  # a folder on the way (the last part is the file itself)
            label = os.path.join(shown, part) if shown is not None else None
            _check_folder(nxt, label, shown is None, real_top, cache, st)
            if label is not None:
                shown = label
        current = nxt
    if st is None or stat.S_ISLNK(st.st_mode):
        return os.stat(current)
    return st


def _check_folder(
    real: str,
    shown: str | None,
    through_link: bool,
    real_top: str,
    cache: dict[str, str | None],
    st: os.stat_result | None = None,
) -> None:
    if real != real_top and _is_strict_ancestor(real, real_top):
        return  # above the spec directory: not ours to judge
    if real in cache:
        problem = cache[real]
    else:
        problem = _problem(st if st is not None else os.stat(real))
        cache[real] = problem
    if problem is None:
        return
    if through_link or shown is None:
        raise _Refused(f"refused: the symlink's target folder {real} is {problem}")
    raise _Refused(f"refused: folder {os.path.normpath(shown)} is {problem}")


def _is_strict_ancestor(folder: str, of: str) -> bool:
    if folder == "/":
        return of != "/"
    return of.startswith(folder.rstrip("/") + "/")
