"""The log sink: nobody who logs waits for stdout.

A line is formatted in the caller's thread and put on a bounded queue; one daemon thread
writes whole lines to (a duplicate of) the stream's descriptor. When the reader is slow
or stopped, ``run.output`` lines are dropped first, other events last; drops are counted
and told in one ``log.dropped`` line once the writer has caught up.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Literal, TextIO

from reconciler.obs.logformat import (
    ENCODER,
    LOGGER_NAME,
    OBS_ATTR,
    TextLineFormatter,
    escape_control,
    format_timestamp,
    record_fields,
    sanitize,
)

_logger = logging.getLogger(LOGGER_NAME)

# --- drop counters ----------------------------------------------------------------------

# What a line is, for the drop policy: a task's output goes first, everything else
# ("event": lifecycle, spec, controller, plain logging calls) last.
Kind = Literal["output", "event"]
OUTPUT: Final = "output"
EVENT: Final = "event"

_stats_lock = threading.Lock()
_dropped: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}


def _count_drop(kind: Kind, n: int = 1) -> None:
    with _stats_lock:
        _dropped[kind] += n


def dropped_lines() -> int:
    """Lines not written (slow or stopped reader, closed pipe, full disk...) since start."""
    with _stats_lock:
        return _dropped[OUTPUT] + _dropped[EVENT]


def dropped_lines_by_kind() -> dict[Kind, int]:
    """``{"output": n, "event": m}``: the same count split by what was dropped."""
    with _stats_lock:
        return dict(_dropped)


def _kind_of(record: logging.LogRecord) -> Kind:
    event, _ = record_fields(record)
    return OUTPUT if event == "run.output" else EVENT


# --- the sink: a bounded queue and a writer thread --------------------------------------

# Output lines are taken while the queue holds less than this; past it, every output line
# is dropped until the writer has caught up (queue empty), which then logs `log.dropped`.
# Big enough for a burst (a task printing a 1 MB line) to reach a reader that keeps up on
# average but lags a moment on a busy host; small enough to cost nothing worth counting.
OUTPUT_QUEUE_BYTES = 4 * 1024 * 1024
OUTPUT_QUEUE_LINES = 16_384
# Lifecycle events are taken until this (a stopped reader: hours of events of a few tasks).
EVENT_QUEUE_BYTES = 8 * 1024 * 1024
EVENT_QUEUE_LINES = 50_000
# One write() carries up to this many bytes of whole lines.
_BATCH_BYTES = 64 * 1024
# Default bound of the flush at exit (logging.shutdown calls close()).
CLOSE_TIMEOUT_S = 2.0


class _Sink:
    """Lines go into a bounded FIFO; one daemon thread writes them to a descriptor.

    Producers (the loop, the output pump, HTTP threads) only take a lock for a deque
    append, never wait for the descriptor. The writer uses the descriptor with
    ``os.write``, never the stream object: a thread blocked inside a buffered stream
    would hold its lock, and the interpreter's flush of stdout at exit would then wait
    on it (or abort). Order is kept: a line is written in order or dropped, never late.
    """

    def __init__(
        self,
        fd: int,
        stream_closed: Callable[[], bool],
        dropped_line: Callable[[int, int], bytes | None],
    ) -> None:
        self._fd = fd
        self._stream_closed = stream_closed  # the owner closed it: the number may be reused
        self._dropped_line = dropped_line
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Kind, bytes]] = deque()
        self._bytes = 0
        self._busy = False  # the writer holds a batch (or a `log.dropped` line)
        self._dropping = False  # output lines are refused until the queue drains
        self._unreported: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}
        self._closing = False
        self.broken = False  # the reader is gone for good (EPIPE)
        self._thread = threading.Thread(target=self._run, name="reconciler-log", daemon=True)
        self._thread.start()

    # -- producers ---------------------------------------------------------------------

    def refuses_output(self) -> bool:
        """True while output lines are dropped anyway: the caller need not format them.
        Read without the lock: a stale answer only costs one formatted line or one
        line dropped a moment late."""
        return self._dropping or self.broken

    def drop(self, kind: Kind, n: int = 1) -> None:
        _count_drop(kind, n)
        if not self.broken:
            with self._cond:
                self._unreported[kind] += n

    def offer(self, kind: Kind, data: bytes) -> None:
        with self._cond:
            if self.broken:
                accepted = False
            elif kind == OUTPUT:
                if not self._dropping and (
                    self._bytes >= OUTPUT_QUEUE_BYTES or len(self._queue) >= OUTPUT_QUEUE_LINES
                ):
                    self._dropping = True
                accepted = not self._dropping
            else:
                accepted = self._bytes < EVENT_QUEUE_BYTES and len(self._queue) < EVENT_QUEUE_LINES
            if accepted:
                self._queue.append((kind, data))
                self._bytes += len(data)
                if not self._busy:
                    self._cond.notify_all()
                return
            if not self.broken:
                self._unreported[kind] += 1
        _count_drop(kind)

    # -- the writer ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[bytes] = []
                kinds: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}
                size = 0
                while self._queue and (not batch or size + len(self._queue[0][1]) <= _BATCH_BYTES):
                    kind, data = self._queue.popleft()
                    batch.append(data)
                    kinds[kind] += 1
                    size += len(data)
                self._bytes -= size
                self._busy = True
                # The sink has caught up: this batch empties the queue. What was dropped
                # is told just before it, so a stop's last line stays the last line.
                report = self._caught_up()
            if report is not None:
                self._report(report)
            # Lines taken after the reader went away are not written to /dev/null.
            ok = not self.broken and not self._stream_closed()
            ok = ok and self._write_all(b"".join(batch))
            if not ok:
                # The descriptor refused them (EPIPE, ENOSPC, closed): counted, and told
                # with the rest once writes succeed again.
                for kind, n in kinds.items():
                    self.drop(kind, n)
            with self._cond:
                report = self._caught_up()
                if report is None:
                    self._busy = False
                    self._cond.notify_all()
            if report is not None:
                self._report(report)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _caught_up(self) -> tuple[int, int] | None:
        """Under the lock: with the queue empty, take output again and return the drops
        not told yet (None: nothing to tell)."""
        if self._queue or self.broken:
            return None
        self._dropping = False
        out, ev = self._unreported[OUTPUT], self._unreported[EVENT]
        if not (out or ev):
            return None
        self._unreported = {OUTPUT: 0, EVENT: 0}
        return out, ev

    def _report(self, counts: tuple[int, int]) -> None:
        line = self._dropped_line(*counts)
        if line is not None and not self._stream_closed():
            self._write_all(line)

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                # A descriptor somebody made non-blocking: wait until it takes more.
                poller = select.poll()
                poller.register(self._fd, select.POLLOUT)
                poller.poll(1000)
                continue
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self._retire()
                return False
            view = view[n:]
        return True

    def _retire(self) -> None:
        """The reader is gone for good: stop writing, and point the descriptors at
        /dev/null so a buffered rest (and the interpreter's flush of stdout at exit,
        which would turn the exit status into 120) go nowhere quietly."""
        with self._cond:
            self.broken = True
            self._dropping = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.dup2(devnull, self._fd)
        finally:
            os.close(devnull)

    # -- flush and close -------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until every queued line is written (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> bool:
        """Flush for at most `timeout`; past half of it, queued output lines are dropped
        so lifecycle events (`controller.stopped`) still get out to a slow reader."""
        deadline = time.monotonic() + timeout
        done = self.flush(timeout / 2)
        if not done:
            with self._cond:
                kept = deque(item for item in self._queue if item[0] != OUTPUT)
                purged = len(self._queue) - len(kept)
                self._queue = kept
                self._bytes = sum(len(data) for _, data in kept)
                if not self.broken:
                    self._unreported[OUTPUT] += purged
            _count_drop(OUTPUT, purged)
            done = self.flush(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        return done


# --- the handler ------------------------------------------------------------------------


def _stream_fd(stream: TextIO) -> int | None:
    """The descriptor behind `stream`, or None for an in-memory stream."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class _LineHandler(logging.Handler):
    """Formats each record in the caller's thread and hands the whole line to a
    :class:`_Sink` (a stream with a descriptor: stdout, a pipe, a file). An in-memory
    stream (tests) takes the line at once, with one write under the handler lock."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        fd = _stream_fd(stream)
        self.sink: _Sink | None = None
        if fd is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()  # what was printed before goes first
            self.sink = _Sink(fd, self._stream_closed, self._dropped_line)

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if not self.filter(record):
            return False
        sink = self.sink
        kind = _kind_of(record)
        if sink is not None and kind == OUTPUT and sink.refuses_output():
            sink.drop(kind)  # not even formatted
            return True
        # Format outside any lock: threads only contend for the queue or the write.
        try:
            line = self.format(record) + "\n"
        except Exception as exc:
            line = self._fallback(record, exc)
        if sink is not None:
            sink.offer(kind, line.encode(self.encoding, "backslashreplace"))
            return True
        with self.lock:  # type: ignore[union-attr]
            self._write(line, kind)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> None:  # type: ignore[override]
        if self.sink is not None:
            self.sink.flush(timeout)
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:  # type: ignore[override]
        """Called by logging.shutdown() at exit: pending lines get up to `timeout`."""
        if self.sink is not None:
            self.sink.close(timeout)
        super().close()

    def _stream_closed(self) -> bool:
        try:
            return bool(self.stream.closed)
        except Exception:
            return True

    def _dropped_line(self, output: int, events: int) -> bytes | None:
        """The `log.dropped` line the writer puts out once the sink has caught up."""
        if not _logger.isEnabledFor(logging.WARNING):
            return None
        n = output + events
        record = _logger.makeRecord(
            LOGGER_NAME,
            logging.WARNING,
            "",
            0,
            f"{n} log line(s) dropped: stdout could not keep up ({output} task output, "
            f"{events} other).",
            (),
            None,
        )
        record.__dict__[OBS_ATTR] = (
            "log.dropped",
            {"dropped": n, "output": output, "events": events, "dropped_total": dropped_lines()},
        )
        try:
            return (self.format(record) + "\n").encode(self.encoding, "backslashreplace")
        except Exception:
            return None

    def _fallback(self, record: logging.LogRecord, exc: Exception) -> str:
        event, _ = record_fields(record)
        data = {
            "timestamp": format_timestamp(record.created),
            "level": "error",
            "message": "A log record could not be formatted.",
            "event": "log.format-error",
            "original_event": event,
            "error": f"{type(exc).__name__}: {exc}",
        }
        if isinstance(self.formatter, TextLineFormatter):
            return (
                escape_control(
                    f"{data['timestamp']} error log.format-error original_event={event} "
                    f"{data['message']} {data['error']}"
                )
                + "\n"
            )
        return ENCODER.encode(sanitize(data)) + "\n"

    # -- in-memory streams ---------------------------------------------------------------

    def _write(self, line: str, kind: Kind) -> None:
        try:
            try:
                self.stream.write(line)
            except UnicodeEncodeError:
                # Text format on a stream that cannot take the characters (an ASCII
                # locale): TextIOWrapper encodes before buffering, so nothing went out.
                self.stream.write(line.encode("ascii", "backslashreplace").decode("ascii"))
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: "I/O operation on closed file"
            _count_drop(kind)


