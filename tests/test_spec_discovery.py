"""Which files are read: recursion, ignored names, symlinks, ConfigMap layout, cycles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_spec_support import load, task_yaml, write

from reconciler.spec import discover


def rel(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def test_recursive_sorted_and_only_task_suffixes(tmp_path: Path) -> None:
    for name in ["b.yaml", "a.yml", "c.json", "sub/z.yaml", "sub/deeper/y.yaml", "a2/x.yaml"]:
        write(tmp_path / name, "x: 1\n")
    for name in ["notes.txt", "README.md", "x.YAML.bak", "sub/data.csv"]:
        write(tmp_path / name, "x\n")
    found, errors = discover([tmp_path])
    assert errors == []
    assert rel(found, tmp_path) == [
        "a.yml",
        "a2/x.yaml",
        "b.yaml",
        "c.json",
        "sub/deeper/y.yaml",
        "sub/z.yaml",
    ]


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.yaml",
        ".git/config.yaml",
        "a.yaml~",
        "a.yaml.swp",
        "a.yaml.tmp",
        ".a.yaml.swp",
        "sub/.cache/x.yaml",
        "x~/a.yaml",
    ],
)
def test_ignored_names(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, "x: 1\n")
    write(tmp_path / "keep.yaml", "x: 1\n")
    found, _ = discover([tmp_path])
    assert rel(found, tmp_path) == ["keep.yaml"]


def test_given_files_are_read_whatever_their_name(tmp_path: Path) -> None:
    hidden = write(tmp_path / ".odd.yaml", task_yaml("odd"))
    found, errors = discover([hidden])
    assert (found, errors) == ([hidden], [])
    assert list(load(hidden).tasks) == ["odd"]


def test_display_paths_are_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "specs/web.yaml", "x: 1\n")
    monkeypatch.chdir(tmp_path)
    assert [str(p) for p in discover(["specs/"])[0]] == ["specs/web.yaml"]
    assert [str(p) for p in discover(["./specs"])[0]] == ["specs/web.yaml"]
    assert [str(p) for p in discover([tmp_path / "specs"])[0]] == [f"{tmp_path}/specs/web.yaml"]


def test_configmap_layout_is_read_through_the_top_level_links(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "..2026_01_01_00_00_00.123" / "a.yaml", task_yaml("from-configmap"))
    os.symlink("..2026_01_01_00_00_00.123", spec / "..data")
    os.symlink("..data/a.yaml", spec / "a.yaml")
    found, errors = discover([spec])
    assert errors == []
    assert rel(found, spec) == ["a.yaml"]
    result = load(spec)
    assert result.errors == []
    assert list(result.tasks) == ["from-configmap"]
    assert result.tasks["from-configmap"].file == str(spec / "a.yaml")


def test_symlinked_files_and_dirs_are_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "lib/t.yaml", task_yaml("linked-dir"))
    write(outside / "one.yaml", task_yaml("linked-file"))
    spec = tmp_path / "spec"
    spec.mkdir()
    os.symlink(outside / "lib", spec / "lib")
    os.symlink(outside / "one.yaml", spec / "one.yaml")
    result = load(spec)
    assert result.errors == []
    assert sorted(result.tasks) == ["linked-dir", "linked-file"]


def test_symlink_cycles_end_and_each_file_is_read_once(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "sub/t.yaml", task_yaml("t"))
    os.symlink("..", spec / "sub" / "up")  # sub/up -> spec: a cycle
    os.symlink(spec, spec / "self")
    os.symlink("t.yaml", spec / "sub" / "u-again.yaml")
    found, errors = discover([spec])
    assert errors == []
    assert rel(found, spec) == ["sub/t.yaml"]


def test_broken_symlink_is_an_error(tmp_path: Path) -> None:
    os.symlink("nowhere.yaml", tmp_path / "a.yaml")
    os.symlink("nowhere", tmp_path / "notes")  # not a task name: ignored
    found, errors = discover([tmp_path])
    assert found == []
    assert [str(e) for e in errors] == [f"{tmp_path}/a.yaml: broken symlink"]


def test_nonexistent_path_is_an_error(tmp_path: Path) -> None:
    found, errors = discover([tmp_path / "nope"])
    assert found == []
    assert [str(e) for e in errors] == [f"{tmp_path}/nope: no such file or directory"]


def test_a_directory_named_like_a_task_file_is_walked(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml" / "inner.yaml", task_yaml("inner"))
    found, _ = discover([tmp_path])
    assert rel(found, tmp_path) == ["x.yaml/inner.yaml"]


def test_same_file_given_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", task_yaml("a"))
    found, _ = discover([path, path, tmp_path])
    assert found == [path]
