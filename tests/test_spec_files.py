"""Whatever a file holds, loading it gives errors, never a traceback or a stall."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_spec_support import load, task_yaml, write

from reconciler.spec import load_file

ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="permission checks apply when running as root")


def errors_of(path: Path) -> list[str]:
    return [str(e) for e in load_file(path, str(path), check_permissions=False).errors]


def test_file_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path / "big.yaml", "#" * (1024 * 1024) + "\n")
    assert errors_of(path) == [f"{path}: file is larger than 1 MiB (1048577 bytes); refused unread"]


def test_file_of_exactly_1_mib_is_read(tmp_path: Path) -> None:
    body = task_yaml("edge")
    path = write(tmp_path / "edge.yaml", body + "#" * (1024 * 1024 - len(body) - 1) + "\n")
    assert path.stat().st_size == 1024 * 1024
    assert errors_of(path) == []


def test_100_mb_file_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as fh:
        fh.truncate(100 * 1024 * 1024)  # sparse: no 100 MB written to disk
    start = time.monotonic()
    assert errors_of(path) == [
        f"{path}: file is larger than 1 MiB (104857600 bytes); refused unread"
    ]
    assert time.monotonic() - start < 1


def test_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", b"a: 1\nb: caf\xe9\n")
    assert errors_of(path) == [f"{path}:2: not valid UTF-8 (at byte offset 11)"]


def test_binary_garbage(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", bytes(range(256)) * 8)
    errors = errors_of(path)
    assert len(errors) == 1
    assert errors[0] == f"{path}:2: not valid UTF-8 (at byte offset 128)"


def test_binary_but_valid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", b"\x00\x01\x02{}")
    assert errors_of(path) == [f"{path}:1: invalid JSON: Expecting value"]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", "\ufeff" + task_yaml("bom"))
    assert errors_of(path) == []


def test_load_file_on_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "x.yaml"
    folder.mkdir()
    assert errors_of(folder) == [f"{folder}: is a directory, not a task file"]


def test_fifo_does_not_stall(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    start = time.monotonic()
    result = load(tmp_path)
    assert time.monotonic() - start < 2
    assert [str(e) for e in result.errors] == [f"{fifo}: not a regular file"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.yaml"
    assert errors_of(path) == [f"{path}: cannot read: no such file or directory"]


@pytest.mark.skipif(not ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_unreadable_file_is_a_clean_error(tmp_path: Path) -> None:
    # Root reads anything; without CAP_DAC_OVERRIDE it is held to the mode bits.
    path = write(tmp_path / "secret.yaml", task_yaml("s"), mode=0o000)
    proc = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            "-dac_override,-dac_read_search",
            sys.executable,
            "-m",
            "reconciler",
            "validate",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines()[0] == f"{path}: cannot read: permission denied"


# --- running as root: files others could write are refused -----------------------------


@as_root
@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646, 0o622])
def test_group_or_world_writable_file_is_refused(tmp_path: Path, mode: int) -> None:
    spec = tmp_path / "spec"
    path = write(spec / "a.yaml", task_yaml("a"), mode=mode)
    result = load(spec, check_permissions=True)
    assert result.tasks == {}
    assert [str(e) for e in result.errors] == [
        f"{path}: refused: the file is group- or world-writable (chmod go-w it)"
    ]


@as_root
def test_safe_modes_are_accepted_as_root(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "a.yaml", task_yaml("a"), mode=0o644)
    write(spec / "sub/b.yaml", task_yaml("b"), mode=0o600)
    (spec / "sub").chmod(0o755)
    tmp_path.chmod(0o777)  # above the spec directory: not ours to judge
    result = load(spec, check_permissions=None)  # default: because we are root
    assert result.errors == []
    assert sorted(result.tasks) == ["a", "b"]


@as_root
@pytest.mark.parametrize("folder", ["", "sub", "sub/deeper"])
def test_writable_folder_at_or_below_the_spec_dir_is_refused(tmp_path: Path, folder: str) -> None:
    spec = tmp_path / "spec"
    path = write(spec / "sub/deeper/a.yaml", task_yaml("a"))
    (spec / folder).chmod(0o777)
    result = load(spec, check_permissions=True)
    assert result.tasks == {}
    where = spec / folder if folder else spec
    assert [str(e) for e in result.errors] == [
        f"{path}: refused: folder {os.path.normpath(where)} is group- or world-writable "
        "(chmod go-w it)"
    ]


@as_root
def test_symlink_to_writable_target_or_into_writable_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "writable.yaml", task_yaml("w"), mode=0o666)
    shared = tmp_path / "shared"
    write(shared / "t.yaml", task_yaml("t"))
    shared.chmod(0o777)
    spec = tmp_path / "spec"
    spec.mkdir()
    os.symlink(outside / "writable.yaml", spec / "a.yaml")
    os.symlink(shared / "t.yaml", spec / "b.yaml")
    result = load(spec, check_permissions=True)
    assert result.tasks == {}
    assert [str(e) for e in result.errors] == [
        f"{spec}/a.yaml: refused: the file is group- or world-writable (chmod go-w it)",
        f"{spec}/b.yaml: refused: the symlink's target folder {shared} is group- or "
        "world-writable (chmod go-w it)",
    ]


@as_root
def test_configmap_layout_passes_the_permission_checks(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "..2026_01_01" / "a.yaml", task_yaml("cm"))
    os.symlink("..2026_01_01", spec / "..data")
    os.symlink("..data/a.yaml", spec / "a.yaml")
    result = load(spec, check_permissions=True)
    assert result.errors == []
    (spec / "..2026_01_01").chmod(0o777)
    result = load(spec, check_permissions=True)
    assert [e.message for e in result.errors] == [
        f"refused: the symlink's target folder {spec}/..2026_01_01 is group- or "
        "world-writable (chmod go-w it)"
    ]


def test_permission_checks_off_when_not_root(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "a.yaml", task_yaml("a"), mode=0o666)
    assert load(spec, check_permissions=False).errors == []
