"""The deploy files (Kubernetes manifests, systemd units, Dockerfile) agree with the
controller and with each other: they parse, their arguments are ones `reconciler apply`
accepts, containers share the volumes they must, example tasks validate, and the git-sync
layout the DaemonSet relies on is followed by a real controller."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_harness import ControllerProc, write_task

from reconciler.cli import build_parser
from reconciler.obs import parse_http_addr

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
DEFAULT_TASK_GRACE = 30  # terminationGracePeriodSeconds of a task that sets none


# --- helpers ----------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no documents"
    for doc in docs:
        assert isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc, doc
    return docs


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in pod["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name!r} in {[c['name'] for c in pod['containers']]}"
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in c.get("env", [])}


def mounts_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in c.get("volumeMounts", [])}


def parse_apply(argv: list[str]) -> Any:
    """Parse a `reconciler ...` argument list with the real CLI parser."""
    try:
        ns = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports usage errors by exiting
        raise AssertionError(f"`reconciler {shlex.join(argv)}` is rejected by the CLI") from exc
    assert ns.command == "apply", argv
    return ns


def http_port(ns: Any) -> int:
    assert ns.http, "no --http: probes and scraping need it"
    return parse_http_addr(ns.http)[1]


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    assert port in named, f"probe port {port!r} is not a named port of {c['name']}"
    return int(named[port])


def max_task_grace(docs: list[dict[str, Any]]) -> int:
    return max(
        int(d["spec"].get("terminationGracePeriodSeconds", DEFAULT_TASK_GRACE)) for d in docs
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_values(word: str) -> list[str]:
    return [rest for w, rest in dockerfile_instructions() if w == word]


# --- Kubernetes: DaemonSet with git-sync --------------------------------------------------


@pytest.fixture(scope="module")
def daemonset_docs() -> list[dict[str, Any]]:
    return load_docs(K8S / "daemonset.yaml")


@pytest.fixture(scope="module")
def ds_pod(daemonset_docs: list[dict[str, Any]]) -> dict[str, Any]:
    ds = only(daemonset_docs, "DaemonSet")
    assert ds["apiVersion"] == "apps/v1"
    template = ds["spec"]["template"]
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    return template["spec"]


def test_daemonset_reconciler_container(ds_pod: dict[str, Any]) -> None:
    rc = container(ds_pod, "reconciler")
    ns = parse_apply(rc["args"])
    port = http_port(ns)
    assert parse_http_addr(ns.http)[0] == "0.0.0.0"  # scraped over the pod network
    assert {p["containerPort"] for p in rc["ports"]} == {port}

    env = env_of(rc)
    assert env["RECONCILER_HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["RECONCILER_HOSTNAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"

    live, ready = rc["livenessProbe"]["httpGet"], rc["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and ready["path"] == "/readyz"
    assert port_number(rc, live["port"]) == port == port_number(rc, ready["port"])

    assert rc["resources"]["requests"]["cpu"] and rc["resources"]["limits"]["memory"]
    sc = rc["securityContext"]
    assert sc["runAsUser"] == 10001 and sc["allowPrivilegeEscalation"] is False
    assert ds_pod["securityContext"]["runAsNonRoot"] is True


def test_daemonset_pod_settings(
    daemonset_docs: list[dict[str, Any]], ds_pod: dict[str, Any]
) -> None:
    assert ds_pod.get("hostPID", False) is False
    assert ds_pod.get("shareProcessNamespace", False) is False
    # Above the default task grace period, with room for the controller to finish.
    assert ds_pod["terminationGracePeriodSeconds"] >= 2 * DEFAULT_TASK_GRACE

    ds = only(daemonset_docs, "DaemonSet")
    notes = ds["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/path"] == "/metrics"
    rc = container(ds_pod, "reconciler")
    assert int(notes["prometheus.io/port"]) == http_port(parse_apply(rc["args"]))

    sa = only(daemonset_docs, "ServiceAccount")
    assert ds_pod["serviceAccountName"] == sa["metadata"]["name"]
    assert ds_pod["automountServiceAccountToken"] is False


def git_sync_flags(c: dict[str, Any]) -> dict[str, str]:
    flags = {}
    for arg in c["args"]:
        assert arg.startswith("--") and "=" in arg, arg
        key, _, value = arg[2:].partition("=")
        flags[key] = value
    return flags


def test_daemonset_git_sync_shares_the_spec_volume(ds_pod: dict[str, Any]) -> None:
    rc, gs = container(ds_pod, "reconciler"), container(ds_pod, "git-sync")
    assert re.fullmatch(r"registry\.k8s\.io/git-sync/git-sync:v4\.\d+\.\d+", gs["image"])
    flags = git_sync_flags(gs)
    for key in ("repo", "root", "link", "period"):
        assert flags.get(key), f"git-sync --{key} is missing"

    volumes = {v["name"]: v for v in ds_pod["volumes"]}
    rc_mounts, gs_mounts = mounts_of(rc), mounts_of(gs)
    shared = set(rc_mounts) & set(gs_mounts)
    assert len(shared) == 1, f"expected one volume shared by both containers, got {shared}"
    (name,) = shared
    assert "emptyDir" in volumes[name]
    assert rc_mounts[name]["readOnly"] is True and not gs_mounts[name].get("readOnly")
    # Same path in both containers, so the link resolves alike in each.
    assert rc_mounts[name]["mountPath"] == gs_mounts[name]["mountPath"] == flags["root"]

    # The controller applies the link git-sync swaps, not the root (or a worktree).
    ns = parse_apply(rc["args"])
    assert Path(ns.spec_dir) == Path(flags["root"]) / flags["link"]


def test_daemonset_state_dir_is_a_private_subdirectory_of_a_volume(ds_pod: dict[str, Any]) -> None:
    rc = container(ds_pod, "reconciler")
    state = Path(env_of(rc)["RECONCILER_STATE_DIR"]["value"])
    volumes = {v["name"]: v for v in ds_pod["volumes"]}
    holders = [m for m in rc["volumeMounts"] if state.is_relative_to(m["mountPath"])]
    assert len(holders) == 1, "the state directory must be on a volume"
    mount = holders[0]
    # An emptyDir's top directory is world-writable, which the controller refuses.
    assert state != Path(mount["mountPath"])
    assert not mount.get("readOnly")
    assert "emptyDir" in volumes[mount["name"]] or "hostPath" in volumes[mount["name"]]
    # Every mount of every container names a volume of the pod.
    for c in ds_pod["containers"]:
        assert set(mounts_of(c)) <= set(volumes), c["name"]


# --- Kubernetes: sidecar with a ConfigMap -------------------------------------------------


@pytest.fixture(scope="module")
def sidecar_docs() -> list[dict[str, Any]]:
    return load_docs(K8S / "sidecar.yaml")


def configmap_tasks(docs: list[dict[str, Any]]) -> dict[str, str]:
    data = only(docs, "ConfigMap")["data"]
    assert data, "the ConfigMap holds no task"
    return data


def test_sidecar_deployment(sidecar_docs: list[dict[str, Any]]) -> None:
    deploy = only(sidecar_docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= (
        deploy["spec"]["template"]["metadata"]["labels"].items()
    )
    assert len(pod["containers"]) >= 2
    rc = container(pod, "reconciler")
    apps = [c for c in pod["containers"] if c is not rc]
    assert pod["shareProcessNamespace"] is False

    ns = parse_apply(rc["args"])
    port = http_port(ns)
    live = rc["livenessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and port_number(rc, live["port"]) == port

    volumes = {v["name"]: v for v in pod["volumes"]}
    cm = only(sidecar_docs, "ConfigMap")
    rc_mounts = mounts_of(rc)
    spec_mounts = [m for m in rc_mounts.values() if m["mountPath"] == ns.spec_dir]
    assert len(spec_mounts) == 1, "the spec directory must be the ConfigMap's mount"
    spec_volume = volumes[spec_mounts[0]["name"]]
    assert spec_volume["configMap"]["name"] == cm["metadata"]["name"]
    assert spec_mounts[0]["readOnly"] is True
    # No subPath: only a whole-volume mount gets the kubelet's `..data` swaps on edits.
    assert "subPath" not in spec_mounts[0]

    # A working volume shared by the app and the tasks.
    shared = {name for a in apps for name in mounts_of(a)} & set(rc_mounts)
    assert shared, "the app and the reconciler share no volume"

    tasks = [yaml.safe_load(text) for text in configmap_tasks(sidecar_docs).values()]
    assert pod["terminationGracePeriodSeconds"] > max_task_grace(tasks)

    state = Path(env_of(rc)["RECONCILER_STATE_DIR"]["value"])
    holders = [m for m in rc["volumeMounts"] if state.is_relative_to(m["mountPath"])]
    assert len(holders) == 1 and state != Path(holders[0]["mountPath"])


def run_validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_configmap_tasks_validate(sidecar_docs: list[dict[str, Any]], tmp_path: Path) -> None:
    data = configmap_tasks(sidecar_docs)
    for key, text in data.items():
        (tmp_path / key).write_text(text)
        os.chmod(tmp_path / key, 0o644)
    result = run_validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(data)} task" in result.stdout


def test_configmap_tasks_validate_in_the_kubelet_layout(
    sidecar_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """As mounted: `name.yaml -> ..data/name.yaml`, `..data -> ..<timestamp>/`."""
    data = configmap_tasks(sidecar_docs)
    mount = tmp_path / "specs"
    stamp = mount / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, text in data.items():
        (stamp / key).write_text(text)
        os.chmod(stamp / key, 0o644)
    os.symlink(stamp.name, mount / "..data")
    for key in data:
        os.symlink(f"..data/{key}", mount / key)
    os.chmod(mount, 0o755)
    result = run_validate(mount)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each task once: the timestamped folder is not read a second time.
    assert f"{len(data)} task" in result.stdout


# --- the git-sync layout, followed by a real controller -------------------------------------


def _publish(root: Path, link: str, worktree: str) -> None:
    """What git-sync does: point a new link at the worktree, rename it over the old one."""
    tmp = root / f".{link}.tmp"
    os.symlink(f".worktrees/{worktree}", tmp)
    os.rename(tmp, root / link)


@pytest.mark.timeout(90)
def test_controller_follows_git_sync_link_swaps(ds_pod: dict[str, Any], tmp_path: Path) -> None:
    flags = git_sync_flags(container(ds_pod, "git-sync"))
    root = tmp_path / "specs"  # stands for --root
    (root / ".worktrees" / "aaa").mkdir(parents=True)
    (root / ".worktrees" / "bbb").mkdir(parents=True)
    (root / ".git").mkdir()
    for tree, name in (("aaa", "first"), ("bbb", "second")):
        write_task(root / ".worktrees" / tree, name, {"schedule": "@daily", "command": ["true"]})
    spec_dir = root / flags["link"]

    ctl = ControllerProc(spec_dir, tmp_path / "state")
    try:
        # Before the first sync the link does not exist: reported, nothing applied.
        ctl.wait_for("spec.invalid", timeout=30, file=str(spec_dir))
        assert not ctl.find("spec.applied")
        _publish(root, flags["link"], "aaa")
        ctl.wait_for("spec.applied", timeout=30, added=["first"])
        _publish(root, flags["link"], "bbb")
        shutil.rmtree(root / ".worktrees" / "aaa")  # git-sync removes the old worktree
        ctl.wait_for("spec.applied", timeout=30, added=["second"], removed=["first"])
        time.sleep(1.5)  # the old worktree's removal changes nothing more
        applied = ctl.find("spec.applied")
        assert [e["added"] for e in applied] == [["first"], ["second"]]
    finally:
        assert ctl.stop() == 0


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_contract() -> None:
    assert dockerfile_values("FROM") == ["python:3.11-slim"]
    runs = " ".join(dockerfile_values("RUN"))
    # The package itself (with the etcd extra for fleet coordination), never editable.
    assert re.search(r'pip install --no-cache-dir "?\.(\[[a-z,]+\])?"?', runs), runs
    assert " -e " not in f" {runs} "
    assert "tini" not in (REPO / "Dockerfile").read_text()  # the controller reaps itself

    (user,) = dockerfile_values("USER")
    assert user.split(":")[0] == "10001"  # numeric: runAsNonRoot can check it

    env = " ".join(dockerfile_values("ENV"))
    state = re.search(r"RECONCILER_STATE_DIR=(\S+)", env)
    assert state, "RECONCILER_STATE_DIR is not set"
    volumes = [v for value in dockerfile_values("VOLUME") for v in json.loads(value)]
    assert state.group(1) in volumes
    assert re.search(rf"install -d -o 10001 -g 10001 -m 0700 {re.escape(state.group(1))}", runs)

    assert json.loads(dockerfile_values("ENTRYPOINT")[0]) == ["reconciler"]
    ns = parse_apply(json.loads(dockerfile_values("CMD")[0]))
    assert ns.spec_dir == "/specs"
    assert dockerfile_values("EXPOSE") == [str(http_port(ns))]

    (health,) = dockerfile_values("HEALTHCHECK")
    assert f"127.0.0.1:{http_port(ns)}/healthz" in health


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything is excluded, then only what `pip install .` needs is let back in.
    assert lines[0] == "*"
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert let_in == {"pyproject.toml", "README.md", "reconciler"}
    copied = " ".join(dockerfile_values("COPY"))
    for name in let_in:
        assert name in copied


# --- systemd --------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """systemd's unit syntax: sections of KEY=VALUE lines; keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def value(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = [v for k, v in sections.get(section, []) if k == key]
    assert len(found) == 1, f"[{section}] {key}: expected once, found {found}"
    return found[0]


