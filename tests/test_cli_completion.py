"""Shell completion (argcomplete) in a real bash and a real zsh: commands, options, and
task names from the state directory of a running controller or from the spec paths."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from controller_harness import ControllerProc, start, write_task

from reconciler.commands.completion import task_names

BIN = str(Path(sys.executable).parent)  # where the installed `reconciler` script is
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

BASH = r"""
eval "$(reconciler completion bash)"
read -r -a COMP_WORDS <<< "$LINE"
[[ "$LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$LINE"; COMP_POINT=${#LINE}
_python_argcomplete reconciler
printf '%s\n' "${COMPREPLY[@]}"
"""

# An interactive zsh on a pseudo-terminal: type the line and TAB, then a key bound to a
# widget that writes the edited line to a file.
ZSH = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z 'autoload -U compinit; compinit -u -D; eval "$(reconciler completion zsh)"'
zpty -w z 'dump() { print -r -- "$BUFFER" > $OUT }; zle -N dump; bindkey "^T" dump'
zpty -w z 'print RE""ADY'
while zpty -r z got; do [[ $got == READY* ]] && break; done
zpty -w -n z "$LINE"$'\t'
for i in {1..100}; do
  sleep 0.1; zpty -w -n z $'\C-t'; sleep 0.05
  [[ -s $OUT && "$(<$OUT)" != "$LINE" ]] && break
done
zpty -d z
"""


def bash_complete(line: str) -> list[str]:
    run = subprocess.run(["bash", "-c", BASH], env={**ENV, "LINE": line},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return [w.strip() for w in run.stdout.splitlines()]


def zsh_complete(line: str, tmp_path: Path) -> str:
    out = tmp_path / "buffer"
    out.unlink(missing_ok=True)
    run = subprocess.run(["zsh", "-f", "-c", ZSH], env={**ENV, "LINE": line, "OUT": str(out)},
                         capture_output=True, text=True, timeout=60)
    assert out.exists(), run.stdout + run.stderr
    return out.read_text().rstrip("\n")


needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")


def test_the_scripts_are_argcompletes() -> None:
    for shell in ("bash", "zsh"):
        run = subprocess.run([sys.executable, "-m", "reconciler", "completion", shell],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "_python_argcomplete" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "reconciler", "completion", "fish"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'fish'" in bad.stderr


def test_bash_completes_commands_and_options() -> None:
    assert bash_complete("reconciler imp") == ["import"]
    assert bash_complete("reconciler import --ov") == ["--overwrite"]
    assert "--state-dir" in bash_complete("reconciler run --")


@needs_zsh
def test_zsh_completes_commands_and_options(tmp_path: Path) -> None:
    assert zsh_complete("reconciler imp", tmp_path) == "reconciler import "
    assert zsh_complete("reconciler import --ov", tmp_path) == "reconciler import --overwrite "


def test_task_names_from_a_running_controllers_state_dir(
    dirs: tuple[Path, Path], controllers: list[ControllerProc], tmp_path: Path
) -> None:
    for name in ("backup-db", "backup-files", "web"):
        write_task(dirs[0], name, {"schedule": "@yearly", "command": ["true"]})
    start(controllers, dirs)
    state = dirs[1]
    assert bash_complete(f"reconciler run --state-dir {state} back") == [
        "backup-db", "backup-files"
    ]
    assert bash_complete(f"reconciler run --state-dir {state} ") == [
        "backup-db", "backup-files", "web"
    ]
    assert bash_complete(f"reconciler logs --state-dir {state} w") == ["web"]
    if shutil.which("zsh") is not None:
        line = f"reconciler run --state-dir {state} backup-f"
        assert zsh_complete(line, tmp_path) == line.replace("backup-f", "backup-files ")


def test_task_names_from_spec_paths_before_the_state_dir(tmp_path: Path) -> None:
    spec = tmp_path / "specs"
    spec.mkdir()
    os.chmod(spec, 0o755)
    for name in ("nightly", "night-shift", "web"):
        write_task(spec, name, {"schedule": "@daily", "command": ["true"]})
    empty_state = tmp_path / "state"
    args = argparse.Namespace(paths=[str(spec)], state_dir=str(empty_state))
    assert task_names("nigh", args) == ["night-shift", "nightly"]
    args = argparse.Namespace(dir=str(spec), state_dir=str(empty_state))
    assert task_names("", args) == ["night-shift", "nightly", "web"]
    # Neither spec paths nor a controller: nothing to offer, and no error.
    assert task_names("", argparse.Namespace(state_dir=str(empty_state))) == []
