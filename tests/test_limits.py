"""Kernel-enforced limits of a run, for real: cgroups (v1 or v2, whatever this host has)
and RLIMIT_NOFILE. Skips only where the kernel or the host lacks a controller."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_proc import Harness, created_user, harness, wait_for

from reconciler.supervisor import Limits, RunSpec, SpawnError
from reconciler.supervisor import cgroupprobe as probe
from reconciler.supervisor import cgroups as cg
from reconciler.supervisor.procinfo import read_stat

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
MiB = 1 << 20


def need(*controllers: str) -> None:
    why = cg.support().why_not
    for name in controllers:
        if name in why:
            pytest.skip(f"no usable {name} cgroup on this host: {why[name]}")


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def py(run_id: str, code: str, limits: Limits, **kw: object) -> RunSpec:
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    return RunSpec(run_id, "task", argv, ENV, limits=limits, **kw)  # type: ignore[arg-type]


def sh(run_id: str, script: str, limits: Limits | None, **kw: object) -> RunSpec:
    return RunSpec(run_id, "task", ["/bin/sh", "-c", script], ENV, limits=limits, **kw)  # type: ignore[arg-type]


def run_folders(run_id: str) -> list[str]:
    """The cgroup folders of a live run of ours, from the base folders."""
    out = []
    for hier in set(cg.support().where.values()):
        base = os.path.join(hier.own, cg.BASE_NAME)
        if os.path.isdir(base):
            out += [os.path.join(base, n) for n in os.listdir(base) if n.endswith("." + run_id)]
    return out


def alive(pid: int, ticks: int) -> bool:
    st = read_stat(pid)
    return st is not None and st.start_ticks == ticks and st.state not in ("Z", "X")


def test_memory_hog_is_oom_killed_and_nothing_else_is(h: Harness) -> None:
    need("memory")
    # A neighbour without limits and one with a roomy limit live through the kill.
    h.sup.start(sh("calm", "sleep 30", None))
    h.sup.start(
        py("small", "import time; b = b'x' * (8 << 20); time.sleep(2)", Limits(memory_max=64 * MiB))
    )
    hog = h.sup.start(
        py(
            "hog",
            "b = bytearray(b'x') * (300 << 20)\nprint('survived')",
            Limits(memory_max=64 * MiB),
        )
    )
    ex = h.wait("hog", timeout=30)
    assert ex.oom_killed, ex
    assert (ex.exit_code, ex.signal) == (None, "SIGKILL")
    assert h.out.lines("hog") == []
    assert ex.pid == hog.pid
    small = h.wait("small", timeout=30)
    assert (small.exit_code, small.oom_killed) == (0, False)
    assert [r.run_id for r in h.sup.running()] == ["calm"]
    assert not run_folders("hog") and not run_folders("small")  # removed with the run


def test_oom_in_a_child_of_a_shell_run(h: Harness) -> None:
    need("memory")
    code = "b = bytearray(b'x') * (300 << 20)"
    h.sup.start(sh("r", f'{sys.executable} -c "{code}"; echo rc=$?', Limits(memory_max=64 * MiB)))
    ex = h.wait("r", timeout=30)
    assert h.out.lines("r") == ["rc=137"]
    assert ex.exit_code == 0 and ex.oom_killed  # what outcome_of decides from, see report


def test_fork_loop_cannot_exceed_processes_max(h: Harness) -> None:
    need("pids")
    code = """
        import os, time
        kids = []
        for _ in range(60):
            try:
                pid = os.fork()
            except BlockingIOError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            kids.append(pid)
        print(len(kids) + 1)
        procs = open('/proc/self/cgroup').read()
        for pid in kids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    """
    h.sup.start(py("forks", code, Limits(processes_max=20)))
    ex = h.wait("forks", timeout=30)
    assert ex.exit_code == 0
    assert h.out.lines("forks") == ["20"]  # the run itself and 19 children: 20, not one more


def test_processes_max_counts_the_whole_run_not_each_process(h: Harness) -> None:
    need("pids")
    # Two shells that each try to start 15 sleeps: together they reach the limit of 10.
    script = "for i in $(seq 15); do sleep 5 & done 2>/dev/null; wait"
    h.sup.start(
        sh(
            "r",
            f"({script}) & ({script}) & sleep 0.5; ps -e -o pid= | wc -l >/dev/null; "
            "cat /proc/self/cgroup >/dev/null; wait",
            Limits(processes_max=10),
        )
    )
    folders: list[str] = wait_for(lambda: run_folders("r"), what="the run's cgroup")
    peak = 0
    end = time.monotonic() + 2
    while time.monotonic() < end:
        peak = max(peak, len(cg.pids_in(folders[0])))
        time.sleep(0.02)
    h.sup.stop("r", 0, "test")
    h.wait("r", timeout=20)
    assert 5 <= peak <= 10


def test_ulimit_n_prints_open_files_max(h: Harness) -> None:
    h.sup.start(sh("r", "ulimit -n; ulimit -Hn; sh -c 'ulimit -n'", Limits(open_files_max=100)))
    ex = h.wait("r")
    assert ex.exit_code == 0
    assert h.out.lines("r") == ["100", "100", "100"]
    # Without the limit a run keeps the controller's.
    h.sup.start(sh("plain", "ulimit -n", None))
    h.wait("plain")
    import resource

    assert h.out.lines("plain") == [str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])]


def test_open_files_max_is_enforced(h: Harness) -> None:
    code = """
        import os
        n = 0
        try:
            while True:
                os.open('/dev/null', os.O_RDONLY)
                n += 1
        except OSError as exc:
            print(exc.errno == 24, n < 64)
    """
    h.sup.start(py("r", code, Limits(open_files_max=64)))
    h.wait("r")
    assert h.out.lines("r") == ["True True"]


def test_cpu_max_holds_a_busy_loop_to_its_share(h: Harness) -> None:
    need("cpu")
    code = """
        import os, time
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pass
        t = os.times()
        print(round(t.user + t.system, 2))
    """
    h.sup.start(py("busy", code, Limits(cpu_max=0.2)))
    ex = h.wait("busy", timeout=30)
    assert ex.exit_code == 0
    used = float(h.out.lines("busy")[0])
    # 20 % of a core over 5 s is 1 s; a loaded machine may give a little less.
    assert 0.6 <= used <= 1.3, used


def test_stop_kills_everything_in_the_cgroup_even_without_any_mark(
    h: Harness, tmp_path: Path
) -> None:
    need("pids")
    pidfile = tmp_path / "pid"
    # A grandchild that leaves the session, clears its environment and loses its parent:
    # neither the process group, the ancestry nor the run-id mark lead to it.
    script = f"(setsid env -i /bin/sh -c 'echo $$ > {pidfile}; exec sleep 300' &) ; sleep 300"
    h.sup.start(sh("r", script, Limits(processes_max=50)))
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
    st = read_stat(pid)
    assert st is not None
    wait_for(
        lambda: (
            b"RECONCILER_RUN_ID" not in Path(f"/proc/{pid}/environ").read_bytes()
            and read_stat(pid) is not None
            and read_stat(pid).ppid != 0
        ),  # type: ignore[union-attr]
        what="the exec",
    )
    h.sup.stop("r", 5.0, "timeout")
    ex = h.wait("r", timeout=20)
    assert ex.stop_reason == "timeout"
    assert not alive(pid, st.start_ticks)
    assert not run_folders("r")


def test_sigkill_after_grace_reaches_a_term_ignoring_stray(h: Harness, tmp_path: Path) -> None:
    need("pids")
    pidfile = tmp_path / "pid"
    script = (
        f'(setsid env -i /bin/sh -c \'trap "" TERM; echo $$ > {pidfile}; '
        "while :; do sleep 1; done' &) ; sleep 300"
    )
    h.sup.start(sh("r", script, Limits(processes_max=50)))
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
    st = read_stat(pid)
    assert st is not None
    h.sup.stop("r", 0.5, "stop")
    h.wait("r", timeout=20)
    assert not alive(pid, st.start_ticks)


def test_a_run_without_limits_gets_no_cgroup(h: Harness) -> None:
    h.sup.start(sh("r", "cat /proc/self/cgroup", None))
    h.wait("r")
    mine = Path("/proc/self/cgroup").read_text().splitlines()
    assert h.out.lines("r") == mine


def test_the_run_is_in_its_cgroup_from_its_first_instruction(h: Harness) -> None:
    need("memory")
    h.sup.start(
        sh(
            "r",
            "grep memory /proc/self/cgroup || cat /proc/self/cgroup",
            Limits(memory_max=64 * MiB),
        )
    )
    h.wait("r")
    line = h.out.lines("r")[0]
    assert f"/{cg.BASE_NAME}/" in line and line.endswith(".r")


def test_user_run_with_limits(h: Harness) -> None:
    need("memory")
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user")
    with created_user("rlim") as name:
        h.sup.start(
            sh(
                "r",
                "id -un; grep memory /proc/self/cgroup; ulimit -n",
                Limits(memory_max=64 * MiB, open_files_max=77),
                user=name,
            )
        )
        ex = h.wait("r")
        assert ex.exit_code == 0, h.out.lines("r", "stderr")
        out = h.out.lines("r")
        assert out[0] == name and f"/{cg.BASE_NAME}/" in out[1] and out[2] == "77"


def test_cannot_enforce_is_a_spawn_error_naming_the_field(h: Harness) -> None:
    h.sup._cgroups = cg.Cgroups(
        cg.Support(why_not={n: "no such controller" for n in cg.CONTROLLERS})
    )
    with pytest.raises(
        SpawnError, match="^memoryMax: cannot be enforced here: no such controller$"
    ):
        h.sup.start(sh("r", "true", Limits(memory_max=64 * MiB)))
    assert h.sup.running() == []
    # openFilesMax needs no cgroup.
    h.sup.start(sh("ok", "ulimit -n", Limits(open_files_max=50)))
    h.wait("ok")
    assert h.out.lines("ok") == ["50"]


def test_leftovers_of_a_dead_controller_are_removed_at_start(tmp_path: Path) -> None:
    need("pids")
    base = os.path.join(cg.support().where["pids"].own, cg.BASE_NAME)
    os.makedirs(base, exist_ok=True)
    dead = os.path.join(base, "999999999.1.1.gone-run")  # no such pid
    me = read_stat(os.getpid())
    assert me is not None
    live = os.path.join(base, f"{os.getpid()}.{me.start_ticks}.99999.live-run")
    os.mkdir(dead)
    os.mkdir(live)
    try:
        with harness():
            assert not os.path.exists(dead)
            assert os.path.exists(live)  # a live controller's: not ours to remove
    finally:
        for d in (dead, live):
            if os.path.exists(d):
                os.rmdir(d)


def test_adopted_run_is_found_and_stopped_through_its_cgroup(tmp_path: Path) -> None:
    need("pids")
    pidfile = tmp_path / "pid"
    with harness() as first:
        handle = first.sup.start(
            sh(
                "r",
                f"(setsid env -i sleep 300 &); echo $$ > {pidfile}; sleep 300",
                Limits(processes_max=20),
            )
        )
        ticks = handle.start_ticks
        wait_for(lambda: pidfile.exists(), what="start")
        folders = run_folders("r")
        assert folders
        members = wait_for(
            lambda: len(cg.pids_in(folders[0])) >= 3 and cg.pids_in(folders[0]), what="3 procs"
        )
        first.sup.close()  # the controller "crashes": its run lives on
        first.sup._runs.clear()
        with harness() as second:
            adopted = second.sup.adopt("r", "task", handle.pid, ticks, handle.started_at)
            assert adopted is not None
            assert os.path.exists(folders[0])  # not a leftover: it holds a live run
            second.sup.stop("r", 2.0, "stop")
            second.wait("r", timeout=20)
            assert all(read_stat(p) is None or read_stat(p).state == "Z" for p in members)  # type: ignore[union-attr]
            assert not os.path.exists(folders[0])


def test_probe_reads_v2_and_v1_mounts(tmp_path: Path) -> None:
    v2 = tmp_path / "unified" / "sys.slice" / "reconciler.service"
    v2.mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory\n")
    v1 = tmp_path / "pids" / "x"
    v1.mkdir(parents=True)
    mountinfo = (
        f"41 31 0:38 / {tmp_path}/unified rw,relatime - cgroup2 cgroup2 rw\n"
        f"39 31 0:36 / {tmp_path}/pids rw,relatime - cgroup cgroup rw,pids\n"
    )
    proc = "8:pids:/x\n0::/sys.slice/reconciler.service\n"
    sup = probe.probe(mountinfo, proc, 0)
    assert sup.where["memory"] == probe.Hierarchy(2, f"{tmp_path}/unified", str(v2))
    assert sup.where["cpu"].version == 2
    assert sup.where["pids"] == probe.Hierarchy(1, f"{tmp_path}/pids", str(v1))
    # A read-only cgroupfs (a container without a writable one): nothing usable, and why.
    ro = mountinfo.replace("rw,relatime", "ro,relatime")
    sup = probe.probe(ro, proc, 0)
    assert sup.where == {}
    assert "not writable" in sup.why_not["memory"] and "not writable" in sup.why_not["pids"]
    # A cgroup namespace root (container): the path is relative to the mount's root.
    inner = "50 31 0:38 /sys.slice/reconciler.service /c rw - cgroup2 cgroup2 rw\n"
    assert (
        probe.path_inside("/c", "/sys.slice/reconciler.service", "/sys.slice/reconciler.service/x")
        == "/c/x"
    )
    assert probe.probe(inner, "0::/\n", 0).why_not["memory"].startswith("no memory")
