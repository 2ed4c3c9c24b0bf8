"""The environment and working directory of runs, with and without `user`."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_proc import Harness, created_user, harness

from reconciler.supervisor import RunSpec, SpawnError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


@pytest.fixture(scope="module")
def user() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with created_user("renv", home=True) as name:
        yield name


@pytest.fixture
def open_dir() -> Iterator[Path]:
    # pytest's tmp_path lies below a 0700 folder, out of reach of other users.
    path = Path(tempfile.mkdtemp(prefix="renv-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def controller_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a root controller typically carries: keys, tokens, root's PATH."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "root-cloud-key")
    monkeypatch.setenv("GITHUB_TOKEN", "root-token")
    monkeypatch.setenv("PATH", "/root/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Berlin")


def env_of(h: Harness, run_id: str) -> dict[str, str]:
    assert h.wait(run_id).exit_code == 0, h.out.lines(run_id, "stderr")
    return dict(line.split("=", 1) for line in h.out.lines(run_id))


# --- environment ---------------------------------------------------------------------------


@root_only
@pytest.mark.usefixtures("controller_env")
def test_user_run_starts_with_clean_environment(h: Harness, user: str) -> None:
    pw = pwd.getpwnam(user)
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], {"FOO": "bar"}, user=user))
    assert env_of(h, "r1") == {
        "PATH": CLEAN_PATH,
        "HOME": pw.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
        "TZ": "Europe/Berlin",
        "FOO": "bar",
        "RECONCILER_RUN_ID": "r1",
    }


@root_only
@pytest.mark.usefixtures("controller_env")
def test_user_run_lang_and_tz_only_if_controller_has_them(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANG")
    monkeypatch.delenv("TZ")
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], {}, user="nobody"))
    pw = pwd.getpwnam("nobody")
    assert env_of(h, "r1") == {
        "PATH": CLEAN_PATH,
        "HOME": pw.pw_dir,
        "USER": "nobody",
        "LOGNAME": "nobody",
        "SHELL": pw.pw_shell,
        "RECONCILER_RUN_ID": "r1",
    }


@root_only
@pytest.mark.usefixtures("controller_env")
def test_user_run_task_env_comes_last(h: Harness, user: str) -> None:
    task_env = {"PATH": "/opt/tool/bin:/usr/bin:/bin", "LANG": "de_DE.UTF-8", "HOME": "/srv"}
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], task_env, user=user))
    env = env_of(h, "r1")
    assert {k: env[k] for k in task_env} == task_env
    assert "AWS_SECRET_ACCESS_KEY" not in env and "GITHUB_TOKEN" not in env


@root_only
@pytest.mark.usefixtures("controller_env")
def test_user_run_bare_command_found_in_clean_path(h: Harness, user: str) -> None:
    # `id` is looked up in the run's PATH, not in root's.
    h.sup.start(RunSpec("r1", "t", ["id", "-un"], {}, user=user))
    assert h.wait("r1").exit_code == 0
    assert h.out.lines("r1") == [user]


@pytest.mark.usefixtures("controller_env")
def test_run_without_user_keeps_controller_environment(h: Harness) -> None:
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], {"FOO": "bar", "LANG": "de_DE.UTF-8"}))
    expected = dict(os.environ)
    expected.update(FOO="bar", LANG="de_DE.UTF-8", RECONCILER_RUN_ID="r1")
    assert env_of(h, "r1") == expected


def test_run_id_marker_cannot_be_overridden(h: Harness) -> None:
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], {"RECONCILER_RUN_ID": "other"}))
    assert env_of(h, "r1")["RECONCILER_RUN_ID"] == "r1"


# --- working directory -----------------------------------------------------------------------


@root_only
def test_user_run_default_cwd_is_home(h: Harness, user: str) -> None:
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", "pwd -P"], {}, user=user))
    assert h.wait("r1").exit_code == 0
    assert h.out.lines("r1") == [pwd.getpwnam(user).pw_dir]


@root_only
def test_user_run_without_reachable_home_starts_in_root_folder(h: Harness) -> None:
    # nobody's home is /nonexistent: as login(1) and sshd do, the run starts in /.
    assert not os.path.isdir(pwd.getpwnam("nobody").pw_dir)
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", "pwd -P"], {}, user="nobody"))
    assert h.wait("r1").exit_code == 0
    assert h.out.lines("r1") == ["/"]


def test_run_without_user_keeps_controller_cwd(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", "pwd -P"], {}))
    h.wait("r1")
    assert h.out.lines("r1") == [str(tmp_path.resolve())]


@root_only
def test_user_run_workingdir_missing_is_refused(h: Harness, open_dir: Path) -> None:
    missing = open_dir / "missing"
    with pytest.raises(SpawnError) as err:
        h.sup.start(RunSpec("r1", "t", ["/bin/true"], {}, cwd=str(missing), user="nobody"))
    assert str(err.value) == f"workingDir {missing}: No such file or directory"
    assert h.sup.running() == []


@root_only
def test_user_run_workingdir_root_only_is_refused(h: Harness, open_dir: Path) -> None:
    secret = open_dir / "secret"
    secret.mkdir(mode=0o700)
    fds_before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(SpawnError) as err:
        h.sup.start(RunSpec("r1", "t", ["/bin/true"], {}, cwd=str(secret), user="nobody"))
    assert str(err.value) == f"workingDir {secret}: Permission denied for user 'nobody'"
    assert h.sup.running() == []
    assert set(os.listdir("/proc/self/fd")) <= fds_before  # no pipe leaked


# Swaps two names atomically (renameat2 RENAME_EXCHANGE), as fast as it can: one is a
# real folder of the user, the other a symlink to a folder only root may enter.
SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    a, b = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
    print("swapping", flush=True)
    while True:
        if libc.renameat2(-100, a, -100, b, 2) != 0:
            raise OSError(ctypes.get_errno(), "renameat2")
    """
)


