"""Starting runs: exit status, environment, fds, output, spawn errors."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_proc import Harness, group_members, harness, join_pieces, wait_for

from reconciler.supervisor import (
    CONTINUATION_MARKER,
    MAX_LINE_BYTES,
    RunSpec,
    SpawnError,
    process_start_ticks,
)

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def sh(run_id: str, script: str, **kw: object) -> RunSpec:
    env = kw.pop("env", ENV)
    return RunSpec(run_id, "task", ["/bin/sh", "-c", script], env, **kw)  # type: ignore[arg-type]


def test_child_writes_file_and_exit_zero(h: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out"
    handle = h.sup.start(sh("r1", f"echo hello > {target}"))
    assert handle.pgid == handle.pid and not handle.adopted
    assert handle.started_at == pytest.approx(time.time(), abs=30)
    ex = h.wait("r1")
    assert (ex.exit_code, ex.signal, ex.stop_reason) == (0, None, None)
    assert ex.pid == handle.pid and ex.task == "task"
    assert ex.ended_at >= ex.started_at
    assert target.read_text() == "hello\n"
    assert h.sup.running() == []


def test_exit_code_reported(h: Harness) -> None:
    h.sup.start(sh("r1", "exit 3"))
    ex = h.wait("r1")
    assert (ex.exit_code, ex.signal) == (3, None)


def test_killed_by_signal_reported(h: Harness) -> None:
    h.sup.start(sh("r1", "kill -KILL $$"))
    ex = h.wait("r1")
    assert (ex.exit_code, ex.signal) == (None, "SIGKILL")


def test_start_ticks_and_group(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "sleep 5"))
    assert handle.start_ticks == process_start_ticks(handle.pid)
    assert os.getpgid(handle.pid) == handle.pid
    assert os.getsid(handle.pid) == handle.pid  # own session: no controlling terminal
    assert [r.run_id for r in h.sup.running()] == ["r1"]


def test_start_ticks_known_even_if_run_reaped_first(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "exit 0"))
    h.wait("r1")
    assert handle.start_ticks > 0  # read before the reap, while /proc/<pid> existed


def test_task_env_put_on_controller_environment(h: Harness) -> None:
    task_env = {"A": "1", "SECRET": "s p a c e", "EMPTY": "", "PATH": "/usr/bin:/bin"}
    h.sup.start(RunSpec("r1", "t", ["/usr/bin/env"], task_env))
    h.wait("r1")
    expected = {**os.environ, **task_env, "RECONCILER_RUN_ID": "r1"}
    assert sorted(h.out.lines("r1")) == sorted(f"{k}={v}" for k, v in expected.items())


def test_cwd(h: Harness, tmp_path: Path) -> None:
    h.sup.start(RunSpec("r1", "t", ["/bin/pwd"], ENV, cwd=str(tmp_path)))
    h.wait("r1")
    assert h.out.lines("r1") == [str(tmp_path)]


def test_no_inherited_fds_and_default_signals(h: Harness) -> None:
    leak = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leak, True)  # even an inheritable fd must not reach the child
    try:
        h.sup.start(RunSpec("r1", "t", ["/bin/ls", "/proc/self/fd"], ENV))
        h.sup.start(
            sh("r2", "grep -E '^Sig(Ign|Blk):' /proc/self/status; readlink /proc/self/fd/0")
        )
        h.wait("r1")
        h.wait("r2")
    finally:
        os.close(leak)
    # ls itself opens one fd to list the directory (3).
    assert sorted(h.out.lines("r1")) == ["0", "1", "2", "3"]
    assert sorted(h.out.lines("r2")) == [
        "/dev/null",
        "SigBlk:\t0000000000000000",
        "SigIgn:\t0000000000000000",
    ]


def test_stdout_and_stderr_separate_and_in_order(h: Harness) -> None:
    h.sup.start(sh("r1", "seq 1 20000 & seq 100001 120000 >&2; wait"))
    h.wait("r1")
    assert h.out.lines("r1", "stdout") == [str(i) for i in range(1, 20001)]
    assert h.out.lines("r1", "stderr") == [str(i) for i in range(100001, 120001)]


def test_long_line_split_into_pieces(h: Harness) -> None:
    size = 1024 * 1024
    h.sup.start(sh("r1", f"head -c {size} /dev/zero | tr '\\0' a; printf '\\nnext'"))
    h.wait("r1")
    lines = h.out.lines("r1")
    assert len(lines) == size // MAX_LINE_BYTES + 1
    assert all(p.endswith(CONTINUATION_MARKER) for p in lines[:-2])
    assert all(len(p) - len(CONTINUATION_MARKER) == MAX_LINE_BYTES for p in lines[:-2])
    assert join_pieces(lines) == ["a" * size, "next"]  # unterminated last line flushed


def test_non_utf8_escaped(h: Harness) -> None:
    h.sup.start(sh("r1", "printf 'caf\\303\\251 \\377\\376!\\n'"))
    h.wait("r1")
    assert h.out.lines("r1") == ["caf\u00e9 \\xff\\xfe!"]


def test_wake_called_when_pipes_close(h: Harness) -> None:
    h.sup.start(sh("r1", "true"))
    wait_for(lambda: h.out.wakes >= 2, what="two EOF wakes")
    h.wait("r1")


def test_output_drained_before_exit_reported(h: Harness) -> None:
    for i in range(5):
        h.sup.start(sh(f"r{i}", "seq 1 3000"))
    for i in range(5):
        h.wait(f"r{i}")
        assert len(h.out.lines(f"r{i}")) == 3000


def test_background_grandchild_holding_pipe_does_not_delay_exit(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "sleep 30 & echo done"))
    try:
        t0 = time.monotonic()
        ex = h.wait("r1")
        assert time.monotonic() - t0 < 8
        assert ex.exit_code == 0
        assert h.out.lines("r1") == ["done"]
        # A run ending on its own leaves the rest of its group alone (as cron does).
        assert [p for p in group_members(handle.pgid) if p.state != "Z"]
    finally:
        os.killpg(handle.pgid, signal.SIGKILL)
    wait_for(lambda: (h.poller.poll(), not group_members(handle.pgid))[1], what="cleanup")


def test_flooding_run_does_not_starve_others(h: Harness) -> None:
    h.sup.start(RunSpec("flood", "t", ["/usr/bin/yes", "x" * 200], ENV))
    wait_for(lambda: h.out.count("flood") > 1000, what="flood output")
    for i in range(3):
        h.sup.start(sh(f"q{i}", f"echo quiet{i}"))
        h.wait(f"q{i}")
        assert h.out.lines(f"q{i}") == [f"quiet{i}"]
    h.sup.stop("flood", 0.0, "test")
    ex = h.wait("flood")
    assert ex.signal in ("SIGTERM", "SIGKILL")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (RunSpec("x", "t", ["/usr/bin/nope"], ENV), "command not found: /usr/bin/nope"),
        (RunSpec("x", "t", ["nope-no-such-cmd"], ENV), "command not found: nope-no-such-cmd"),
        (
            RunSpec("x", "t", ["/bin/true"], ENV, cwd="/nonexistent/dir"),
            "workingDir /nonexistent/dir: No such file or directory",
        ),
        (
            RunSpec("x", "t", ["/bin/true"], ENV, cwd="/bin/sh"),
            "workingDir /bin/sh: Not a directory",
        ),
        (RunSpec("x", "t", [], ENV), "empty command"),
        (RunSpec("x", "t", ["/bin/true"], {"K": "a\0b"}), "env K: value contains a NUL byte"),
        (RunSpec("x", "t", ["/bin/true"], {"A=B": "v"}), "env 'A=B': not a valid variable name"),
    ],
)
def test_spawn_errors(h: Harness, spec: RunSpec, message: str) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(SpawnError) as err:
        h.sup.start(spec)
    assert str(err.value) == message
    assert h.sup.running() == []
    assert set(os.listdir("/proc/self/fd")) <= fds_before  # no pipe leaked


def test_not_executable(h: Harness, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_text("x")
    data.chmod(0o644)
    with pytest.raises(SpawnError, match=f"^cannot execute {data}: Permission denied$"):
        h.sup.start(RunSpec("x", "t", [str(data)], ENV))


def test_secret_value_not_in_errors(h: Harness) -> None:
    with pytest.raises(SpawnError) as err:
        h.sup.start(RunSpec("x", "t", ["/bin/true"], {"TOKEN": "hunter2\0"}))
    assert "hunter2" not in str(err.value)


def test_duplicate_run_id_refused(h: Harness) -> None:
    h.sup.start(sh("r1", "sleep 5"))
    with pytest.raises(ValueError):
        h.sup.start(sh("r1", "true"))


def test_bare_command_uses_child_path(h: Harness, tmp_path: Path) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho from-mytool\n")
    tool.chmod(0o755)
    h.sup.start(RunSpec("r1", "t", ["mytool"], {"PATH": f"{tmp_path}:/usr/bin:/bin"}))
    h.wait("r1")
    assert h.out.lines("r1") == ["from-mytool"]


def test_popen_is_quiet_after_reap(h: Harness) -> None:
    # No ResourceWarning / stray waitpid from Popen objects: run a child under -W error.
    code = (
        "from reconciler.supervisor import Supervisor, RunSpec\n"
        "import time, gc\n"
        "s = Supervisor(lambda *a: None)\n"
        "s.start(RunSpec('r', 't', ['/bin/true'], {}))\n"
        "end = time.monotonic() + 10\n"
        "while not s.poll():\n"
        "    assert time.monotonic() < end\n"
        "    time.sleep(0.01)\n"
        "s.close(); gc.collect(); print('ok')\n"
    )
    h.sup.start(
        RunSpec(
            "py", "t", [sys.executable, "-X", "dev", "-W", "error", "-c", code], dict(os.environ)
        )
    )
    ex = h.wait("py", timeout=30)
    assert h.out.lines("py", "stderr") == []
    assert (ex.exit_code, h.out.lines("py")) == (0, ["ok"])


def test_poll_from_another_thread_never_loses_a_quick_child(h: Harness) -> None:
    stop = threading.Event()

    def poller() -> None:
        while not stop.is_set():
            h.poller.poll()

    t = threading.Thread(target=poller)
    t.start()
    try:
        for i in range(50):
            h.sup.start(RunSpec(f"q{i}", "t", ["/bin/true"], ENV))
        wait_for(lambda: len(h.poller.exited) == 50, what="50 quick runs")
    finally:
        stop.set()
        t.join()
    assert all(ex.exit_code == 0 for ex in h.poller.exited.values())


def test_many_concurrent_runs(h: Harness) -> None:
    for i in range(40):
        h.sup.start(sh(f"m{i}", f"seq 1 500; echo err{i} >&2; exit {i % 5}"))
    for i in range(40):
        ex = h.wait(f"m{i}")
        assert ex.exit_code == i % 5
        assert h.out.lines(f"m{i}") == [str(n) for n in range(1, 501)]
        assert h.out.lines(f"m{i}", "stderr") == [f"err{i}"]


def test_close_stops_pump_thread() -> None:
    names = {t.name for t in threading.enumerate()}
    with harness() as hh:
        assert "reconciler-pump" in {t.name for t in threading.enumerate()} - names
        sup = hh.sup
    assert "reconciler-pump" not in {t.name for t in threading.enumerate()} - names
    with pytest.raises(RuntimeError):
        sup.start(RunSpec("late", "t", ["/bin/true"], ENV))
