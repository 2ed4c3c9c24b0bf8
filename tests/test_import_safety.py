"""`reconciler import` guards a user from the traps of migration: a system crontab read
as a user one, tasks that would run as root unasked, a re-import that duplicates tasks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "import"
SYSTEM_NOTE = (
    "note: read as a system crontab, as every entry names a user ({users}) before its "
    "command; --no-system reads it as a user crontab"
)
RUN_AS_WARNING = (
    "warning: a user crontab imported without --run-as: its tasks will run as the "
    "controller's user (root, for a controller started as root); --run-as USER runs them as "
    "the crontab's owner did"
)


def reconciler(*args: str | Path, cwd: Path = DATA, stdin: str | None = None,
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)], cwd=cwd, input=stdin,
        capture_output=True, text=True, timeout=60,
    )


def test_a_file_with_a_user_column_is_read_as_a_system_crontab(tmp_path: Path) -> None:
    # A copy outside /etc/cron.d: only its content tells.
    copy = tmp_path / "php-certbot"
    copy.write_bytes((DATA / "cron.d-php-certbot").read_bytes())
    run = reconciler("import", "--from", "crontab", copy)
    assert run.returncode == 0
    assert run.stderr == f"{copy}: " + SYSTEM_NOTE.format(users="root") + "\n"
    assert run.stdout == (DATA / "cron.d-php-certbot.expected.yaml").read_text().replace(
        "cron.d-php-certbot:", f"{copy}:"
    )
    assert "command: root" not in run.stdout and "user: root" in run.stdout


def test_detection_from_stdin_and_several_users() -> None:
    text = "SHELL=/bin/sh\n# nightly\n0 1 * * * root /usr/sbin/backup\n" \
           "@reboot nobody /usr/local/bin/warm\n*/5 * * * * www-data php /srv/cron.php\n"
    run = reconciler("import", "--from", "crontab", "-", stdin=text)
    assert run.returncode == 0
    assert run.stderr == "<stdin>: " + SYSTEM_NOTE.format(users="nobody, root, www-data") + "\n"
    assert run.stdout.count("user: ") == 3


def test_no_system_reads_it_as_a_user_crontab() -> None:
    run = reconciler("import", "--from", "crontab", "--no-system", "-",
                     stdin="0 1 * * * root /usr/sbin/backup\n")
    assert run.returncode == 0
    assert run.stderr == f"<stdin>: {RUN_AS_WARNING}\n"
    assert "command: root /usr/sbin/backup" in run.stdout


@pytest.mark.parametrize(
    "text",
    [
        "0 1 * * * /usr/sbin/backup --all\n",  # a path, not a user
        "0 1 * * * root /usr/sbin/x\n0 2 * * * /usr/bin/y\n",  # not every entry
        "0 1 * * * sync\n",  # a user and a command, but nothing follows it
        "0 8 * * * sync -f /srv\n",  # `sync` is a user and a command (/bin/sync)
        "0 1 * * * no-such-user-here /usr/bin/x\n",
    ],
)
def test_a_user_crontab_is_not_taken_for_a_system_one(text: str) -> None:
    run = reconciler("import", "--from", "crontab", "-", stdin=text)
    assert run.stderr.startswith(f"<stdin>: {RUN_AS_WARNING}\n"), run.stderr
    assert "note:" not in run.stderr


def test_run_as_silences_the_warning_and_sets_the_user() -> None:
    run = reconciler("import", "--from", "crontab", "--run-as", "app", "-",
                     stdin="0 1 * * * /usr/bin/true\n")
    assert (run.returncode, run.stderr) == (0, "")
    assert "  user: app\n" in run.stdout


def test_the_warning_needs_a_task_and_gotorch_does_not_get_it() -> None:
    assert reconciler("import", "--from", "crontab", "-", stdin="# empty\n").stderr == ""
    run = reconciler("import", "--from", "gotorch", "-",
                     stdin='[{"Command": "a", "Times": "0 0 * * * *"}]')
    assert (run.returncode, run.stderr) == (0, "")


def _task_file(path: Path, name: str, schedule: str = "@daily") -> None:
    path.write_text(f"apiVersion: reconciler/v1\nkind: Task\nmetadata:\n  name: {name}\n"
                    f"spec:\n  schedule: '{schedule}'\n  command: /bin/true\n")
    os.chmod(path, 0o644)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_name_taken_in_another_file_of_dir_is_refused_even_with_overwrite(
    tmp_path: Path,
) -> None:
    out = tmp_path / "specs"
    (out / "team").mkdir(parents=True)
    _task_file(out / "team" / "several.yaml", "backup")
    (out / "other.yaml").write_text("not: [valid")  # a broken file does not stop the check
    before = _snapshot(out)
    stdin = "0 1 * * * /usr/local/bin/backup\n0 2 * * * /usr/local/bin/rotate\n"
    for extra in ([], ["--overwrite"]):
        run = reconciler("import", "--from", "crontab", "--run-as", "app", "-", "-o", out,
                         *extra, stdin=stdin)
        assert (run.returncode, run.stdout) == (1, "")
        assert run.stderr.startswith(
            f"reconciler import: task 'backup' already exists in {out}/team/several.yaml; "
            f"--overwrite replaces {out}/backup.yaml only: rename or remove it first\n"
        )
        assert _snapshot(out) == before  # not even rotate.yaml


def test_a_file_of_the_name_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "specs"
    out.mkdir()
    (out / "backup.yaml").write_text("# kept by hand\n")
    stdin = "0 1 * * * /usr/local/bin/backup\n"
    run = reconciler("import", "--from", "crontab", "--run-as", "app", "-", "-o", out,
                     stdin=stdin)
    assert run.returncode == 1
    assert run.stderr.startswith(f"reconciler import: {out}/backup.yaml already exists\n")
    assert (out / "backup.yaml").read_text() == "# kept by hand\n"
    run = reconciler("import", "--from", "crontab", "--run-as", "app", "-", "-o", out,
                     "--overwrite", stdin=stdin)
    assert (run.returncode, run.stdout) == (0, f"{out}/backup.yaml\n")
    assert "command: /usr/local/bin/backup" in (out / "backup.yaml").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["backup.yaml"]  # no temp file left


def test_names_in_one_import_stay_apart_and_other_tasks_are_no_clash(tmp_path: Path) -> None:
    out = tmp_path / "specs"
    out.mkdir()
    _task_file(out / "web.yaml", "web")
    stdin = "0 1 * * * /usr/local/bin/backup\n0 2 * * * /usr/local/bin/backup --full\n"
    run = reconciler("import", "--from", "crontab", "--run-as", "app", "-", "-o", out,
                     stdin=stdin)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [f"{out}/backup.yaml", f"{out}/backup-2.yaml"]
    check = reconciler("validate", out)
    assert check.returncode == 0, check.stdout + check.stderr


def test_overwrite_needs_an_output_dir() -> None:
    run = reconciler("import", "--from", "crontab", "--overwrite", "user.crontab")
    assert run.returncode == 2
    assert run.stderr == "reconciler import: --overwrite applies to -o DIR only\n"