@root_only
def test_swapped_workingdir_never_lands_in_root_only_folder(
    h: Harness, user: str, open_dir: Path
) -> None:
    pw = pwd.getpwnam(user)
    secret = open_dir / "secret"
    secret.mkdir(mode=0o700)  # root's
    base = open_dir / "base"
    base.mkdir(mode=0o755)
    work = base / "work"
    work.mkdir(mode=0o755)
    alt = base / "alt"
    alt.symlink_to(secret)
    for p in (base, work, alt):
        os.lchown(p, pw.pw_uid, pw.pw_gid)
    swapper = subprocess.Popen(
        ["/usr/bin/python3", "-c", SWAPPER, str(work), str(alt)],
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        cwd="/",
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert swapper.stdout is not None
    assert swapper.stdout.readline() == b"swapping\n"
    landed: list[str] = []
    refused: list[str] = []
    try:
        for batch in range(40):
            started = []
            for i in range(10):
                run_id = f"r{batch}-{i}"
                spec = RunSpec(run_id, "t", ["/bin/sh", "-c", "pwd -P"], {}, cwd=str(work), user=user)
                try:
                    h.sup.start(spec)
                    started.append(run_id)
                except SpawnError as exc:
                    refused.append(str(exc))
            for run_id in started:
                h.wait(run_id)
                landed.extend(h.out.lines(run_id))
    finally:
        os.killpg(swapper.pid, signal.SIGKILL)
        swapper.wait(10)
    assert swapper.returncode == -signal.SIGKILL  # it swapped until the end
    assert str(secret) not in landed
    assert set(landed) <= {str(work), str(alt)}  # the real folder, under either name
    assert landed, "no run started at all"
    assert all(r.startswith(f"workingDir {work}: ") for r in refused), refused[:3]
    print(f"{len(landed)} runs in the user's folder, {len(refused)} refused")


@root_only
def test_user_run_start_is_still_fast(h: Harness, user: str) -> None:
    # Entering the folder as the user costs a fork instead of a vfork: still quick.
    t0 = time.perf_counter()
    for i in range(20):
        h.sup.start(RunSpec(f"r{i}", "t", ["/bin/true"], {}, user=user))
    per_start = (time.perf_counter() - t0) / 20
    for i in range(20):
        assert h.wait(f"r{i}").exit_code == 0
    assert per_start < 0.05
