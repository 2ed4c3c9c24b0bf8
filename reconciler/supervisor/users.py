"""Resolving the `user` of a run, and checking the workingDir of a run without one."""

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
    shell: str  # /bin/sh when the passwd entry names none, as login(1) does


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
    return UserIds(
        entry.pw_name, entry.pw_uid, entry.pw_gid, ordered, entry.pw_dir, entry.pw_shell or "/bin/sh"
    )


def check_cwd(cwd: str) -> None:
    """Refuse a working directory that does not exist or is no directory, for a run
    without `user` (which enters it as the controller's user anyway). A run with `user`
    enters its directory only after the switch to the user, so the kernel checks it with
    the user's rights (ACLs included) and a folder swapped for a symlink meanwhile gains
    nothing: see spawn.py."""
    try:
        st = os.stat(cwd)
    except OSError as exc:
        raise SpawnError(f"workingDir {cwd}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpawnError(f"workingDir {cwd}: {os.strerror(errno.ENOTDIR)}")