def keys(sections: dict[str, list[tuple[str, str]]], section: str) -> set[str]:
    return {k for k, _ in sections.get(section, [])}


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*(s|sec|min)?", text)
    assert m, text
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


UNITS = ["reconciler.service", "reconciler-specs-pull.service", "reconciler-specs-pull.timer"]


def test_reconciler_service() -> None:
    unit = parse_unit(DEPLOY / "reconciler.service")
    argv = shlex.split(value(unit, "Service", "ExecStart"))
    assert argv[0] == "/usr/local/bin/reconciler"
    ns = parse_apply(argv[1:])
    assert ns.spec_dir == "/etc/reconciler/specs"
    assert parse_http_addr(ns.http)[0] == "127.0.0.1"  # metrics on localhost only

    assert value(unit, "Service", "KillMode") == "mixed"
    assert value(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert seconds(value(unit, "Service", "TimeoutStopSec")) >= 2 * DEFAULT_TASK_GRACE
    assert value(unit, "Service", "Restart") == "always"
    assert value(unit, "Service", "StateDirectory") == "reconciler"
    assert value(unit, "Service", "StateDirectoryMode") == "0700"
    assert value(unit, "Service", "Environment") == "RECONCILER_STATE_DIR=/var/lib/reconciler"
    assert value(unit, "Install", "WantedBy") == "multi-user.target"
    # Sandboxing every task would inherit, which breaks tasks as root or as other users.
    breaking = {
        "User", "DynamicUser", "NoNewPrivileges", "ProtectSystem", "ProtectHome",
        "PrivateTmp", "CapabilityBoundingSet", "PrivateDevices", "RestrictSUIDSGID",
        "SystemCallFilter", "MemoryDenyWriteExecute", "ReadOnlyPaths",
    }  # fmt: skip
    assert not keys(unit, "Service") & breaking


def test_spec_pull_units() -> None:
    service = parse_unit(DEPLOY / "reconciler.service")
    spec_dir = parse_apply(shlex.split(value(service, "Service", "ExecStart"))[1:]).spec_dir
    pull = parse_unit(DEPLOY / "reconciler-specs-pull.service")
    assert value(pull, "Service", "Type") == "oneshot"
    argv = shlex.split(value(pull, "Service", "ExecStart"))
    assert argv[0].endswith("/git") and os.path.isabs(argv[0])
    assert argv[1:4] == ["-C", spec_dir, "pull"] and "--ff-only" in argv
    assert value(pull, "Service", "UMask") == "0022"  # no group/world-writable spec files
    assert value(pull, "Unit", "ConditionPathIsDirectory") == f"{spec_dir}/.git"
    assert value(pull, "Service", "ReadWritePaths") == spec_dir

    timer = parse_unit(DEPLOY / "reconciler-specs-pull.timer")
    # No Unit=: a timer starts the service of its own name.
    assert "Unit" not in keys(timer, "Timer")
    assert seconds(value(timer, "Timer", "OnUnitActiveSec")) <= 60
    assert value(timer, "Install", "WantedBy") == "timers.target"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify also checks that ExecStart's program exists; where a program is not
    # installed on this machine (reconciler in /usr/local/bin), an existing one stands in.
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecReload=")):
                program = shlex.split(line.partition("=")[2])[0]
                if not os.access(program, os.X_OK):
                    text = text.replace(f"={program} ", f"={shutil.which('true')} ")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # verify exits 0 even for unknown keys or bad values: any line about our files fails.
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if any(n in line for n in UNITS)
    ]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


# --- documentation ---------------------------------------------------------------------------


def test_deploy_docs_cover_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md":
            assert str(path.relative_to(DEPLOY)) in readme, f"deploy/README.md omits {path.name}"
    guide = (REPO / "docs" / "DEPLOY.md").read_text()
    for needle in (
        "docker run",
        "--http 127.0.0.1:9100",
        "deploy/alerts.yaml",
        "deploy/kubernetes/daemonset.yaml",
        "deploy/kubernetes/sidecar.yaml",
        "deploy/reconciler.service",
        "deploy/reconciler-specs-pull.timer",
    ):
        assert needle in guide, f"docs/DEPLOY.md does not mention {needle}"


def test_task_examples_in_the_deploy_guide_validate(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "DEPLOY.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, flags=re.S)
    tasks = [textwrap.dedent(b) for b in blocks if "apiVersion: reconciler/v1" in b]
    assert tasks, "the guide shows no task document"
    for i, text in enumerate(tasks):
        (tmp_path / f"example-{i}.yaml").write_text(text)
        os.chmod(tmp_path / f"example-{i}.yaml", 0o644)
    result = run_validate(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
