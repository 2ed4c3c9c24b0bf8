"""From files to tasks: read (bounded), parse, validate, and check names across files."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from reconciler.boundedread import read_at_most
from reconciler.spec import defaults as task_defaults
from reconciler.spec.checks import check_semantics
from reconciler.spec.discovery import discover_roots
from reconciler.spec.errors import SpecError, document_label
from reconciler.spec.failure import failure_fields
from reconciler.spec.jsonload import parse_json
from reconciler.spec.models import NAME_PATTERN, TaskDocument
from reconciler.spec.models import Resources as Resources_
from reconciler.spec.normalised import GIVEN_ONLY
from reconciler.spec.safeyaml import ParsedFile, RawDocument, parse_yaml, quote
from reconciler.spec.safeyaml import Path as FieldPath
from reconciler.spec.schema import Issue, check_document
from reconciler.spec.security import running_as_root, unsafe_reason
from reconciler.spec.task import FrozenDict, Resources, Task, frozen, memory_bytes
from reconciler.spec.zones import host_zone

MAX_FILE_BYTES = 1024 * 1024

_NAME = re.compile(NAME_PATTERN)
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


@dataclass
class FileLoad:
    """One file's outcome. A file with any error contributes no tasks."""

    path: str
    tasks: list[Task] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    defaults: list[task_defaults.Defaults] = field(default_factory=list)  # kind: TaskDefaults


@dataclass
class LoadResult:
    files: dict[str, FileLoad] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)

    @property
    def tasks(self) -> dict[str, Task]:
        """Tasks of the files without errors (a duplicate name marks the later file invalid)."""
        return {t.name: t for f in self.files.values() if not f.errors for t in f.tasks}


