"""Resolving the `user` of a run and checking what that user may reach."""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass

from reconciler.supervisor.model import SpawnError


@dataclass(frozen=True)
class UserIds:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, as initgroups(3) would set them
    home: str


def _describe(user: str | int) -> str:
    return f"uid {user}" if isinstance(user, int) else f"user {user!r}"


def resolve_user(user: str | int) -> UserIds:
    """Look up a user by name or uid. A uid without a passwd entry is refused: its
    primary group, supplementary groups and HOME would have to be guessed."""
    if isinstance(user, bool):  # bool is an int; a YAML `user: true` is a mistake
        raise SpawnError(f"user {user!r} is not a user name or uid")
    if os.geteuid() != 0:
        raise SpawnError(f"running as {_describe(user)} needs a root controller")
    try:
        if isinstance(user, int):
            entry = pwd.getpwuid(user)
        else:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                if not user.isdigit():
                    raise
                entry = pwd.getpwuid(int(user))
    except KeyError:
        if isinstance(user, int) or user.isdigit():
            raise SpawnError(f"uid {user} has no passwd entry") from None
        raise SpawnError(f"user {user!r} does not exist") from None
    except (OverflowError, ValueError):
        raise SpawnError(f"{_describe(user)} is not a valid user") from None
    try:
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except OSError as exc:
        raise SpawnError(
            f"user {entry.pw_name!r}: cannot read its groups: {exc.strerror}"
        ) from None
    # getgrouplist() lists the primary group too, as initgroups() puts it in the set.
    ordered = tuple(dict.fromkeys(groups))
    return UserIds(entry.pw_name, entry.pw_uid, entry.pw_gid, ordered, entry.pw_dir)


def _may_search(st: os.stat_result, ids: UserIds) -> bool:
    if st.st_uid == ids.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == ids.gid or st.st_gid in ids.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_cwd(cwd: str, ids: UserIds | None) -> None:
    """Refuse a working directory that does not exist or (for a run with `user`) that
    the user could not reach itself. The child changes directory while still root,
    so without this a run could use a directory hidden from it behind a 0700 parent.
    Mode bits only: ACLs are not evaluated."""
    try:
        st = os.stat(cwd)
    except OSError as exc:
        raise SpawnError(f"workingDir {cwd}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpawnError(f"workingDir {cwd}: {os.strerror(errno.ENOTDIR)}")
    if ids is None or ids.uid == 0:
        return
    path = os.path.realpath(cwd)
    parts = [p for p in path.split("/") if p]
    current = "/"
    for part in [None, *parts]:
        if part is not None:
            current = os.path.join(current, part)
        try:
            st = os.stat(current)
        except OSError as exc:
            raise SpawnError(f"workingDir {cwd}: {exc.strerror}") from None
        if not _may_search(st, ids):
            raise SpawnError(f"workingDir {cwd}: Permission denied for user {ids.name!r}")
