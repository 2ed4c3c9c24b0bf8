"""Structured logs: the contract's JSON shape, the text format, forging, threads, EPIPE."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.obs import logs
from reconciler.obs.logs import (
    dropped_lines,
    escape_control,
    format_timestamp,
    log_event,
    setup_logging,
)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_logger() -> Iterator[None]:
    """setup_logging configures a process-wide logger: put it back after each test."""
    logger = logging.getLogger("reconciler")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def capture(fmt: str = "json", level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    setup_logging(fmt, stream, level=level)  # type: ignore[arg-type]
    return stream


# --- JSON shape ---------------------------------------------------------------------------


def test_json_line_has_contract_keys_in_order() -> None:
    out = capture()
    before = time.time()
    log_event(
        "run.started",
        "Run of rotate-logs started.",
        task="rotate-logs",
        run_id="r-1",
        pid=4242,
        type="cron",
        due="2026-11-25T11:46:22Z",
    )
    after = time.time()
    (line,) = json_lines(out)
    assert list(line) == [
        "timestamp",
        "level",
        "message",
        "event",
        "task",
        "run_id",
        "pid",
        "type",
        "due",
    ]
    assert line["level"] == "info"
    assert line["message"] == "Run of rotate-logs started."
    assert line["event"] == "run.started"
    assert line["pid"] == 4242
    assert TS_RE.match(line["timestamp"])
    ts = dt.datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    stamp = ts.replace(tzinfo=dt.UTC).timestamp()
    assert before - 0.001 <= stamp <= after + 0.001


def test_one_compact_ascii_line_per_event() -> None:
    out = capture()
    log_event("spec.applied", "Applied specs.", added=["a", "b"], changed=[], removed=["c"])
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.isascii()
    (line,) = json_lines(out)
    assert line["added"] == ["a", "b"] and line["changed"] == [] and line["removed"] == ["c"]


@pytest.mark.parametrize(
    ("level", "name"),
    [("info", "info"), ("warning", "warning"), ("warn", "warning"), ("error", "error")],
)
def test_levels_are_lowercase(level: str, name: str) -> None:
    out = capture()
    log_event("x.y", "m", level=level)
    assert json_lines(out)[0]["level"] == name


def test_level_threshold() -> None:
    out = capture(level="WARNING")
    log_event("a", "dropped", level="info")
    log_event("b", "kept", level="error")
    assert [e["event"] for e in json_lines(out)] == ["b"]
    out = capture(level="debug")
    log_event("c", "debug now shown", level="debug")
    assert json_lines(out)[0]["level"] == "debug"


def test_unknown_level_and_format_are_errors() -> None:
    capture()
    with pytest.raises(ValueError):
        log_event("a", "b", level="loud")
    with pytest.raises(ValueError):
        setup_logging("xml", io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        setup_logging("json", io.StringIO(), level="chatty")


def test_null_and_typed_fields() -> None:
    out = capture()
    log_event(
        "run.exited",
        "Run was killed.",
        level="warning",
        task="t",
        run_id="r",
        pid=1,
        exit_code=None,
        signal="SIGKILL",
        duration_s=1.25,
        outcome="stopped",
    )
    (line,) = json_lines(out)
    assert line["exit_code"] is None
    assert line["duration_s"] == 1.25
    assert line["signal"] == "SIGKILL"


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1795607182.123, "2026-11-25T11:46:22.123Z"),
        (1795607182.9999, "2026-11-25T11:46:22.999Z"),  # truncated, never .1000
        (1795607183.0005, "2026-11-25T11:46:23.000Z"),
        (1795607182.9999996, "2026-11-25T11:46:23.000Z"),  # rounds up into the next second
    ],
)
def test_timestamp_format(epoch: float, text: str) -> None:
    assert format_timestamp(epoch) == text


def test_odd_values_never_break_a_line() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    loop: list[object] = []
    loop.append(loop)
    out = capture()
    log_event(
        "odd",
        "odd values",
        path=Path("/etc/x"),
        when=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        names={"b", "a"},
        nan=float("nan"),
        inf=float("inf"),
        raw=b"\xff",
        thing=Opaque(),
        loop=loop,
    )
    (line,) = json_lines(out)
    assert line["path"] == "/etc/x"
    assert line["when"].startswith("2026-01-02T03:04:05")
    assert line["names"] == ["a", "b"]
    assert line["nan"] is None and line["inf"] is None
    assert isinstance(line["thing"], str)


def test_field_named_like_a_core_key_is_renamed() -> None:
    out = capture()
    log_event("e", "m", timestamp="forged")
    (line,) = json_lines(out)
    assert TS_RE.match(line["timestamp"])
    assert line["timestamp_"] == "forged"


def test_plain_logging_calls_get_the_same_shape() -> None:
    out = capture()
    logging.getLogger("reconciler.spec").warning("cannot read %s", "a.yaml", extra={"file": "a"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("reconciler").exception("it broke")
    first, second = json_lines(out)
    assert list(first)[:4] == ["timestamp", "level", "message", "event"]
    assert first["message"] == "cannot read a.yaml"
    assert first["event"] == "log" and first["logger"] == "reconciler.spec"
    assert first["file"] == "a"
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exc_info"]


def test_percent_signs_in_output_are_not_formatting() -> None:
    out = capture()
    log_event("run.output", "100%s done %d", task="t", run_id="r", stream="stdout")
    assert json_lines(out)[0]["message"] == "100%s done %d"


# --- forging and escaping -------------------------------------------------------------------

FORGED = (
    'progress\n{"timestamp":"2026-11-25T11:46:22.123Z","level":"info",'
    '"message":"x","event":"run.started","task":"evil"}\r\x1b[2K\x1b[31mred\x07\x00end'
)


def test_json_output_line_cannot_forge_a_log_line() -> None:
    out = capture()
    log_event("run.output", FORGED, task="t", run_id="r", stream="stdout")
    text = out.getvalue()
    assert text.count("\n") == 1
    (line,) = json_lines(out)
    assert line["event"] == "run.output"
    assert line["message"] == FORGED  # the output itself, intact, as one JSON string


def test_json_lone_surrogates_become_text() -> None:
    out = capture()
    # surrogateescape's stand-ins for bytes, a lone high surrogate, then real characters
    log_event("run.output", "a\udc80\udcff b\ud800 c\u00fc \U0001f600", task="t", stream="stdout")
    text = out.getvalue()
    assert text.isascii()
    # no lone-surrogate escapes: strict parsers (serde_json) reject them
    assert "\\udc80" not in text and '\\ud800"' not in text
    # Its own line (a thread left by an earlier test of this worker may log too).
    (line,) = [x for x in json_lines(out) if x.get("task") == "t"]
    assert line["message"] == "a\\x80\\xff b\\ud800 c\u00fc \U0001f600"


def test_json_surrogates_in_field_names_and_nested_values() -> None:
    out = capture()
    log_event(
        "spec.invalid", "bad", file="specs/\udcff.yaml", line=None, error={"k\udc80": ["\ud801"]}
    )
    (line,) = [x for x in json_lines(out) if x.get("event") == "spec.invalid"]
    assert line["file"] == "specs/\\xff.yaml"
    assert line["error"] == {"k\\x80": ["\\ud801"]}


def test_ascii_only_stream_takes_any_text() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    setup_logging("json", stream)
    log_event("run.output", "gr\u00fc\u00df \U0001f600 \udc80", task="t")
    assert json.loads(raw.getvalue().decode("ascii"))["message"].startswith("gr\u00fc\u00df")


def test_text_on_ascii_stream_is_escaped_not_lost() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    setup_logging("text", stream)
    before = dropped_lines()
    log_event("run.output", "gr\u00fc\u00df", task="t")
    assert raw.getvalue().decode("ascii").endswith(" task=t gr\\xfc\\xdf\n")
    assert dropped_lines() == before


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain text", "plain text"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("nul\x00 del\x7f c1\x85", "nul\\x00 del\\x7f c1\\x85"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("bytes\udc80\udcff", "bytes\\x80\\xff"),
        ("lone\ud800", "lone\\ud800"),
        ("caf\u00e9 \U0001f600", "caf\u00e9 \U0001f600"),
    ],
)
def test_escape_control(raw: str, escaped: str) -> None:
    assert escape_control(raw) == escaped


# --- text format --------------------------------------------------------------------------


def test_text_line_shape() -> None:
    out = capture("text")
    log_event("run.started", "Run started.", task="x", run_id="r-1", pid=7, type="cron", due=None)
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    m = re.match(
        r"^(\S+) info  run\.started task=x run_id=r-1 pid=7 type=cron due=null Run started\.\n$",
        line,
    )
    assert m, line
    assert TS_RE.match(m.group(1))


def test_text_levels_and_values() -> None:
    out = capture("text")
    log_event(
        "spec.applied",
        "Applied.",
        level="warning",
        added=["a", "b"],
        quoted="two words",
        empty="",
        eq="a=b",
        ok=True,
    )
    line = out.getvalue()
    assert (
        ' warning spec.applied added=["a","b"] quoted="two words" empty="" eq="a=b" ok=true '
        in line
    )


def test_text_output_cannot_forge_a_line() -> None:
    out = capture("text")
    log_event("run.output", FORGED, task="t", run_id="r", stream="stdout")
    log_event("run.output", "x\u2028y\x85z\udc80", task="t", run_id="r", stream="stdout")
    text = out.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == ""
    for line in lines[:2]:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
        assert "\u2028" not in line
        assert " run.output " in line
    assert lines[0].endswith(
        'progress\\n{"timestamp":"2026-11-25T11:46:22.123Z","level":"info",'
        '"message":"x","event":"run.started","task":"evil"}\\r\\x1b[2K\\x1b[31mred\\x07\\x00end'
    )
    assert lines[1].endswith("x\\u2028y\\x85z\\x80")


def test_text_field_values_are_escaped_too() -> None:
    out = capture("text")
    log_event("spec.invalid", "bad file", file="a\nb.yaml", error="line1\nline2\x1b")
    line = out.getvalue()
    assert line.count("\n") == 1
    assert 'file="a\\nb.yaml"' in line
    assert 'error="line1\\nline2\\x1b"' in line or 'error="line1\\nline2\\u001b"' in line


def test_text_exception_stays_on_one_line() -> None:
    out = capture("text")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logging.getLogger("reconciler.x").exception("failed")
    text = out.getvalue()
    assert text.count("\n") == 1
    assert "Traceback" in text and "ValueError: bad\\nthing" in text


# --- env values ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_env_values_are_never_logged(fmt: str) -> None:
    out = capture(fmt)
    log_event("run.started", "m", task="t", env={"DB_PASSWORD": "hunter2", "LANG": "C"})
    log_event("x", "m", env="TOKEN=s3cret")
    log_event(
        "x", "m", doc={"spec": {"env": {"API_KEY": "abc123xyz"}}}, runs=[{"env": {"K": "v9"}}]
    )
    text = out.getvalue()
    for secret in ("hunter2", "s3cret", "abc123xyz", "v9"):
        assert secret not in text
    assert "DB_PASSWORD" in text and "API_KEY" in text
    if fmt == "json":
        first, second, third = json_lines(out)
        assert first["env"] == {"keys": ["DB_PASSWORD", "LANG"], "values": "<redacted>"}
        assert second["env"] == "<redacted>"
        assert third["doc"]["spec"]["env"]["keys"] == ["API_KEY"]


def test_env_via_plain_logging_extra_is_redacted_too() -> None:
    out = capture()
    logging.getLogger("reconciler.x").info("m", extra={"env": {"SECRET": "zz-top"}})
    assert "zz-top" not in out.getvalue()


# --- setup --------------------------------------------------------------------------------


def test_setup_is_idempotent_and_does_not_propagate() -> None:
    root_stream = io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)
    try:
        out = capture()
        setup_logging("json", out)
        setup_logging("json", out)
        log_event("once", "m")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert len(json_lines(out)) == 1
    assert root_stream.getvalue() == ""
    ours = [h for h in logging.getLogger("reconciler").handlers if isinstance(h, logs._LineHandler)]
    assert len(ours) == 1


def test_setup_again_switches_stream_and_format() -> None:
    first = capture()
    second = capture("text")
    log_event("e", "m")
    assert first.getvalue() == ""
    assert " info  e m\n" in second.getvalue()


def test_setup_only_touches_the_reconciler_logger() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    capture()
    assert (list(root.handlers), root.level) == before


# --- threads, pipes -----------------------------------------------------------------------


def test_concurrent_writers_produce_only_whole_lines() -> None:
    r, w = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stream = os.fdopen(w, "w", encoding="utf-8")
    setup_logging("json", stream)
    per_thread = 300
    # long lines (past PIPE_BUF and the text buffer) make torn writes visible
    payload = "y" * 9000

    def writer(n: int) -> None:
        for i in range(per_thread):
            size = 10 if i % 2 else len(payload)
            log_event("run.output", f"{n}:{i}:" + payload[:size], task=f"t{n}", stream="stdout")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    before = dropped_lines()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs.flush_logs(30)
    stream.close()
    reader.join()
    os.close(r)
    lines = bytes(received).decode().split("\n")
    assert lines[-1] == ""
    seen: dict[int, list[int]] = {n: [] for n in range(8)}
    reports = 0
    for line in lines[:-1]:
        event = json.loads(line)
        if event["event"] == "log.dropped":
            reports += event["dropped"]
            continue
        n, i, _ = event["message"].split(":", 2)
        assert event["task"] == f"t{n}"
        seen[int(n)].append(int(i))
    # Output the pipe could not take at once is dropped, never torn or reordered; every
    # line is either written or counted (and told in a `log.dropped` line).
    assert all(seq == sorted(set(seq)) for seq in seen.values())
    written = sum(len(seq) for seq in seen.values())
    assert written + (dropped_lines() - before) == 8 * per_thread
    assert reports == dropped_lines() - before


def test_closed_pipe_is_swallowed_and_counted() -> None:
    r, w = os.pipe()
    os.close(r)
    stream = os.fdopen(w, "w", encoding="utf-8")
    setup_logging("json", stream)
    before = dropped_lines()
    log_event("a", "first")
    log_event("b", "second")
    logs.flush_logs(10)
    assert dropped_lines() == before + 2
    # the descriptor now points at /dev/null, so the buffer and exit-time flush are quiet
    assert os.fstat(w).st_rdev == os.stat(os.devnull).st_rdev
    assert stat.S_ISCHR(os.fstat(w).st_mode)
    stream.close()


def test_closed_stream_is_swallowed_and_counted() -> None:
    stream = io.StringIO()
    setup_logging("json", stream)
    stream.close()
    before = dropped_lines()
    log_event("a", "m")
    assert dropped_lines() == before + 1


def test_controller_survives_stdout_reader_going_away(tmp_path: Path) -> None:
    """As `reconciler apply | head -1`: no traceback, exit status 0 (not 120)."""
    code = (
        "import sys\n"
        "from reconciler.obs import log_event, setup_logging, dropped_lines, flush_logs\n"
        "setup_logging()\n"
        "log_event('first', 'first line')\n"
        "sys.stdin.readline()\n"
        "for i in range(200):\n"
        "    log_event('run.output', 'x' * 100, task='t', stream='stdout')\n"
        "flush_logs(10)\n"
        "sys.stderr.write(f'dropped={dropped_lines()}')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "first"
    proc.stdout.close()
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0, err
    assert err == "dropped=200"


def test_bench_script_runs() -> None:
    """Keeps bench/bench_logs.py working; its figures are not checked here."""
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_logs.py"), "--lines", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "us/line" in result.stdout
