"""`reconciler validate` and `reconciler schema` as users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_spec_support import task_yaml, write

from reconciler.hosts import identity_for, parse_host_entry

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_example_fleet_is_valid() -> None:
    proc = cli("validate", "specs/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "8 tasks in 6 files valid\n"
    assert proc.stderr == ""


def test_example_fleet_is_safe_to_apply_anywhere() -> None:
    """Tasks without hosts only print; the others target documentation addresses and names."""
    from reconciler.spec import load_paths

    result = load_paths([REPO / "specs"])
    assert result.errors == []
    documentation = [parse_host_entry(n).network for n in ("198.51.100.0/24", "203.0.113.0/24")]
    for task in result.tasks.values():
        if task.hosts is None:
            assert "/demo/" in task.file, task.name
            assert task.user is None
            assert task.argv()[0] in ("echo", "/bin/sh")
            continue
        assert task.hosts, task.name
        for host in task.hosts:
            if host.kind == "name":
                assert host.text.split("-")[0] in ("web", "db"), host.text
            elif host.kind == "ip":
                assert any(host.address in net for net in documentation if net), host.text
            else:
                assert any(
                    host.network is not None and net is not None and host.network.subnet_of(net)
                    for net in documentation
                ), host.text
        # A machine at a common LAN address or with a common name is not selected.
        for probe in ("10.0.0.5", "192.168.1.10", "laptop", "localhost"):
            assert not any(h.matches(identity_for(probe)) for h in task.hosts), (task.name, probe)


def test_example_fleet_has_what_the_docs_promise() -> None:
    files = sorted(
        p.relative_to(REPO / "specs") for p in (REPO / "specs").rglob("*") if p.is_file()
    )
    assert any(str(f).endswith(".json") for f in files)
    assert any(len(f.parts) > 2 for f in files)  # a subfolder of a subfolder
    for path in (REPO / "specs").rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        rel = os.path.relpath(REPO / "schemas" / "task.schema.json", path.parent)
        assert first == f"# yaml-language-server: $schema={rel}", path
    multi = [p for p in (REPO / "specs").rglob("*.yaml") if "\n---\n" in p.read_text()]
    assert multi
    from reconciler.spec import load_paths

    tasks = load_paths([REPO / "specs"]).tasks
    assert {"hello-every-10s", "heartbeat", "nightly-backup", "health-probe", "rotate-logs"} <= set(
        tasks
    )
    assert tasks["hello-every-10s"].schedule_text == "*/10 * * * * *"
    assert tasks["heartbeat"].type == "daemon"
    backup = tasks["nightly-backup"]
    assert (backup.schedule_text, backup.timezone_name) == ("0 0 3 * * *", "Europe/Berlin")
    assert tasks["health-probe"].schedule_text == "* * * * * *"


def test_invalid_files_exact_lines_and_exit_1(tmp_path: Path) -> None:
    write(tmp_path / "specs/web.yaml", task_yaml("rotate-logs", maxConcurrency=-1))
    write(tmp_path / "specs/ok.yaml", task_yaml("fine"))
    write(
        tmp_path / "specs/sub/zone.yaml",
        task_yaml("zoned", timezone="Mars/Base", schedule="*/0 * * * *"),
    )
    proc = cli("validate", "specs", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        'specs/sub/zone.yaml:6: zoned: spec.timezone: "Mars/Base" is not a known time zone',
        "specs/sub/zone.yaml:7: zoned: spec.schedule: minute: step of 0",
        "specs/web.yaml:6: rotate-logs: spec.maxConcurrency: -1 is less than the minimum of 1",
        "3 errors in 2 of 3 files",
    ]
    assert proc.stderr == ""


def test_valid_files_exit_0(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", task_yaml("a") + "---\n" + task_yaml("b", type="daemon"))
    write(
        tmp_path / "c.json",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "Task",
                "metadata": {"name": "c"},
                "spec": {"schedule": "@hourly", "command": "true"},
            }
        ),
    )
    proc = cli("validate", "a.yaml", "c.json", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "3 tasks in 2 files valid\n")


def test_nonexistent_path_is_invalid_exit_1(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", task_yaml("a"))
    proc = cli("validate", "a.yaml", "nope/", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "nope/: no such file or directory",
        "1 error in 1 of 2 files",
    ]


def test_no_path_is_a_usage_error() -> None:
    proc = cli("validate")
    assert proc.returncode == 2
    assert "PATH" in proc.stderr


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    write(tmp_path / "specs/a.yaml", task_yaml("same"))
    write(tmp_path / "specs/b.yaml", task_yaml("same"))
    proc = cli("validate", "specs", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "specs/b.yaml:1: same: metadata.name: duplicate task name; also defined at specs/a.yaml:1",
        "1 error in 1 of 2 files",
    ]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"a: 1\nb: caf\xe9\n", "bad.yaml:2: not valid UTF-8 (at byte offset 11)"),
        (b"[" * 100_000, "bad.yaml:1: nesting deeper than 64 levels of mappings and lists"),
        (bytes(range(256)), "bad.yaml:2: not valid UTF-8 (at byte offset 128)"),
        (b"a: &a [1]\na: 2\n", 'bad.yaml:2: <document 1>: a: duplicate key "a" (first on line 1)'),
        (
            b"x: !!python/object/apply:os.system [true]\n",
            "bad.yaml:1: <document 1>: x: tag !!python/object/apply:os.system is not allowed",
        ),
    ],
)
def test_hostile_files_give_one_clean_line(tmp_path: Path, content: bytes, expected: str) -> None:
    write(tmp_path / "bad.yaml", content)
    proc = cli("validate", "bad.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [expected, "1 error in 1 of 1 file"]


def test_oversized_and_too_many_documents(tmp_path: Path) -> None:
    write(tmp_path / "big.yaml", b"#" * (1024 * 1024 + 1))
    write(tmp_path / "many.yaml", "---\n".join([task_yaml("t")] * 1001))
    proc = cli("validate", ".", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "big.yaml: file is larger than 1 MiB (1048577 bytes); refused unread",
        "many.yaml: more than 1000 documents in one file",
        "2 errors in 2 of 2 files",
    ]


def test_json_output(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", task_yaml("a", maxConcurrency=0))
    proc = cli("validate", "-o", "json", "a.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["valid"] is False
    assert report["errors"] == [
        {
            "file": "a.yaml",
            "line": 6,
            "task": "a",
            "field": "spec.maxConcurrency",
            "message": "0 is less than the minimum of 1",
            "error": "a.yaml:6: a: spec.maxConcurrency: 0 is less than the minimum of 1",
        }
    ]


def test_schema_command_prints_the_published_schema() -> None:
    proc = cli("schema")
    assert proc.returncode == 0
    assert proc.stdout == (REPO / "schemas" / "task.schema.json").read_text(encoding="utf-8")
    assert json.loads(proc.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
