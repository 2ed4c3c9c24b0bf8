"""Run the converted documents through the spec loader, so that what is written validates.

The converters only reshape text; whether a schedule parses, a zone exists or a host
entry is well formed is decided where `reconciler validate` decides it. A task the loader
rejects is reported at its source line and left out.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from reconciler.importer.emit import file_name, render_document
from reconciler.importer.model import ImportedTask, Problem
from reconciler.spec import load_paths


def check(tasks: list[ImportedTask]) -> tuple[list[ImportedTask], list[Problem]]:
    if not tasks:
        return [], []
    by_file = {file_name(t): t for t in tasks}
    by_name = {t.name: t for t in tasks}
    with tempfile.TemporaryDirectory(prefix="reconciler-import-") as tmp:
        for fname, task in by_file.items():
            path = Path(tmp) / fname
            # 0600 whatever the umask: a root loader refuses group-writable files.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(render_document(task))
        result = load_paths([tmp])

    rejected: dict[str, list[str]] = {}
    stray: list[Problem] = []
    for err in result.errors:
        owner = by_file.get(Path(err.file).name) or by_name.get(err.task or "")
        text = f"{err.field}: {err.message}" if err.field else err.message
        if owner is None:
            stray.append(Problem(0, text))
        else:
            rejected.setdefault(owner.name, []).append(text)
    kept = [t for t in tasks if t.name not in rejected]
    problems = [Problem(by_name[n].line, "; ".join(msgs)) for n, msgs in rejected.items()]
    return kept, problems + stray
