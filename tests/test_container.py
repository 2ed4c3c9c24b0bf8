"""The container image, built from the Dockerfile and run for real with podman.

Uses the tools beside the repository (`../shared/tools`): `container-base` builds a local
stand-in for `python:3.11-slim` once per machine, `podman-here` is podman with the
settings these machines need. Skips, saying why, where they cannot run (not root, no
tools, podman unusable)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parents[2] / "shared" / "tools"
PODMAN = TOOLS / "podman-here"
CONTAINER_BASE = TOOLS / "container-base"
# The Dockerfile's base as a short name: the official image if this machine has it,
# else the local stand-in container-base builds (localhost/python:3.11-slim).
BASE_IMAGE = "python:3.11-slim"
IMAGE = "localhost/reconciler:container-test"
STATE_DIR = "/var/lib/reconciler"

pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]

# The tasks every test container runs: a per-second cron task, a task leaving an orphaned
# grandchild behind (its shell exits at once, the `sleep` is reparented to PID 1), and a
# daemon that exits cleanly on SIGTERM.
SPECS = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: tick}
spec:
  schedule: "* * * * * *"
  command: ["echo", "tick"]
  timeoutSeconds: 10
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: orphan-maker}
spec:
  schedule: "*/2 * * * * *"
  command: "(sleep 1.5 &) ; exit 0"
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: worker}
spec:
  type: daemon
  command: "trap 'echo worker stopping; exit 0' TERM; while :; do sleep 1; done"
  terminationGracePeriodSeconds: 20
"""


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "container tests need Linux"
    if os.geteuid() != 0:
        return "container tests need root (podman-here and container-base run rootful podman)"
    for tool in (PODMAN, CONTAINER_BASE):
        if not os.access(tool, os.X_OK):
            return f"{tool} not found: the shared container tools sit beside the repository"
    if shutil.which("podman") is None and shutil.which("apt-get") is None:
        return "podman is not installed and apt-get is not there to install it"
    return None


