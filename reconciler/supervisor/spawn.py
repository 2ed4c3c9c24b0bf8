"""Starting one child: its own session, clean fds, pipes for stdout and stderr."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.supervisor.model import RunSpec, SpawnError
from reconciler.supervisor.users import UserIds, check_cwd, resolve_user


@dataclass
class Spawned:
    popen: subprocess.Popen[bytes]
    stdout_fd: int  # read ends, non-blocking, owned by the caller
    stderr_fd: int


def _checked_env(env: Mapping[str, str]) -> dict[str, str]:
    # Errors name the key only: values may be secrets.
    out: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpawnError(f"env {key!r}: names and values must be strings")
        if not key or "=" in key or "\0" in key:
            raise SpawnError(f"env {key!r}: not a valid variable name")
        if "\0" in value:
            raise SpawnError(f"env {key}: value contains a NUL byte")
        out[key] = value
    return out


def _checked_argv(argv: list[str]) -> list[str]:
    if not argv:
        raise SpawnError("empty command")
    for arg in argv:
        if not isinstance(arg, str):
            raise SpawnError(f"command argument {arg!r} is not a string")
        if "\0" in arg:
            raise SpawnError("command argument contains a NUL byte")
    return list(argv)


def _exec_error(exc: OSError, spec: RunSpec, ids: UserIds | None) -> SpawnError:
    reason = exc.strerror or str(exc)
    cmd = spec.argv[0]
    if exc.filename is not None and exc.filename == cmd and exc.filename != spec.cwd:
        if exc.errno == errno.ENOENT:
            return SpawnError(f"command not found: {cmd}")
        return SpawnError(f"cannot execute {cmd}: {reason}")
    if exc.errno in (errno.EAGAIN, errno.ENOMEM):
        return SpawnError(f"cannot start a process: {reason}")
    # Anything else failed in the child before exec: chdir or the user switch.
    if ids is not None and exc.errno not in (errno.ENOENT, errno.ENOTDIR):
        return SpawnError(f"cannot switch to user {ids.name!r}: {reason}")
    if spec.cwd is not None:
        return SpawnError(f"workingDir {spec.cwd}: {reason}")
    return SpawnError(f"cannot start {cmd}: {reason}")


@dataclass(frozen=True)
class Prepared:
    """A RunSpec checked and resolved (user lookups may be slow: done before any lock)."""

    spec: RunSpec
    argv: list[str]
    env: dict[str, str]
    ids: UserIds | None


def prepare(spec: RunSpec) -> Prepared:
    argv = _checked_argv(spec.argv)
    env = _checked_env(spec.env)
    ids: UserIds | None = None
    if spec.user is not None:
        ids = resolve_user(spec.user)
        env.update(HOME=ids.home, USER=ids.name, LOGNAME=ids.name)
    if spec.cwd is not None:
        check_cwd(spec.cwd, ids)
    return Prepared(spec, argv, env, ids)


def spawn(prepared: Prepared) -> Spawned:
    """Start the process or raise SpawnError; never falls back to our own user."""
    spec, argv, env, ids = prepared.spec, prepared.argv, prepared.env, prepared.ids
    try:
        out_r, out_w = os.pipe()
    except OSError as exc:
        raise SpawnError(f"cannot create output pipes: {exc.strerror}") from None
    try:
        err_r, err_w = os.pipe()
    except OSError as exc:
        os.close(out_r)
        os.close(out_w)
        raise SpawnError(f"cannot create output pipes: {exc.strerror}") from None
    # With no user switch, Popen keeps its vfork() fast path; user=/group=/extra_groups
    # make the child call setgroups, setregid and setreuid (real, effective and saved ids).
    try:
        popen = subprocess.Popen(  # noqa: S603 - argv is exec'd without a shell on purpose
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            cwd=spec.cwd,
            env=env,
            close_fds=True,
            start_new_session=True,
            restore_signals=True,
            user=None if ids is None else ids.uid,
            group=None if ids is None else ids.gid,
            extra_groups=None if ids is None else list(ids.groups),
        )
    except OSError as exc:
        os.close(out_r)
        os.close(err_r)
        raise _exec_error(exc, spec, ids) from None
    except (ValueError, TypeError) as exc:
        os.close(out_r)
        os.close(err_r)
        raise SpawnError(f"cannot start {argv[0]}: {exc}") from None
    finally:
        os.close(out_w)
        os.close(err_w)
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return Spawned(popen, out_r, err_r)