def field_name(path: FieldPath) -> str | None:
    """`spec.hosts[2]`, `spec.env.API_KEY`; odd keys are quoted so a line stays one line."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _PLAIN_KEY.match(part) else quote(part)
            out += f".{text}" if out else text
    return out or None


@dataclass
class _Context:
    host_tz: ZoneInfo
    root: str | None
    check_permissions: bool
    folder_verdicts: dict[str, str | None] = field(default_factory=dict)
    defaults: task_defaults.Defaults | None = None  # the directory's TaskDefaults


def load_file(
    path: Path | str,
    display: str | None = None,
    *,
    root: str | Path | None = None,
    check_permissions: bool | None = None,
    host_tz: ZoneInfo | None = None,
    defaults: task_defaults.Defaults | None = None,
) -> FileLoad:
    """Read and validate one file; never raises for anything the file contains.

    `root` is the spec directory the file was found in (folders up to it are checked for
    safe permissions when running as root); `check_permissions` defaults to "am I root".
    """
    ctx = _Context(
        host_tz=host_tz or host_zone(),
        root=None if root is None else str(root),
        check_permissions=running_as_root() if check_permissions is None else check_permissions,
        defaults=defaults,
    )
    return _load_file(str(path), display if display is not None else str(path), ctx)


def _file_error(display: str, message: str, line: int | None = None) -> FileLoad:
    return FileLoad(display, [], [SpecError(display, line, None, None, message)])


def _read(path: str, display: str, ctx: _Context) -> str | FileLoad:
    try:
        # O_NONBLOCK: a FIFO named x.yaml must not stall the reader.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return _file_error(display, "broken symlink")
        return _file_error(display, f"cannot read: {(exc.strerror or str(exc)).lower()}")
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return _file_error(display, "is a directory, not a task file")
        if not stat.S_ISREG(st.st_mode):
            return _file_error(display, "not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            return _file_error(
                display, f"file is larger than 1 MiB ({st.st_size} bytes); refused unread"
            )
        if ctx.check_permissions:
            reason = unsafe_reason(path, st, ctx.root, ctx.folder_verdicts)
            if reason:
                return _file_error(display, reason)
        data = read_at_most(fd, MAX_FILE_BYTES)
    except OSError as exc:
        return _file_error(display, f"cannot read: {(exc.strerror or str(exc)).lower()}")
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        return _file_error(display, "file is larger than 1 MiB; refused unread")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _file_error(display, f"not valid UTF-8 (at byte offset {exc.start})", line)
    return text[1:] if text.startswith("\ufeff") else text


def _load_file(path: str, display: str, ctx: _Context) -> FileLoad:
    text = _read(path, display, ctx)
    if isinstance(text, FileLoad):
        return text
    parsed: ParsedFile = parse_json(text) if path.endswith(".json") else parse_yaml(text)
    load = FileLoad(display)
    names: dict[str, int] = {}
    for doc in parsed.documents:
        if task_defaults.is_defaults(doc):
            load.defaults += filter(None, [task_defaults.read(doc, display, load.errors)])
            continue
        task = _document(doc, display, ctx, load.errors)
        if task is None:
            continue
        first = names.get(task.name)
        if first is not None:
            load.errors.append(
                SpecError(
                    display,
                    doc.line,
                    task.name,
                    "metadata.name",
                    f"duplicate task name; also defined at {display}:{first}",
                )
            )
            continue
        names[task.name] = task.line
        load.tasks.append(task)
    if parsed.problem is not None:
        problem = parsed.problem
        load.errors.append(SpecError(display, problem.line, None, None, problem.message))
    if load.errors:
        load.tasks = []
        # Deterministic order: some schema errors come out of a set.
        load.errors.sort(key=lambda e: (e.line or 0, e.field or "", e.message))
        real = _outside_target(path, ctx.root)
        if real is not None:
            load.errors = [_withheld(display, real, load.errors)]
    return load


def _outside_target(path: str, root: str | None) -> str | None:
    """The real path of a file reached through a symlink that leaves the spec directory
    (for a file given itself: its own folder), else None."""
    base = os.path.realpath(root if root is not None else (os.path.dirname(path) or "."))
    real = os.path.realpath(path)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return real


def _withheld(display: str, real: str, errors: list[SpecError]) -> SpecError:
    """One error that quotes nothing of the file: its text may be anyone's secret
    (a link to /etc/shadow, a .env, a .git-credentials)."""
    count = len(errors)
    problems = "1 problem" if count == 1 else f"{count} problems"
    return SpecError(
        display,
        errors[0].line,
        None,
        None,
        f"invalid ({problems}); not quoted, as the file is reached through a symlink that "
        f"leaves the spec directory (to {real}): run `reconciler validate {real}` to see them",
    )


def _label(doc: RawDocument) -> str:
    data = doc.data
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and len(name) <= 63 and _NAME.match(name) and "\n" not in name:
        return name
    return document_label(doc.index)


def _document(
    doc: RawDocument, display: str, ctx: _Context, errors: list[SpecError]
) -> Task | None:
    label = _label(doc)

    def report(issues: list[Issue]) -> None:
        for path, message in issues:
            errors.append(SpecError(display, doc.line_of(path), label, field_name(path), message))

    if doc.problems:
        for problem in doc.problems:
            where = field_name(problem.path)
            errors.append(SpecError(display, problem.line, label, where, problem.message))
        return None
    data = doc.data
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else quote(data)
        errors.append(
            SpecError(
                display, doc.line, label, None, f"a task document must be a mapping, not {kind}"
            )
        )
        return None
    data = task_defaults.apply(data, ctx.defaults)
    checked = check_semantics(data)
    try:
        model = TaskDocument.model_validate(data)
    except ValidationError as exc:
        issues = check_document(data) or _pydantic_issues(exc)
        report(issues + checked.issues)
        return None
    if checked.issues:
        report(checked.issues)
        return None
    return _task(model, doc, display, ctx, checked.schedule, checked.zone, checked.hosts)


def _pydantic_issues(exc: ValidationError) -> list[Issue]:
    # The schema accepted what the models refused (the agreement tests rule it out): refuse.
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        out.append(Issue(loc, str(err["msg"])[:200]))
    return out


_GIVEN_SETS: dict[tuple[str, ...], frozenset[str]] = {}


def _given(keys: list[str]) -> frozenset[str]:
    """One frozenset per distinct combination, shared by the tasks that have it."""
    key = tuple(keys)
    found = _GIVEN_SETS.get(key)
    if found is None:
        found = _GIVEN_SETS[key] = frozenset(keys)
    return found


def _task(
    model: TaskDocument,
    doc: RawDocument,
    display: str,
    ctx: _Context,
    schedule: Any,
    zone: ZoneInfo | None,
    hosts: Any,
) -> Task:
    spec = model.spec
    meta = model.metadata
    daemon = spec.type == "daemon"
    command: tuple[str, ...] | str = (
        spec.command if isinstance(spec.command, str) else tuple(spec.command)
    )
    env = frozen(spec.env)
    resources = _resources(spec.resources)
    fields_given = spec.model_fields_set
    given = _given([key for key, attr in GIVEN_ONLY.items() if attr in fields_given])
    failure = failure_fields(spec)
    labels = frozen(meta.labels)
    return Task(
        name=meta.name,
        file=display,
        line=doc.line,
        labels=labels,
        type=spec.type,
        schedule=None if daemon else schedule,
        schedule_text=None if daemon else spec.schedule,
        timezone=zone or ctx.host_tz,
        timezone_name=spec.timezone,
        command=command,
        hosts=hosts if spec.hosts is not None else None,
        max_concurrency=1 if daemon else spec.max_concurrency,
        concurrency_policy="Forbid" if daemon else spec.concurrency_policy,
        starting_deadline_seconds=spec.starting_deadline_seconds,
        jitter_seconds=0 if daemon else spec.jitter_seconds,
        timeout_seconds=spec.timeout_seconds,
        termination_grace_period_seconds=spec.termination_grace_period_seconds,
        restart_policy=spec.restart_policy if daemon else "Never",
        env=env,
        working_dir=spec.working_dir,
        user=spec.user,
        suspend=spec.suspend,
        source=doc.source,
        resources=resources,
        successful_runs_history_limit=spec.successful_runs_history_limit,
        failed_runs_history_limit=spec.failed_runs_history_limit,
        output_limit_bytes=spec.output_limit_bytes,
        placement=spec.placement,
        placement_fallback=spec.placement_fallback,
        replicas=spec.replicas if daemon else 1,
        given=given,
        host_entries=None if spec.hosts is None else tuple(spec.hosts),
        **failure,
    )


def _resources(given: Resources_ | None) -> Resources | None:
    """memoryMax in bytes, cpuMax a float; None when the task sets no limit at all."""
    if given is None:
        return None
    out = Resources(
        memory_max=memory_bytes(given.memory_max) if given.memory_max is not None else None,
        cpu_max=float(given.cpu_max) if given.cpu_max is not None else None,
        open_files_max=given.open_files_max,
        processes_max=given.processes_max,
    )
    return None if out == Resources() else out


def find_duplicates(files: Mapping[str, FileLoad]) -> list[SpecError]:
    """Task names defined in more than one file: each later definition is an error."""
    first: dict[str, Task] = {}
    errors: list[SpecError] = []
    for load in files.values():
        for task in load.tasks:
            seen = first.get(task.name)
            if seen is None:
                first[task.name] = task
                continue
            errors.append(
                SpecError(
                    task.file,
                    task.line,
                    task.name,
                    "metadata.name",
                    f"duplicate task name; also defined at {seen.file}:{seen.line}",
                )
            )
    return errors


def load_paths(paths: Sequence[str | Path], *, check_permissions: bool | None = None) -> LoadResult:
    """Discover, load every file, then check names across files."""
    found, errors = discover_roots(paths)
    ctx = _Context(
        host_tz=host_zone(),
        root=None,
        check_permissions=running_as_root() if check_permissions is None else check_permissions,
    )
    result = LoadResult()

    def one(path: str, root: str | None, defaults: task_defaults.Defaults | None) -> FileLoad:
        ctx.root, ctx.defaults = root, defaults
        return _load_file(path, path, ctx)

    result.files.update(task_defaults.load_with_defaults(found, one))
    for error in find_duplicates(result.files):
        load = result.files[error.file]
        load.errors.append(error)
        load.tasks = []
    for load in result.files.values():
        errors.extend(load.errors)
    result.errors = errors
    return result


__all__ = ["FileLoad", "LoadResult", "FrozenDict", "find_duplicates", "load_file", "load_paths"]
