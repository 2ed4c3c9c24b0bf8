"""Starting one child: its own session, clean fds, pipes for stdout and stderr."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.supervisor.model import RUN_ID_ENV, RunSpec, SpawnError
from reconciler.supervisor.users import UserIds, check_cwd, resolve_user

# The PATH of a run with `user`, as cron gives its jobs (plus /usr/local/bin).
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
# Taken from the controller's environment into a `user` run's clean one, if set.
USER_KEPT = ("LANG", "TZ")


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


def _base_env(ids: UserIds | None) -> dict[str, str]:
    """What a run starts from before the task's env: the controller's environment, or
    for a run with `user` a clean one, as cron and systemd give user jobs (no cloud keys,
    tokens or root's PATH of the controller)."""
    if ids is None:
        return dict(os.environ)
    env = {
        "PATH": USER_PATH,
        "HOME": ids.home,
        "USER": ids.name,
        "LOGNAME": ids.name,
        "SHELL": ids.shell,
    }
    for key in USER_KEPT:
        value = os.environ.get(key)
        if value is not None:
            env[key] = value
    return env


@dataclass(frozen=True)
class Prepared:
    """A RunSpec checked and resolved (user lookups may be slow: done before any lock)."""

    spec: RunSpec
    argv: list[str]
    env: dict[str, str]
    ids: UserIds | None
    # A run with `user` enters this folder after the switch to the user; `strict`: a
    # failure refuses the run (workingDir), else the run starts in / (a home it cannot
    # enter, as login(1) and sshd do).
    user_cwd: str | None = None
    strict: bool = True


def prepare(spec: RunSpec) -> Prepared:
    argv = _checked_argv(spec.argv)
    task_env = _checked_env(spec.task_env)
    ids = resolve_user(spec.user) if spec.user is not None else None
    env = _base_env(ids)
    env.update(task_env)
    env[RUN_ID_ENV] = spec.run_id
    if ids is None:
        if spec.cwd is not None:
            check_cwd(spec.cwd)
        return Prepared(spec, argv, env, None)
    if spec.cwd is not None:
        return Prepared(spec, argv, env, ids, spec.cwd, strict=True)
    return Prepared(spec, argv, env, ids, ids.home, strict=False)


def _child_step(
    procs: tuple[bytes, ...],
    nofile: int | None,
    ids: UserIds | None,
    cwd: str | None,
    strict: bool,
    report_fd: int,
) -> Callable[[], None]:
    """The child's last step before exec (after setsid), in this order: join the run's
    cgroups (as root, before it can fork: nothing it starts is ever outside), set
    RLIMIT_NOFILE, switch to the user, enter the run's folder with the user's own rights.
    Runs in the forked child: no locks, nothing but system calls. A failure is reported
    through report_fd as '<stage> <errno>', since Popen only says that preexec_fn raised."""
    target = os.fsencode(cwd) if cwd is not None else None
    groups = list(ids.groups) if ids is not None else []

    def step() -> None:
        stage = "cgroup"
        try:
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            if nofile is not None:
                stage = "nofile"
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if ids is not None:
                stage = "user"
                os.setgroups(groups)
                os.setresgid(ids.gid, ids.gid, ids.gid)
                os.setresuid(ids.uid, ids.uid, ids.uid)
            if target is not None:
                stage = "cwd"
                try:
                    os.chdir(target)
                except OSError:
                    if strict:
                        raise
                    os.chdir(b"/")
        except OSError as exc:
            os.write(report_fd, f"{stage} {exc.errno or 0}".encode())
            raise

    return step


def _step_error(report_r: int, prepared: Prepared) -> SpawnError:
    try:
        raw = os.read(report_r, 64).decode("ascii", "replace")
    except BlockingIOError:
        raw = ""
    stage, _, num = raw.partition(" ")
    code = int(num) if num.isdigit() else 0
    reason = os.strerror(code) if code else "failed"
    ids = prepared.ids
    if stage == "cgroup":
        return SpawnError(f"cannot join the run's cgroup: {reason}")
    if stage == "nofile":
        limits = prepared.spec.limits
        value = limits.open_files_max if limits is not None else None
        return SpawnError(f"openFilesMax {value}: {reason}")
    if stage == "cwd" and ids is not None:
        if code in (errno.EACCES, errno.EPERM):
            reason += f" for user {ids.name!r}"
        return SpawnError(f"workingDir {prepared.user_cwd}: {reason}")
    if ids is not None:
        return SpawnError(f"cannot switch to user {ids.name!r}: {reason}")
    return SpawnError(f"cannot start {prepared.argv[0]}: {reason}")


def spawn(prepared: Prepared, procs: tuple[bytes, ...] = ()) -> Spawned:
    """Start the process or raise SpawnError; never falls back to our own user.

    procs: the cgroup.procs files of the run's cgroups, joined by the child before exec."""
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
    # A run with `user`, a cgroup or openFilesMax takes one step of system calls in the
    # child before exec (_child_step): Popen's own user switch would come before the
    # cgroup join, which the user may not do, and its cwd= would chdir as root. The
    # report pipe is close-on-exec: empty unless the step failed. Every other run keeps
    # Popen's vfork() fast path.
    limits = spec.limits
    nofile = limits.open_files_max if limits is not None else None
    report: tuple[int, int] | None = None
    preexec: Callable[[], None] | None = None
    if ids is not None or procs or nofile is not None:
        try:
            report = os.pipe()
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            raise SpawnError(f"cannot create output pipes: {exc.strerror}") from None
        os.set_blocking(report[0], False)
        preexec = _child_step(procs, nofile, ids, prepared.user_cwd, prepared.strict, report[1])
    try:
        popen = subprocess.Popen(  # noqa: S603 - argv is exec'd without a shell on purpose
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            cwd=spec.cwd if ids is None else None,
            env=env,
            close_fds=True,
            start_new_session=True,
            restore_signals=True,
            preexec_fn=preexec,  # noqa: PLW1509 - system calls only, see _child_step
        )
    except OSError as exc:
        os.close(out_r)
        os.close(err_r)
        raise _exec_error(exc, spec, ids) from None
    except subprocess.SubprocessError:
        # Only preexec_fn raises this: see _child_step.
        os.close(out_r)
        os.close(err_r)
        assert report is not None
        raise _step_error(report[0], prepared) from None
    except (ValueError, TypeError) as exc:
        os.close(out_r)
        os.close(err_r)
        raise SpawnError(f"cannot start {argv[0]}: {exc}") from None
    finally:
        os.close(out_w)
        os.close(err_w)
        if report is not None:
            os.close(report[0])
            os.close(report[1])
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    return Spawned(popen, out_r, err_r)
