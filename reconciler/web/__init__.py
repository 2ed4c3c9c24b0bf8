"""The read-only status page and JSON API of `--http`, over the run history.

``WebApp(state_path, tasks, anchors)`` is a `Routes` callable for `HttpServer`: it maps
a request path to (status, content type, body) or None (404). It runs on the HTTP
server's worker threads, never on the loop: it reads the tasks through the callables it
was given (a snapshot of a dict) and the history files through `HistoryReader`.

- ``/``: every task with its schedule, next run, and its recent outcomes as coloured
  marks, each a link to the run's page. ``/runs/RUN_ID``: a run's record and output.
  Rendered by Jinja2 with autoescape on; no JavaScript, nothing loaded from elsewhere.
- ``/api/v1/tasks``, ``/api/v1/runs?task=NAME&limit=N``, ``/api/v1/runs/RUN_ID``,
  ``/api/v1/runs/RUN_ID/output``: JSON with camelCase keys. Env values never appear.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from reconciler.history import HistoryReader, lines_of, valid_run_id
from reconciler.history.files import INDEX_FILE, RUNS_DIR
from reconciler.history.view import api_output, api_record, duration_text, iso, local_time
from reconciler.obs import log_event

if TYPE_CHECKING:
    from jinja2 import Environment

    from reconciler.spec import Task

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
MARKS = 20  # recent outcomes shown per task
MAX_LIMIT = 1000

Answer = tuple[int, str, bytes]


def warn_if_exposed(host: str) -> None:
    """`--http` on an address other hosts can reach: run output may hold secrets."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log_event(
            "http.exposed",
            f"--http listens on {host}, reachable from other hosts: the status page and API "
            "show task output, which may hold secrets that tasks print; bind to 127.0.0.1 "
            "or put an authenticating proxy in front.",
            level="warning", host=host,
        )


def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["when"] = local_time
    return env


class WebApp:
    def __init__(
        self,
        state_path: Path,
        tasks: Callable[[], Mapping[str, Task]],
        anchors: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self.state_path = Path(state_path)
        self.tasks = tasks
        self.anchors = anchors
        self._env: Environment | None = None
        self._cache: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # task -> mtime, runs

    def __call__(self, target: str) -> Answer | None:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        parts = [p for p in path.split("/") if p]
        if path == "/":
            return self._html("index.html", rows=self._rows(), now=time.time())
        if len(parts) == 2 and parts[0] == "runs":
            doc = self._run(parts[1])
            if doc is None:
                return self._html("missing.html", code=404, run_id=parts[1])
            return self._html("run.html", rec=doc["record"], lines=lines_of(doc),
                              duration=duration_text(doc["record"], time.time()))
        if parts[:2] != ["api", "v1"]:
            return None
        rest = parts[2:]
        if rest == ["tasks"]:
            return _json(200, [self._task_json(t) for t in self._sorted_tasks()])
        if rest == ["runs"]:
            return self._runs_json(query)
        if len(rest) in (2, 3) and rest[0] == "runs" and rest[2:] in ([], ["output"]):
            doc = self._run(rest[1])
            if doc is None:
                return _json(404, {"error": f"no run {rest[1]} recorded"})
            if rest[2:] == ["output"]:
                return _json(200, {"runId": rest[1], **api_output(doc["output"])})
            return _json(200, api_record(doc["record"]))
        return None

    # --- data ---------------------------------------------------------------------------

    def _sorted_tasks(self) -> list[Task]:
        return [t for _, t in sorted(dict(self.tasks()).items())]

    def _run(self, run_id: str) -> dict[str, Any] | None:
        return HistoryReader(self.state_path).run(run_id) if valid_run_id(run_id) else None

    def _recent(self, task: str) -> list[dict[str, Any]]:
        """A task's runs newest first, cached while its index file is unchanged."""
        try:
            mtime = os.stat(self.state_path / RUNS_DIR / task / INDEX_FILE,
                            follow_symlinks=False).st_mtime_ns
        except OSError:
            return []
        found = self._cache.get(task)
        if found is None or found[0] != mtime:
            found = (mtime, HistoryReader(self.state_path).runs(task))
            self._cache[task] = found
        return found[1]

    def _next_run(self, task: Task, now: float) -> int | None:
        sched = task.schedule
        if task.type != "cron" or sched is None or sched.kind == "reboot" or task.suspend:
            return None
        anchor = self.anchors().get(task.name)
        if sched.kind == "every" and anchor is None:
            return None
        return sched.next_after(int(now), task.timezone, anchor)

    def _rows(self) -> list[dict[str, Any]]:
        now = time.time()
        rows = []
        for task in self._sorted_tasks():
            runs = self._recent(task.name)
            rows.append({
                "name": task.name, "type": task.type,
                "schedule": _schedule(task), "suspended": task.suspend,
                "next": self._next_run(task, now),
                "marks": list(reversed(runs[:MARKS])),
                "last": next((r for r in runs if r.get("ended") is not None), None),
            })
        return rows

    def _task_json(self, task: Task) -> dict[str, Any]:
        runs = self._recent(task.name)
        nxt = self._next_run(task, time.time())
        return {
            "name": task.name, "type": task.type, "schedule": task.schedule_text,
            "timezone": task.timezone_name, "suspended": task.suspend,
            "nextRun": iso(nxt), "lastRun": api_record(runs[0]) if runs else None,
        }

    def _runs_json(self, query: dict[str, list[str]]) -> Answer:
        names = query.get("task")
        task = names[0] if names else None
        try:
            limit = int((query.get("limit") or ["100"])[0])
        except ValueError:
            return _json(400, {"error": "limit must be a number"})
        limit = max(1, min(limit, MAX_LIMIT))
        reader = HistoryReader(self.state_path)
        return _json(200, [api_record(r) for r in reader.runs(task, limit)])

    # --- rendering ----------------------------------------------------------------------

    def _html(self, name: str, code: int = 200, **values: Any) -> Answer:
        if self._env is None:
            self._env = _environment()
        body = self._env.get_template(name).render(**values)
        return code, HTML, body.encode("utf-8", "replace")


def _schedule(task: Task) -> str:
    if task.type != "cron":
        return "daemon"
    text = task.schedule_text or "-"
    return f"{text} ({task.timezone_name})" if task.timezone_name else text


def _json(code: int, obj: Any) -> Answer:
    return code, JSON, json.dumps(obj, indent=1).encode()
