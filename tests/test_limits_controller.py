"""`resources` through the whole controller: the limits reach the run, an OOM kill is
reported, and a controller that cannot enforce a limit says so (spec.invalid, status)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from controller_harness import ControllerProc, write_task

from reconciler.supervisor import cgroups as cg


def test_limits_reach_the_run(dirs, controllers) -> None:
    spec, state = dirs
    if "pids" in cg.support().why_not:
        pytest.skip(f"no usable pids cgroup: {cg.support().why_not['pids']}")
    write_task(
        spec,
        "limited",
        {
            "schedule": "* * * * * *",
            "command": "ulimit -n; grep pids /proc/self/cgroup",
            "resources": {"openFilesMax": 123, "processesMax": 20},
        },
    )
    c = ControllerProc(spec, state)
    controllers.append(c)
    run_id = c.wait_for("run.exited", task="limited")[0]["run_id"]
    lines = [e["message"] for e in c.find("run.output", run_id=run_id)]
    assert lines[0] == "123"
    assert f"/{cg.BASE_NAME}/" in lines[1] and lines[1].endswith(run_id)
    assert c.stop() == 0


def test_oom_killed_run_is_reported_and_the_controller_lives(dirs, controllers) -> None:
    spec, state = dirs
    if "memory" in cg.support().why_not:
        pytest.skip(f"no usable memory cgroup: {cg.support().why_not['memory']}")
    write_task(
        spec,
        "hog",
        {
            "schedule": "* * * * * *",
            "command": [sys.executable, "-c", "b = bytearray(b'x') * (300 << 20)"],
            "resources": {"memoryMax": "64Mi"},
        },
    )
    c = ControllerProc(spec, state)
    controllers.append(c)
    ended = c.wait_for("run.exited", task="hog")[0]
    assert ended["signal"] == "SIGKILL"
    assert ended["outcome"] == "oom-killed"
    assert c.proc.poll() is None
    assert c.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a controller as nobody")
def test_non_root_controller_cannot_enforce_cgroup_limits(controllers) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    import pwd
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="reconciler-nobody-"))
    os.chmod(base, 0o755)
    spec = base / "specs"
    spec.mkdir(mode=0o755)
    state = base / "state"
    state.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    write_task(
        spec,
        "capped",
        {"schedule": "* * * * * *", "command": ["true"], "resources": {"memoryMax": "64Mi"}},
    )
    write_task(
        spec,
        "files",
        {"schedule": "* * * * * *", "command": ["true"], "resources": {"openFilesMax": 64}},
    )
    wrapper = ["setpriv", "--reuid", "nobody", "--regid", str(nobody.pw_gid), "--clear-groups"]
    c = ControllerProc(spec, state, wrapper=wrapper, env={"HOME": "/nonexistent"})
    controllers.append(c)
    try:
        err = c.wait_for("spec.invalid", task="capped")[0]
        assert "spec.resources.memoryMax: cannot be enforced here" in err["error"], err
        failed = c.wait_for("run.exited", task="capped")[0]
        assert failed["outcome"] == "failed" and "memoryMax: cannot be enforced" in failed["error"]
        # openFilesMax (lowering RLIMIT_NOFILE) needs no privilege.
        ok = c.wait_for("run.exited", task="files")[0]
        assert ok["outcome"] == "succeeded"
        assert not c.find("spec.invalid", task="files")
        status = subprocess.run(
            [*wrapper, sys.executable, "-m", "reconciler", "status", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "HOME": "/nonexistent"},
        )
        assert "spec.resources.memoryMax" in status.stdout + status.stderr
        assert c.stop() == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)
