"""Reads of the spec directory, off the loop.

A full read of 100,000 files takes seconds; the tick must not wait for it. One worker
thread runs `SpecSet.refresh()` when asked and hands the result back; the loop applies it
in one step (DesiredState.apply) when it is there. Asked again while a read runs, the
worker reads once more when it is done: the last read always starts after the last ask,
so no change is missed, and asks in between cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.controller.specset import Refresh, SpecSet


class SpecReader:
    def __init__(self, specs: SpecSet, wake: Callable[[], None]) -> None:
        self._specs = specs
        self._wake = wake
        self._cond = threading.Condition()
        self._asked = False
        self._busy = False
        self._closed = False
        self._result: Refresh | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def read_now(self) -> Refresh:
        """Read on the caller's thread (at start, before the loop runs)."""
        with self._cond:
            assert not self._busy, "a read is running on the worker"
        return self._specs.refresh()

    def ask(self) -> None:
        """Read again soon; the result comes back through take()."""
        with self._cond:
            if self._closed:
                return
            self._asked = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="spec-reader", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy or self._asked

    def take(self) -> Refresh | None:
        """The newest finished read, once; re-raises a read's unexpected error."""
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            result, self._result = self._result, None
            return result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._asked and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._asked = False
                self._busy = True
            try:
                result = self._specs.refresh()
            except BaseException as exc:  # handed to the loop, which fails loudly
                with self._cond:
                    self._busy = False
                    self._error = exc
                self._wake()
                continue
            with self._cond:
                self._busy = False
                self._result = result  # a newer read replaces one not yet taken
            self._wake()
