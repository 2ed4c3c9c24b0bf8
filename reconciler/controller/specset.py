"""The tasks in force: the last good load of every file, re-read only where files changed.

A file that fails validation changes nothing (its last good tasks stay in force); a file
that is gone takes its tasks with it; a spec directory that is gone as a whole is an error
that changes nothing. "Gone" means a successful read shows it gone: a file under a folder
that could not be read (EACCES, EMFILE, EIO), or that could not be opened, keeps its last
good tasks. Unchanged files (same inode, size, mtime and ctime) are not parsed
again, so an edit among 10,000 tasks costs one file's parse. A change of the directory's
`kind: TaskDefaults` reaches every task, so every file is read again with it; a defaults
document that fails keeps its last good defaults in force.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from reconciler.spec import FileLoad, SpecError, Task, load_file
from reconciler.spec.defaults import Defaults, pick_defaults
from reconciler.spec.discovery import discover_tree
from reconciler.spec.zones import host_zone

Signature = tuple[int, int, int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _not_a_directory(root: Path) -> str | None:
    """Why the spec directory cannot be walked as such, or None."""
    try:
        st = os.stat(root)
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({(exc.strerror or str(exc)).lower()})"
    return None if stat.S_ISDIR(st.st_mode) else "is not a directory"


@dataclass
class Refresh:
    tasks: dict[str, Task]
    errors: list[SpecError]
    dir_error: str | None = None


class SpecSet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._parsed: dict[str, tuple[Signature | None, FileLoad]] = {}
        self._good: dict[str, FileLoad] = {}
        self._errors: dict[str, list[SpecError]] = {}
        self._had_conflicts = False  # duplicate names stand as errors until resolved
        self._defaults: Defaults | None = None  # the directory's TaskDefaults in force
        self.tasks: dict[str, Task] = {}

    @property
    def errors(self) -> list[SpecError]:
        return [e for f in sorted(self._errors) for e in self._errors[f]]

    def refresh(self) -> Refresh:
        what = _not_a_directory(self.root)
        if what is not None:
            return Refresh(
                tasks=self.tasks,
                errors=self.errors,
                dir_error=f"spec directory {self.root} {what}; keeping the tasks in force",
            )
        discovery = discover_tree([self.root])
        found = discovery.found
        tz = host_zone()
        errors: dict[str, list[SpecError]] = {}
        for err in discovery.errors:
            errors.setdefault(err.file, []).append(err)
        parsed, changed = self._load(found, tz, self._parsed)
        # A TaskDefaults that changed (or came, or went) reaches every task: read all again.
        defaults, defaults_errors = self._pick_defaults(parsed)
        if (defaults.fingerprint if defaults else None) != (
            self._defaults.fingerprint if self._defaults else None
        ):
            self._defaults = defaults
            parsed, changed = self._load(found, tz, {})
        for err in defaults_errors:
            errors.setdefault(err.file, []).append(err)
        # Under a folder that could not be read, a file not found is unknown, not gone.
        unknown = [
            key
            for key in self._parsed.keys() | self._good.keys()
            if key not in parsed and discovery.under_unreadable(key)
        ]
        for key in unknown:
            if key in self._parsed:
                parsed[key] = self._parsed[key]
        self._parsed = parsed

        good: dict[str, FileLoad] = {}
        for key, (_, load) in parsed.items():
            if load.errors:
                errors.setdefault(key, []).extend(load.errors)
                if key in self._good:
                    good[key] = self._good[key]
            else:
                good[key] = load
        # Files refused at discovery (permissions, unreadable) keep their last good tasks,
        # as do files under a folder that could not be read.
        for key in [*errors, *unknown]:
            if key not in good and key in self._good:
                good[key] = self._good[key]

        if changed or errors or self._had_conflicts or set(good) != set(self._good):
            before = sum(len(v) for v in errors.values())
            good = self._resolve_duplicates(good, errors)
            self._had_conflicts = sum(len(v) for v in errors.values()) > before
        else:
            good = self._good  # nothing new: the resolution of last time stands
        if good is not self._good or not self.tasks:
            tasks: dict[str, Task] = {}
            for key in sorted(good):
                for task in good[key].tasks:
                    tasks[task.name] = task
            self.tasks = tasks
        self._good = good
        self._errors = errors
        tasks = self.tasks
        return Refresh(tasks=tasks, errors=self.errors)

    def _load(
        self,
        found: list[tuple[Path, str | None]],
        tz: ZoneInfo,
        cache: dict[str, tuple[Signature | None, FileLoad]],
    ) -> tuple[dict[str, tuple[Signature | None, FileLoad]], list[str]]:
        """Every file found, parsed again only where it changed (inode, size, times)."""
        parsed: dict[str, tuple[Signature | None, FileLoad]] = {}
        changed: list[str] = []
        for path, root in found:
            key = str(path)
            sig = _signature(path)
            cached = cache.get(key)
            if cached is not None and sig is not None and cached[0] == sig:
                parsed[key] = cached
                continue
            load = load_file(path, key, root=root, host_tz=tz, defaults=self._defaults)
            parsed[key] = (sig, load)
            changed.append(key)
        return parsed, changed

    def _pick_defaults(
        self, parsed: dict[str, tuple[Signature | None, FileLoad]]
    ) -> tuple[Defaults | None, list[SpecError]]:
        """The TaskDefaults of the directory: from each file's load, or its last good load
        when the file now fails (a broken defaults document keeps the last good one)."""
        found: list[Defaults] = []
        for key, (_, load) in parsed.items():
            source = self._good.get(key, load) if load.errors else load
            found.extend(source.defaults)
        return pick_defaults(found)

    def _resolve_duplicates(
        self, good: dict[str, FileLoad], errors: dict[str, list[SpecError]]
    ) -> dict[str, FileLoad]:
        """A name defined in two files: the file that had it in force keeps it.

        The newcomer is refused as a whole (its previous load stays, or nothing); when
        neither had it, both are refused.
        """
        owner_before = {t.name: t.file for load in self._good.values() for t in load.tasks}
        for _ in range(len(good) + 1):
            places: dict[str, list[Task]] = {}
            for load in good.values():
                for task in load.tasks:
                    places.setdefault(task.name, []).append(task)
            conflicts = {n: ts for n, ts in places.items() if len({t.file for t in ts}) > 1}
            if not conflicts:
                return good
            refused: set[str] = set()
            for name, defs in conflicts.items():
                incumbent = owner_before.get(name)
                for task in defs:
                    if task.file == incumbent:
                        continue
                    others = ", ".join(
                        f"{o.file}:{o.line}" for o in defs if o.file != task.file
                    )
                    errors.setdefault(task.file, []).append(
                        SpecError(
                            file=task.file,
                            line=task.line,
                            task=name,
                            field="metadata.name",
                            message=f"{name} is also defined in {others}",
                        )
                    )
                    refused.add(task.file)
            for key in refused:
                previous = self._good.get(key)
                if previous is not None and good.get(key) is not previous:
                    good[key] = previous
                else:
                    good.pop(key, None)
        return good
