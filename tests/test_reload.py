"""Live reload: inotify and poll watches, editor and ConfigMap patterns, bad edits, a vanished dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from controller_harness import ControllerProc, start, wait_until, write_task


def applied(c: ControllerProc, **match: object) -> list[dict]:
    return c.find("spec.applied", **match)


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_add_change_remove_are_applied(dirs, controllers, watch: str) -> None:
    spec = dirs[0]
    c = start(controllers, dirs, "--watch", watch)
    timeout = 20 if watch == "poll" else 10
    write_task(spec, "a", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["added"] == ["a"], timeout=timeout)
    write_task(spec, "a", {"schedule": "@every 2h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["a"], timeout=timeout)
    (spec / "a.json").unlink()
    c.wait_for("spec.applied", where=lambda e: e["removed"] == ["a"], timeout=timeout)
    assert c.stop() == 0


def test_new_subfolder_is_watched(dirs, controllers) -> None:
    c = start(controllers, dirs)
    sub = dirs[0] / "team" / "deep"
    sub.mkdir(parents=True)
    time.sleep(0.3)  # let the new folder's watch be added before the file arrives
    write_task(sub, "nested", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["added"] == ["nested"], timeout=10)
    assert c.stop() == 0


def test_editor_save_pattern_is_one_apply(dirs, controllers) -> None:
    spec = dirs[0]
    write_task(spec, "a", {"schedule": "@every 1h", "command": ["true"]}, filename="a.yaml")
    c = start(controllers, dirs)
    # vim: write a swap file, write a backup, rename the new file over, remove the rest.
    (spec / ".a.yaml.swp").write_text("garbage")
    (spec / "a.yaml~").write_text("garbage")
    tmp = spec / "4913"
    tmp.write_text("")
    tmp.unlink()
    new = spec / "a.yaml.tmp"
    new.write_text(
        '{"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": "a"},'
        ' "spec": {"schedule": "@every 3h", "command": ["true"]}}'
    )
    os.rename(new, spec / "a.yaml")
    (spec / ".a.yaml.swp").unlink()
    (spec / "a.yaml~").unlink()
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["a"], timeout=10)
    time.sleep(1.0)
    assert len(applied(c)) == 2  # the initial one and exactly one for the save
    assert not c.find("spec.invalid")
    assert c.stop() == 0


def test_configmap_symlink_swap(dirs, controllers) -> None:
    spec = dirs[0]

    def publish(version: str, schedule: str) -> None:
        data = spec / f"..{version}"
        data.mkdir()
        write_task(data, "cm", {"schedule": schedule, "command": ["true"]}, filename="cm.yaml")
        link = spec / "..data_tmp"
        os.symlink(data.name, link)
        os.rename(link, spec / "..data")  # the atomic swap kubelet does

    publish("2026_01_01_00_00_00.1", "@every 1h")
    os.symlink("..data/cm.yaml", spec / "cm.yaml")
    c = start(controllers, dirs)
    assert applied(c)[0]["added"] == ["cm"]
    publish("2026_01_01_00_01_00.2", "@every 2h")
    shutil.rmtree(spec / "..2026_01_01_00_00_00.1")
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["cm"], timeout=10)
    assert not c.find("spec.invalid")
    assert c.stop() == 0


def test_bad_edit_keeps_last_good_then_fix_applies(dirs, controllers, tmp_path: Path) -> None:
    spec = dirs[0]
    out = tmp_path / "out"
    write_task(spec, "keep", {"schedule": "* * * * * *", "command": ["sh", "-c", f"echo 1 >> {out}"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="keep")
    (spec / "keep.json").write_text('{"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": "keep"}, "spec": {"schedule": "61 * * * * *", "command": ["true"]}}')
    bad = c.wait_for("spec.invalid", timeout=10)[0]
    assert bad["file"].endswith("keep.json")
    assert "keep" in bad["error"] and "spec.schedule" in bad["error"]
    n = len(c.find("run.exited", task="keep"))
    c.wait_for("run.exited", task="keep", count=n + 2)  # still running as before
    # The error stands; a re-read of an unchanged bad file does not log it again.
    c.signal(signal.SIGHUP)
    time.sleep(1.5)
    assert len(c.find("spec.invalid")) == 1
    write_task(spec, "keep", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["keep"], timeout=10)
    assert c.stop() == 0


def test_vanished_spec_dir_stops_nothing_and_return_is_applied(dirs, controllers, tmp_path: Path) -> None:
    spec = dirs[0]
    write_task(spec, "d", {"type": "daemon", "command": ["sleep", "1000"]})
    c = start(controllers, dirs)
    started = c.wait_for("run.started", task="d")[0]
    moved = tmp_path / "moved"
    os.rename(spec, moved)
    err = c.wait_for("spec.invalid", timeout=10)[0]
    assert "does not exist" in err["error"]
    time.sleep(1.5)
    assert not c.find("run.exited", task="d")
    assert not c.find("spec.applied", where=lambda e: e["removed"])
    os.rename(moved, spec)
    write_task(spec, "e", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: "e" in e["added"], timeout=15)
    assert not c.find("run.exited", task="d")
    assert c.stop() == 0
    assert c.find("run.exited", task="d")[0]["run_id"] == started["run_id"]


def test_reload_never_disturbs_runs_in_flight(dirs, controllers, tmp_path: Path) -> None:
    spec = dirs[0]
    marker = tmp_path / "done"
    write_task(spec, "long", {"schedule": "@every 1h", "command": ["sh", "-c", f"sleep 3; echo ok > {marker}"]})
    c = start(controllers, dirs)
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "long", "--state-dir", str(dirs[1])],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 0, res.stderr
    c.wait_for("run.started", task="long")
    (spec / "long.json").unlink()  # removed while running
    c.wait_for("spec.applied", where=lambda e: e["removed"] == ["long"], timeout=10)
    ex = c.wait_for("run.exited", task="long", timeout=20)[0]
    assert ex["outcome"] == "succeeded"
    assert marker.read_text() == "ok\n"
    assert c.stop() == 0


def test_daemon_change_restarts_and_metadata_change_does_not(dirs, controllers) -> None:
    spec = dirs[0]
    write_task(spec, "d", {"type": "daemon", "command": ["sleep", "1000"]})
    c = start(controllers, dirs)
    first = c.wait_for("run.started", task="d")[0]
    # Metadata only: labels. Nothing happens to the process.
    path = spec / "d.json"
    import json

    doc = json.loads(path.read_text())
    doc["metadata"]["labels"] = {"team": "x"}
    tmp = spec / ".d.new"
    tmp.write_text(json.dumps(doc))
    os.rename(tmp, path)
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["d"], timeout=10)
    time.sleep(1.5)
    assert len(c.find("run.started", task="d")) == 1
    # A process-relevant change: a graceful restart.
    write_task(spec, "d", {"type": "daemon", "command": ["sleep", "999"]})
    ex = c.wait_for("run.exited", task="d", timeout=15)[0]
    assert ex["run_id"] == first["run_id"] and ex["outcome"] == "stopped"
    second = c.wait_for("run.started", task="d", count=2, timeout=15)[1]
    assert second["run_id"] != first["run_id"]
    # Removing the daemon stops it.
    path.unlink()
    c.wait_for("run.exited", task="d", count=2, timeout=15)
    assert c.stop() == 0


def test_reload_storm(dirs, controllers, tmp_path: Path) -> None:
    spec = dirs[0]
    out = tmp_path / "runs"
    out.mkdir()
    write_task(spec, "busy", {"schedule": "* * * * * *", "maxConcurrency": 5,
                              "command": ["sh", "-c", f"sleep 2; touch {out}/$$"]})
    c = start(controllers, dirs)
    c.wait_for("run.started", task="busy")
    deadline = time.monotonic() + 5
    i = 0
    while time.monotonic() < deadline and i < 200:
        write_task(spec, f"s{i % 7}", {"schedule": f"@every {i + 1}h", "command": ["true"]})
        if i % 3 == 0:
            # Rewrite the busy task too (same content): runs in flight must not notice.
            write_task(spec, "busy", {"schedule": "* * * * * *", "maxConcurrency": 5,
                                      "command": ["sh", "-c", f"sleep 2; touch {out}/$$"]})
        i += 1
        time.sleep(0.025)
    # Settled: the final set is in force once the storm is over.
    import json

    def final_applied() -> bool:
        try:
            state = json.loads((dirs[1] / "applied.json").read_text())
        except (OSError, ValueError):
            return False
        last = {f"s{k}": f"@every {k + 1 + 7 * ((i - 1 - k) // 7)}h" for k in range(min(i, 7))}
        return set(state) == {"busy"} | set(last) and all(
            state[n]["document"]["spec"]["schedule"] == sch for n, sch in last.items()
        )

    wait_until(final_applied, 15, "the final task set applied")
    time.sleep(3)
    assert c.stop() == 0
    exits = c.find("run.exited", task="busy")
    stopped = [e for e in exits if e["outcome"] != "succeeded"]
    # Only the runs still alive at shutdown may be stopped.
    assert all(e["outcome"] == "stopped" for e in stopped)
    assert len([e for e in exits if e["outcome"] == "succeeded"]) >= 3


def test_git_checkout_is_applied(dirs, controllers) -> None:
    spec = dirs[0]

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(spec), *args], check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})

    git("init", "-q", "-b", "main")
    for i in range(20):
        write_task(spec, f"t{i}", {"schedule": "@every 1h", "command": ["true"]})
    git("add", "-A")
    git("commit", "-qm", "one")
    git("checkout", "-qb", "two")
    for i in range(20):
        write_task(spec, f"t{i}", {"schedule": "@every 2h", "command": ["true"]})
    (spec / "t19.json").unlink()
    write_task(spec, "extra", {"schedule": "@every 1h", "command": ["true"]})
    git("add", "-A")
    git("commit", "-qm", "two")
    git("checkout", "-q", "main")
    c = start(controllers, dirs)
    assert len(applied(c)[0]["added"]) == 20
    git("checkout", "-q", "two")
    done = c.wait_for(
        "spec.applied",
        where=lambda e: "extra" in e["added"] or "extra" in e.get("changed", []),
        timeout=10,
    )[0]
    time.sleep(1.0)
    # One settled change: everything in one spec.applied (the .git folder is ignored).
    assert done["removed"] == ["t19"]
    assert sorted(done["changed"]) == sorted(f"t{i}" for i in range(19))
    assert len(applied(c)) == 2
    assert c.stop() == 0


def test_spec_dir_symlink_swap_is_followed(tmp_path: Path, controllers) -> None:
    """The spec directory is a link swapped to new checkouts (git-sync); edits inside the
    new target are seen, not only the swap."""
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for d in (v1, v2):
        d.mkdir()
        os.chmod(d, 0o755)
    write_task(v1, "a", {"schedule": "@every 1h", "command": ["true"]})
    write_task(v2, "a", {"schedule": "@every 2h", "command": ["true"]})
    link = tmp_path / "current"
    os.symlink(v1, link)
    c = start(controllers, (link, tmp_path / "state"))
    tmp_link = tmp_path / "current.new"
    os.symlink(v2, tmp_link)
    os.rename(tmp_link, link)
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["a"], timeout=10)
    write_task(v2, "b", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["added"] == ["b"], timeout=10)
    assert c.stop() == 0


def test_duplicate_name_error_stands_until_fixed(dirs, controllers) -> None:
    import json

    spec = dirs[0]
    write_task(spec, "x", {"schedule": "@every 1h", "command": ["true"]}, filename="a.json")
    c = start(controllers, dirs)
    write_task(spec, "x", {"schedule": "@every 2h", "command": ["true"]}, filename="b.json")
    c.wait_for("spec.invalid", timeout=10)

    def errors() -> list:
        return json.loads((dirs[1] / "status.json").read_text())["spec_errors"]

    wait_until(lambda: len(errors()) == 1, 10)
    c.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert len(errors()) == 1 and "also defined" in errors()[0]["message"]
    assert len(c.find("spec.invalid")) == 1
    (spec / "b.json").unlink()
    wait_until(lambda: errors() == [], 10)
    assert c.stop() == 0
