"""Running as another user: ids, groups, environment, refusals."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_proc import Harness, created_user, harness

from reconciler.supervisor import RunSpec, SpawnError
from reconciler.supervisor.users import resolve_user

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# The task's env: added to the clean environment of a `user` run.
ENV = {"KEEP": "1"}
PROBE = (
    "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status; "
    'echo "HOME=$HOME USER=$USER LOGNAME=$LOGNAME KEEP=$KEEP"'
)


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


@pytest.fixture(scope="module")
def test_user() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with created_user("rsup") as name:
        yield name


@pytest.fixture
def open_dir() -> Iterator[Path]:
    # pytest's tmp_path lies below a 0700 folder, out of reach of other users.
    path = Path(tempfile.mkdtemp(prefix="rsup-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def expect(h: Harness, run_id: str, name: str) -> None:
    pw = pwd.getpwnam(name)
    groups = sorted(set(os.getgrouplist(name, pw.pw_gid)))
    lines = h.out.lines(run_id)
    assert h.out.lines(run_id, "stderr") == []
    assert lines[0] == str(pw.pw_uid)
    assert lines[1] == str(pw.pw_gid)
    assert sorted(int(g) for g in lines[2].split()) == groups
    uid, gid = str(pw.pw_uid), str(pw.pw_gid)
    assert lines[3].split() == ["Uid:", uid, uid, uid, uid]  # real, effective, saved, fs
    assert lines[4].split() == ["Gid:", gid, gid, gid, gid]
    assert sorted(int(g) for g in lines[5].split()[1:]) == groups
    assert lines[6] == f"HOME={pw.pw_dir} USER={name} LOGNAME={name} KEEP=1"


@root_only
def test_run_as_nobody(h: Harness) -> None:
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", PROBE], ENV, user="nobody"))
    assert h.wait("r1").exit_code == 0
    expect(h, "r1", "nobody")


@root_only
def test_run_as_created_user_with_supplementary_group(h: Harness, test_user: str) -> None:
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", PROBE], ENV, user=test_user))
    assert h.wait("r1").exit_code == 0
    expect(h, "r1", test_user)
    extra = grp.getgrnam(test_user.replace("rsup", "rsupx", 1)).gr_gid
    assert str(extra) in h.out.lines("r1")[2].split()
    assert "0" not in h.out.lines("r1")[2].split()  # root's groups are not kept


@root_only
def test_run_by_uid_and_digit_string(h: Harness) -> None:
    uid = pwd.getpwnam("nobody").pw_uid
    h.sup.start(RunSpec("r1", "t", ["/bin/sh", "-c", PROBE], ENV, user=uid))
    h.sup.start(RunSpec("r2", "t", ["/bin/sh", "-c", PROBE], ENV, user=str(uid)))
    h.wait("r1")
    h.wait("r2")
    expect(h, "r1", "nobody")
    expect(h, "r2", "nobody")


@root_only
def test_unknown_user_refused(h: Harness) -> None:
    with pytest.raises(SpawnError, match="^user 'nobody2' does not exist$"):
        h.sup.start(RunSpec("r1", "t", ["/bin/true"], ENV, user="nobody2"))
    assert h.sup.running() == []


@root_only
def test_uid_without_passwd_entry_refused(h: Harness) -> None:
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            break
    with pytest.raises(SpawnError, match=f"^uid {uid} has no passwd entry$"):
        h.sup.start(RunSpec("r1", "t", ["/bin/true"], ENV, user=uid))


def test_non_root_controller_refuses_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SpawnError, match="^running as user 'deploy' needs a root controller$"):
        resolve_user("deploy")


@root_only
def test_cwd_hidden_from_user_refused(h: Harness, open_dir: Path) -> None:
    secret = open_dir / "secret"
    inner = secret / "inner"
    inner.mkdir(parents=True)
    secret.chmod(0o700)
    inner.chmod(0o755)
    with pytest.raises(SpawnError, match="Permission denied for user 'nobody'"):
        h.sup.start(RunSpec("r1", "t", ["/bin/pwd"], ENV, cwd=str(inner), user="nobody"))
    secret.chmod(0o755)
    h.sup.start(RunSpec("r2", "t", ["/bin/pwd"], ENV, cwd=str(inner), user="nobody"))
    assert h.wait("r2").exit_code == 0
    assert h.out.lines("r2") == [str(inner)]
