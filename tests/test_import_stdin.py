"""`%` stdin: the converted command, run as reconciler runs it, feeds the child what cron did.

Expected texts are written out by hand from cron's rules (unescaped `%` ends the command,
later ones are newlines, `\\%` is `%`, other backslashes stay, nothing is appended).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.importer import convert


def _run_converted(crontab: str, tmp_path: Path) -> tuple[str | list[str], str]:
    result = convert("crontab", crontab, "c", validate=False)
    assert result.problems == []
    (task,) = result.tasks
    command = task.spec["command"]
    env = {**os.environ, **task.spec.get("env", {}), "OUT": str(tmp_path / "out")}
    # As reconciler runs a task: a string via /bin/sh -c, a list exec'd; stdin /dev/null.
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, check=True, timeout=10)
    return command, (tmp_path / "out").read_text()


@pytest.mark.parametrize(
    "line, expected",
    [
        ('* * * * * cat > "$OUT"%line one%line two%', "line one\nline two\n"),
        ('* * * * * cat > "$OUT"%no newline at the end', "no newline at the end"),
        ('* * * * * cat > "$OUT"%100\\% sure%', "100% sure\n"),
        ("* * * * * cat > \"$OUT\"%it's \"$HOME\" `id` $(id) back\\slash\\n",
         "it's \"$HOME\" `id` $(id) back\\slash\\n"),
        ('* * * * * read a; read b; echo "$b-$a" > "$OUT"%one%two', "two-one\n"),
        ('* * * * * echo "\\%" > "$OUT"; cat >> "$OUT"%x', "%\nx"),
        ('* * * * * cat > "$OUT"%%%', "\n\n"),
    ],
)
def test_child_receives_cron_stdin(line: str, expected: str, tmp_path: Path) -> None:
    _, got = _run_converted(line + "\n", tmp_path)
    assert got == expected


def test_plain_command_is_piped_directly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command, got = _run_converted(f"* * * * * tee {out}%hello%world\n", tmp_path)
    assert command == f"printf '%s' 'hello\nworld' | tee {out}"
    assert got == "hello\nworld"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for SHELL=/bin/bash")
def test_other_shell_gets_the_command_and_the_stdin(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    crontab = f'SHELL={bash}\n* * * * * [[ -n x ]] && cat > "$OUT"%a%b\\%c\n'
    command, got = _run_converted(crontab, tmp_path)
    assert isinstance(command, str) and f"| {bash} -c " in command
    assert got == "a\nb%c"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for SHELL=/bin/bash")
def test_without_stdin_the_other_shell_runs_the_command(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    command, got = _run_converted(f'SHELL={bash}\n* * * * * echo "$SHELL" > "$OUT"\n', tmp_path)
    assert command == [bash, "-c", 'echo "$SHELL" > "$OUT"']
    assert got == f"{bash}\n"
