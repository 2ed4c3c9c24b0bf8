"""Task documents as YAML text: values through PyYAML's safe dumper, comments by hand."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from reconciler.importer.model import ImportedTask

# Characters a YAML stream may not hold, plus those YAML 1.1 reads as line breaks (NEL,
# LS, PS, CR): inside a comment either would break the document.
_NOT_IN_COMMENT = re.compile(
    "[^\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line strings (stdin text) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a block cannot hold the text.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(value: Any, allow_unicode: bool) -> str:
    text: str = yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=allow_unicode,
        default_flow_style=False,
        width=4096,
    )
    return text


def dump_value(value: Any) -> str:
    """YAML for `value`, readable where possible and always read back as `value`.

    With allow_unicode PyYAML writes NEL, LS and PS unescaped, and its reader then takes
    them for line breaks; such text is written with escapes instead.
    """
    text = _dump(value, allow_unicode=True)
    if yaml.safe_load(text) != value:
        text = _dump(value, allow_unicode=False)
    return text


def comment_text(line: str) -> str:
    """One comment line that cannot end early or smuggle YAML into the document."""
    line = _NOT_IN_COMMENT.sub(lambda m: repr(m.group())[1:-1], line)
    return line if line.startswith("#") else f"# {line}"


def render_document(task: ImportedTask) -> str:
    head = "".join(comment_text(c) + "\n" for c in task.comments)
    return head + dump_value(task.document())


def render_stream(tasks: Iterable[ImportedTask]) -> str:
    """All documents as one multi-document YAML stream."""
    return "".join("---\n" + render_document(t) for t in tasks)


def file_name(task: ImportedTask) -> str:
    return f"{task.name}.yaml"


def write_files(
    tasks: Iterable[ImportedTask], directory: Path, *, overwrite: bool = False
) -> list[Path]:
    """One file per task. Never overwrites (the caller checks first, this makes sure)
    unless `overwrite`: then each file is replaced whole, through a rename."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for task in tasks:
        path = directory / file_name(task)
        target = path.with_name(f".{path.name}.import-tmp") if overwrite else path
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(render_document(task))
            if overwrite:
                os.replace(target, path)
        except BaseException:
            if overwrite:
                target.unlink(missing_ok=True)
            raise
        written.append(path)
    return written
