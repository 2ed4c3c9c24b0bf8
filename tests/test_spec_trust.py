"""As root: every hop of a symlink chain, and the owner of every file and folder, are
checked (issue 10, items 3 and 6). Real files, real links, a real user (useradd)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_spec_support import load, task_yaml, write

from reconciler.controller.specset import SpecSet

ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not ROOT, reason="the checks apply when running as root")


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    name = f"rcn-own-{os.getpid() % 100000}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def owned_by(user: pwd.struct_passwd) -> str:
    return f"owned by uid {user.pw_uid} ({user.pw_name}), not root (chown it)"


def messages(spec: Path) -> list[str]:
    return [str(e) for e in load(spec, check_permissions=True).errors]


def safe_dirs(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)


# --- item 3: every hop of a chain ---------------------------------------------------------


def test_link_to_a_link_in_a_writable_folder_is_refused(tmp_path: Path) -> None:
    # a.yaml -> w/hop.yaml -> safe/t.yaml: the final folder is fine, but anyone can
    # replace hop.yaml in w.
    spec, w, safe = tmp_path / "spec", tmp_path / "w", tmp_path / "safe"
    safe_dirs(spec, w, safe)
    write(safe / "t.yaml", task_yaml("t"))
    os.symlink(safe / "t.yaml", w / "hop.yaml")
    w.chmod(0o777)
    os.symlink(w / "hop.yaml", spec / "a.yaml")
    assert messages(spec) == [
        f"{spec}/a.yaml: refused: the symlink's target folder {w} is group- or "
        "world-writable (chmod go-w it)"
    ]


def test_link_through_a_folder_link_into_a_writable_folder_is_refused(tmp_path: Path) -> None:
    # a.yaml -> rootdir/t.yaml, rootdir -> w/real: w/real is fine, w is not.
    spec, w = tmp_path / "spec", tmp_path / "w"
    safe_dirs(spec, w / "real")
    write(w / "real" / "t.yaml", task_yaml("t"))
    w.chmod(0o777)
    os.symlink(w / "real", tmp_path / "rootdir")
    os.symlink(tmp_path / "rootdir" / "t.yaml", spec / "a.yaml")
    assert messages(spec) == [
        f"{spec}/a.yaml: refused: the symlink's target folder {w} is group- or "
        "world-writable (chmod go-w it)"
    ]


def test_folder_link_in_the_spec_dir_is_walked_hop_by_hop(tmp_path: Path) -> None:
    spec, w = tmp_path / "spec", tmp_path / "w"
    safe_dirs(spec, w / "d")
    write(w / "d" / "a.yaml", task_yaml("a"))
    w.chmod(0o777)
    os.symlink(w / "d", spec / "sub")
    assert messages(spec) == [
        f"{spec}/sub/a.yaml: refused: the symlink's target folder {w} is group- or "
        "world-writable (chmod go-w it)"
    ]


def test_relative_chains_and_configmap_layout_pass(tmp_path: Path) -> None:
    spec, other = tmp_path / "spec", tmp_path / "other"
    safe_dirs(spec, other)
    write(spec / "..2026_01_01" / "a.yaml", task_yaml("cm"))
    (spec / "..2026_01_01").chmod(0o755)
    os.symlink("..2026_01_01", spec / "..data")
    os.symlink("..data/a.yaml", spec / "a.yaml")
    write(other / "b.yaml", task_yaml("b"))
    os.symlink("../other/b.yaml", spec / "hop.yaml~")  # ignored name, used as a hop
    os.symlink("hop.yaml~", spec / "b.yaml")
    tmp_path.chmod(0o777)  # above the spec directory: not judged, also when a link passes
    result = load(spec, check_permissions=True)
    assert result.errors == []
    assert sorted(result.tasks) == ["b", "cm"]


def test_a_link_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    safe_dirs(spec)
    os.symlink("b.yaml", spec / "a.yaml")
    os.symlink("a.yaml", spec / "b.yaml")
    errors = messages(spec)
    assert len(errors) == 2
    assert all("too many levels of symbolic links" in e for e in errors)


# --- item 6: owners ----------------------------------------------------------------------


def test_file_owned_by_another_user_is_refused(tmp_path: Path, user: pwd.struct_passwd) -> None:
    spec = tmp_path / "spec"
    safe_dirs(spec)
    path = write(spec / "a.yaml", task_yaml("a"))
    os.chown(path, user.pw_uid, user.pw_gid)
    assert messages(spec) == [f"{path}: refused: the file is {owned_by(user)}"]


@pytest.mark.parametrize("folder", ["", "sub", "sub/deeper"])
def test_folder_owned_by_another_user_is_refused(
    tmp_path: Path, user: pwd.struct_passwd, folder: str
) -> None:
    spec = tmp_path / "spec"
    path = write(spec / "sub" / "deeper" / "a.yaml", task_yaml("a"))
    safe_dirs(spec, spec / "sub", spec / "sub" / "deeper")
    os.chown(spec / folder, user.pw_uid, user.pw_gid)
    where = os.path.normpath(spec / folder)
    assert messages(spec) == [f"{path}: refused: folder {where} is {owned_by(user)}"]


def test_link_into_a_users_home_through_a_root_owned_folder_link_is_refused(
    tmp_path: Path, user: pwd.struct_passwd
) -> None:
    # The case: a.yaml -> /opt-like/rootdir/t.yaml, rootdir (a link in a root
    # folder) -> home/stuff; stuff and t.yaml are root's, home is the user's.
    spec, home = tmp_path / "spec", tmp_path / "home"
    safe_dirs(spec, home / "stuff", tmp_path / "opt")
    write(home / "stuff" / "t.yaml", task_yaml("t"))
    os.chown(home, user.pw_uid, user.pw_gid)
    os.symlink(home / "stuff", tmp_path / "opt" / "rootdir")
    os.symlink(tmp_path / "opt" / "rootdir" / "t.yaml", spec / "a.yaml")
    assert messages(spec) == [
        f"{spec}/a.yaml: refused: the symlink's target folder {home} is {owned_by(user)}"
    ]


def test_link_owned_by_another_user_in_a_root_folder_is_fine(
    tmp_path: Path, user: pwd.struct_passwd
) -> None:
    # A link cannot be changed, only replaced, which its folder decides.
    spec = tmp_path / "spec"
    safe_dirs(spec, tmp_path / "real")
    write(tmp_path / "real" / "a.yaml", task_yaml("a"))
    os.symlink(tmp_path / "real" / "a.yaml", spec / "a.yaml")
    os.lchown(spec / "a.yaml", user.pw_uid, user.pw_gid)
    assert messages(spec) == []


def test_owned_file_keeps_its_last_good_tasks(tmp_path: Path, user: pwd.struct_passwd) -> None:
    spec = tmp_path / "spec"
    safe_dirs(spec)
    path = write(spec / "a.yaml", task_yaml("a"))
    specs = SpecSet(spec)
    assert sorted(specs.refresh().tasks) == ["a"]
    path.write_text(task_yaml("a", schedule="@hourly"))
    os.chown(path, user.pw_uid, user.pw_gid)
    result = specs.refresh()
    assert sorted(result.tasks) == ["a"]
    assert result.tasks["a"].schedule_text == "@daily"
    assert [str(e) for e in result.errors] == [f"{path}: refused: the file is {owned_by(user)}"]


def test_validate_refuses_an_owned_file(tmp_path: Path, user: pwd.struct_passwd) -> None:
    import sys

    spec = tmp_path / "spec"
    safe_dirs(spec)
    path = write(spec / "a.yaml", task_yaml("a"))
    os.chown(path, user.pw_uid, user.pw_gid)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == f"{path}: refused: the file is {owned_by(user)}"


def test_not_checked_when_not_root(tmp_path: Path, user: pwd.struct_passwd) -> None:
    spec = tmp_path / "spec"
    safe_dirs(spec)
    path = write(spec / "a.yaml", task_yaml("a"))
    os.chown(path, user.pw_uid, user.pw_gid)
    assert load(spec, check_permissions=False).errors == []
