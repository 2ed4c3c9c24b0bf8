"""A read error anywhere in the spec tree removes nothing (issue 10, item 1).

Root reads any folder, so the unreadable-folder cases run in a subprocess without
CAP_DAC_OVERRIDE (setpriv), and the EMFILE cases in a subprocess with a real, low
RLIMIT_NOFILE. SpecSet keeps its state across refreshes, so each case is one script.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from controller_harness import ControllerProc, pids_in_group, wait_until, write_task
from test_spec_support import task_yaml, write

ROOT = os.geteuid() == 0
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
needs_setpriv = pytest.mark.skipif(
    not ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv"
)

# Each refresh prints one JSON line: the task names in force and the error texts.
_PRELUDE = """
import json, os, resource, sys
from pathlib import Path
from reconciler.controller.specset import SpecSet

specs = SpecSet(Path(sys.argv[1]))

def show():
    r = specs.refresh()
    print(json.dumps({"tasks": sorted(r.tasks), "errors": [str(e) for e in r.errors],
                      "dir_error": r.dir_error}), flush=True)
"""


def run_script(body: str, spec: Path, wrapper: list[str] | None = None) -> list[dict]:
    script = _PRELUDE + textwrap.dedent(body)
    proc = subprocess.run(
        [*(wrapper or []), sys.executable, "-c", script, str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def tree(tmp_path: Path) -> Path:
    spec = tmp_path / "spec"
    write(spec / "top.yaml", task_yaml("top"))
    write(spec / "sub" / "a.yaml", task_yaml("a"))
    write(spec / "sub" / "deeper" / "b.yaml", task_yaml("b"))
    write(spec / "other" / "c.yaml", task_yaml("c"))
    for folder in (spec, spec / "sub", spec / "sub" / "deeper", spec / "other"):
        folder.chmod(0o755)
    return spec


@needs_setpriv
@pytest.mark.parametrize("mode", [0o000, 0o300, 0o600])
def test_unreadable_subfolder_keeps_its_tasks(tmp_path: Path, mode: int) -> None:
    # 000: neither listed nor entered; 300: entered, not listed; 600: listed, not entered.
    spec = tree(tmp_path)
    sub = spec / "sub"
    out = run_script(
        f"""
        show()
        os.chmod({str(sub)!r}, {mode})
        show()
        os.remove({str(spec / "other" / "c.yaml")!r})   # really gone: removed
        show()
        os.chmod({str(sub)!r}, 0o755)
        os.remove({str(sub / "deeper" / "b.yaml")!r})   # gone, seen by a good read
        show()
        """,
        spec,
        NO_DAC,
    )
    assert out[0] == {"tasks": ["a", "b", "c", "top"], "errors": [], "dir_error": None}
    assert out[1]["tasks"] == ["a", "b", "c", "top"]
    assert out[1]["errors"], "the unreadable folder is reported"
    assert all("permission denied" in e for e in out[1]["errors"])
    assert out[2]["tasks"] == ["a", "b", "top"]
    assert out[3] == {"tasks": ["a", "top"], "errors": [], "dir_error": None}


@needs_setpriv
def test_unreadable_spec_directory_keeps_everything(tmp_path: Path) -> None:
    spec = tree(tmp_path)
    out = run_script(
        f"""
        show()
        os.chmod({str(spec)!r}, 0o311)
        show()
        """,
        spec,
        NO_DAC,
    )
    assert out[1]["tasks"] == ["a", "b", "c", "top"]
    assert out[1]["errors"] == [f"{spec}: permission denied"]


@needs_setpriv
def test_a_change_under_an_unreadable_folder_waits_for_a_good_read(tmp_path: Path) -> None:
    spec = tree(tmp_path)
    out = run_script(
        f"""
        show()
        os.chmod({str(spec / "sub")!r}, 0)
        with open({str(spec / "top.yaml")!r}, "a") as fh:
            fh.write("  suspend: true\\n")          # a file still readable is re-read
        show()
        os.chmod({str(spec / "sub")!r}, 0o755)
        show()
        """,
        spec,
        NO_DAC,
    )
    assert [o["tasks"] for o in out] == [["a", "b", "c", "top"]] * 3
    assert out[2]["errors"] == []


def test_emfile_removes_nothing(tmp_path: Path) -> None:
    # A real RLIMIT_NOFILE with every descriptor taken: the walk fails with EMFILE.
    spec = tree(tmp_path)
    out = run_script(
        f"""
        show()
        for path in {[str(p) for p in spec.rglob("*.yaml")]!r}:
            os.utime(path, None)        # every file changed: each is opened again
            with open(path, "a") as fh:
                fh.write("# touched\\n")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        held = []
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        show()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        show()
        """,
        spec,
    )
    assert [o["tasks"] for o in out] == [["a", "b", "c", "top"]] * 3
    assert out[1]["errors"], "EMFILE is reported"
    assert all("too many open files" in e for e in out[1]["errors"])
    assert out[2]["errors"] == []


@needs_setpriv
def test_a_file_that_cannot_be_opened_keeps_its_tasks(tmp_path: Path) -> None:
    spec = tree(tmp_path)
    out = run_script(
        f"""
        show()
        os.chmod({str(spec / "sub" / "a.yaml")!r}, 0)
        show()
        """,
        spec,
        NO_DAC,
    )
    assert out[1]["tasks"] == ["a", "b", "c", "top"]
    assert out[1]["errors"] == [f"{spec}/sub/a.yaml: cannot read: permission denied"]


def test_broken_symlink_folder_is_gone_not_unreadable(tmp_path: Path) -> None:
    # A good read that shows the folder's link dangling: its tasks go.
    spec = tmp_path / "spec"
    real = tmp_path / "real"
    write(real / "a.yaml", task_yaml("a"))
    write(spec / "top.yaml", task_yaml("top"))
    os.symlink(real, spec / "linked")
    out = run_script(
        f"""
        show()
        os.rename({str(real)!r}, {str(tmp_path / "moved")!r})
        show()
        """,
        spec,
    )
    assert out[0]["tasks"] == ["a", "top"]
    assert out[1]["tasks"] == ["top"]


@needs_setpriv
def test_daemon_in_unreadable_subfolder_keeps_running(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    sub = spec / "sub"
    sub.mkdir(mode=0o755)
    write_task(sub, "keeper", {"type": "daemon", "command": ["sleep", "1000"]})
    write_task(spec, "other", {"type": "daemon", "command": ["sleep", "1000"]})
    c = ControllerProc(spec, state, ["--watch", "poll"], wrapper=NO_DAC)
    controllers.append(c)
    started = c.wait_for("run.started", task="keeper")[0]
    c.wait_for("run.started", task="other")
    applied = len(c.find("spec.applied"))
    sub.chmod(0)
    c.signal(signal.SIGHUP)
    c.wait_for("spec.invalid", where=lambda e: "permission denied" in str(e.get("error", "")))
    # A second, unrelated change is applied while the folder stays unreadable.
    (spec / "other.json").unlink()
    c.wait_for("run.exited", task="other", timeout=30)
    wait_until(lambda: len(c.find("spec.applied")) > applied, what="a later apply")
    assert c.find("run.stopping", task="keeper") == []
    assert c.find("run.exited", task="keeper") == []
    assert pids_in_group(started["pid"]), "the daemon still runs"
    sub.chmod(0o755)
    c.stop()