def podman(
    *args: str, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(PODMAN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def _report(config: pytest.Config, line: str) -> None:
    """Print past pytest's output capture (timings of the one-off builds)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> str:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # pytest-xdist workers each set this fixture up: one installs and builds, the others
    # wait and then find podman, the base and the build cache ready.
    lock_path = os.path.join(tempfile.gettempdir(), "reconciler-container-test.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(request.config)


def _build(config: pytest.Config) -> str:
    started = time.monotonic()
    # podman-here installs podman and runc with apt-get where they are missing.
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=900)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {(info.stderr or info.stdout).strip()[-500:]}")
    t0 = time.monotonic()
    had_base = podman("image", "exists", BASE_IMAGE).returncode == 0
    if not had_base:
        base = subprocess.run([str(CONTAINER_BASE)], capture_output=True, text=True, timeout=900)
        if base.returncode != 0:
            pytest.skip(
                "could not build the python:3.11-slim stand-in (container-base): "
                + (base.stdout + base.stderr).strip()[-800:]
            )
    t1 = time.monotonic()
    podman("build", "--pull=never", "-t", IMAGE, str(REPO), timeout=900, check=True)
    t2 = time.monotonic()
    _report(
        config,
        f"container image: podman ready {t0 - started:.1f}s, base "
        f"{'present' if had_base else f'built in {t1 - t0:.1f}s'}, "
        f"image built in {t2 - t1:.1f}s",
    )
    return IMAGE


def _make_spec_dir(root: Path) -> Path:
    specs = root / "specs"
    specs.mkdir()
    (specs / "tasks.yaml").write_text(SPECS)
    # Readable by the image's user (uid 10001); nobody else may write.
    os.chmod(root, 0o755)
    os.chmod(specs, 0o755)
    os.chmod(specs / "tasks.yaml", 0o644)
    return specs


class Container:
    def __init__(self, image: str, specs: Path) -> None:
        self.name = f"reconciler-test-{uuid.uuid4().hex[:10]}"
        # --read-only: as readOnlyRootFilesystem in the manifests; the state VOLUME stays
        # writable. --network none: nothing here needs the network.
        podman(
            "run", "-d", "--name", self.name, "--read-only", "--network", "none",
            "-v", f"{specs}:/specs:ro", image,
            check=True,
        )  # fmt: skip

    def logs(self) -> list[dict[str, Any]]:
        out = podman("logs", self.name).stdout
        events = []
        for line in out.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "<not json>", "message": line})
        return events

    def find(self, event: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.logs()
            if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
        ]

    def wait_for(self, event: str, timeout: float = 60, **match: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(event, **match)
            if found:
                return found
            if time.monotonic() > deadline:
                tail = podman("logs", "--tail", "30", self.name)
                raise AssertionError(
                    f"no {event} {match} within {timeout}s; last log lines:\n"
                    + tail.stdout
                    + tail.stderr
                )
            time.sleep(0.5)

    def exec(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, timeout=timeout)

    def state(self) -> dict[str, Any]:
        out = podman("inspect", "--format", "{{json .State}}", self.name, check=True).stdout
        return dict(json.loads(out))

    def remove(self) -> None:
        podman("rm", "-f", "-v", "-t", "0", self.name, timeout=120)


@pytest.fixture
def start_container(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Container]]:
    started: list[Container] = []

    def start() -> Container:
        specs = _make_spec_dir(tmp_path_factory.mktemp("container"))
        box = Container(image, specs)
        started.append(box)
        box.wait_for("spec.applied", timeout=60)
        return box

    try:
        yield start
    finally:
        for box in started:
            box.remove()


@pytest.fixture(scope="module")
def running(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """One container shared by the read-only checks below."""
    specs = _make_spec_dir(tmp_path_factory.mktemp("container"))
    box = Container(image, specs)
    try:
        box.wait_for("spec.applied", timeout=60)
        yield box
    finally:
        box.remove()


PROC_SCAN = """
import json, os
out = []
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        data = open(f"/proc/{pid}/stat", "rb").read()
    except OSError:
        continue
    comm = data[data.index(b"(") + 1 : data.rindex(b")")].decode()
    state, ppid = data[data.rindex(b")") + 2 :].split()[:2]
    out.append([int(pid), state.decode(), int(ppid), comm])
print(json.dumps(out))
"""


def scan_processes(box: Container) -> list[tuple[int, str, int, str]]:
    result = box.exec("python3", "-c", PROC_SCAN)
    assert result.returncode == 0, result.stderr
    return [tuple(p) for p in json.loads(result.stdout)]  # type: ignore[misc]


# --- the image --------------------------------------------------------------------------


def image_config(image: str) -> dict[str, Any]:
    data = json.loads(podman("image", "inspect", image, check=True).stdout)[0]
    config = dict(data["Config"])
    # podman shows the health check beside Config, docker inside it.
    config.setdefault("Healthcheck", data.get("Healthcheck"))
    return config


def test_image_metadata(image: str) -> None:
    config = image_config(image)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["reconciler"]
    assert config["Cmd"][:2] == ["apply", "/specs"]
    assert "9100/tcp" in config["ExposedPorts"]
    assert STATE_DIR in config["Volumes"]
    assert f"RECONCILER_STATE_DIR={STATE_DIR}" in config["Env"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])


def test_image_stays_small(image: str) -> None:
    def size(ref: str) -> int:
        out = podman("image", "inspect", "--format", "{{.Size}}", ref, check=True).stdout
        return int(out.strip())

    added = size(image) - size(BASE_IMAGE)
    # The package and its dependencies: about 21 MB. A build context that let in the
    # virtualenv, .git or caches would add far more.
    assert added < 60_000_000, f"the image adds {added / 1e6:.0f} MB to its base"


def test_installed_as_a_package_not_from_the_source_tree(running: Container) -> None:
    result = running.exec("python3", "-c", "import reconciler, sys; print(reconciler.__file__)")
    assert result.returncode == 0, result.stderr
    assert "site-packages" in result.stdout or "dist-packages" in result.stdout
    assert running.exec("test", "-e", "/tmp/reconciler-src").returncode != 0


# --- a running container ----------------------------------------------------------------


def test_controller_is_pid_1_and_not_root(running: Container) -> None:
    status = running.exec("cat", "/proc/1/status")
    assert status.returncode == 0, status.stderr
    fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["10001"] * 4
    assert fields["Gid"].split() == ["10001"] * 4
    cmdline = running.exec("cat", "/proc/1/cmdline").stdout.split("\0")
    assert "apply" in cmdline and "/specs" in cmdline
    assert any(part.endswith("reconciler") for part in cmdline)
    # `podman exec` runs as the image's user too.
    assert running.exec("id", "-u").stdout.strip() == "10001"


def test_task_from_mounted_spec_dir_runs(running: Container) -> None:
    running.wait_for("run.exited", task="tick", outcome="succeeded", exit_code=0)
    assert running.find("run.output", task="tick", message="tick")
    running.wait_for("run.started", task="worker", type="daemon")


def test_state_dir_is_private_to_the_controller(running: Container) -> None:
    result = running.exec("stat", "-c", "%a %u %g", STATE_DIR)
    assert result.stdout.split() == ["700", "10001", "10001"], result.stdout + result.stderr
    listing = running.exec("ls", STATE_DIR)
    assert "controller.json" in listing.stdout.split(), listing.stdout
    status = running.exec("reconciler", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "running, pid 1" in status.stdout


def test_orphaned_grandchildren_are_reaped(running: Container) -> None:
    # Proof the scenario happens: a `sleep` whose parent shell has exited, now a child
    # of PID 1.
    deadline = time.monotonic() + 30
    while not any(
        comm == "sleep" and ppid == 1 and state != "Z"
        for _, state, ppid, comm in scan_processes(running)
    ):
        assert time.monotonic() < deadline, "no orphaned sleep was reparented to PID 1"
        time.sleep(0.3)
    running.wait_for("run.exited", task="orphan-maker", outcome="succeeded")

    # Over several orphan generations no zombie lingers: a zombie may exist for an
    # instant between a child's exit and PID 1's wait, never across two scans 1.5 s apart.
    previous: set[int] = set()
    for _ in range(6):
        zombies = {pid for pid, state, _, _ in scan_processes(running) if state == "Z"}
        lingering = zombies & previous
        assert not lingering, f"zombies not reaped: {sorted(lingering)}"
        previous = zombies
        time.sleep(1.5)
    assert running.state()["Running"] is True


def test_healthcheck_passes(running: Container) -> None:
    result = podman("healthcheck", "run", running.name, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same command, run as Docker would run it.
    kind, *argv = image_config(IMAGE)["Healthcheck"]["Test"]
    assert kind == "CMD"
    direct = running.exec(*argv)
    assert direct.returncode == 0, direct.stdout + direct.stderr


def test_sigterm_stops_runs_gracefully_and_exits_0(
    start_container: Callable[[], Container],
) -> None:
    box = start_container()
    box.wait_for("run.started", task="worker")
    box.wait_for("run.exited", task="tick")

    t0 = time.monotonic()
    stop = podman("stop", "-t", "40", box.name, timeout=120)
    took = time.monotonic() - t0
    assert stop.returncode == 0, stop.stdout + stop.stderr

    state = box.state()
    assert state["Running"] is False
    assert state["ExitCode"] == 0, state
    # Well within the 40 s grace: the controller stopped by itself, it was not killed.
    assert took < 30, f"podman stop took {took:.1f}s"
    worker = box.find("run.exited", task="worker")
    assert worker and worker[-1]["outcome"] == "stopped" and worker[-1]["exit_code"] == 0
    assert box.find("run.output", task="worker", message="worker stopping")
    stopped = box.find("controller.stopped")
    assert stopped and stopped[-1]["runs_left"] == 0
