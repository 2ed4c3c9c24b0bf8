"""Strict JSON task files, with the same bounds and line marks as YAML.

json.loads decides what is valid (no NaN/Infinity); a small scanner over the text then
finds the line of every key and array item, the nesting depth, the node count and
duplicate keys, which json.loads alone cannot report with a line.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from reconciler.spec.safeyaml import (
    DEPTH_MESSAGE,
    MAX_DEPTH,
    MAX_NODES,
    FileProblem,
    ParsedFile,
    Path,
    Problem,
    RawDocument,
    quote,
)

# A string (group 1; group 2 is the colon after a key), a bracket, or a number/literal.
_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")([ \t\r\n]*:)?|[{}\[\]]|[^ \t\r\n{}\[\],:"]+', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON task files")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would silently become infinity
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _line_of(text: str, word: str) -> int | None:
    pos = text.find(word)
    return None if pos < 0 else text.count("\n", 0, pos) + 1


def parse_json(text: str) -> ParsedFile:
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        return ParsedFile([], FileProblem(f"invalid JSON: {exc.msg}", exc.lineno))
    except RecursionError:
        return ParsedFile([], FileProblem(DEPTH_MESSAGE, 1))
    except ValueError as exc:  # NaN/Infinity, huge numbers
        message = str(exc)
        word = message.split()[0] if message.endswith("JSON task files") else ""
        line = _line_of(text, word) if word else None
        return ParsedFile([], FileProblem(f"invalid JSON: {message[:200]}", line))
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return ParsedFile([], FileProblem("invalid JSON: \\u escape of a lone surrogate"))
    doc = RawDocument(index=1, line=1, data=data, lines={}, source=text.strip())
    _scan(text, doc)
    return ParsedFile([doc])


def _scan(text: str, doc: RawDocument) -> None:
    """Lines, depth, node count and duplicate keys of text that json.loads accepted."""
    lines = doc.lines
    # A frame: [path, is_object, next item index or the pending key, keys seen]
    stack: list[list[Any]] = []
    nodes = 0
    last_pos, last_line = 0, 1

    def line_at(pos: int) -> int:
        nonlocal last_pos, last_line
        last_line += text.count("\n", last_pos, pos)
        last_pos = pos
        return last_line

    for match in _TOKEN.finditer(text):
        string, colon = match.group(1), match.group(2)
        first = text[match.start()]
        if first in "}]":
            stack.pop()
            continue
        if colon:  # an object key
            key = json.loads(string) if "\\" in string else string[1:-1]
            top = stack[-1]
            key_path = top[0] + (key,)
            line = line_at(match.start())
            if key in top[3]:
                first_line = lines[key_path]
                doc.problems.append(
                    Problem(
                        line, key_path, f"duplicate key {quote(key)} (first on line {first_line})"
                    )
                )
            else:
                top[3].add(key)
                lines[key_path] = line
            top[2] = key
            continue
        nodes += 1  # a value starts here
        if nodes > MAX_NODES:
            doc.problems.append(
                Problem(line_at(match.start()), (), f"document has more than {MAX_NODES} nodes")
            )
            return
        path: Path
        if not stack:
            path = ()
            doc.line = line_at(match.start())
        elif stack[-1][1]:
            path = stack[-1][0] + (stack[-1][2],)
        else:
            path = stack[-1][0] + (stack[-1][2],)
            lines[path] = line_at(match.start())
            stack[-1][2] += 1
        if first in "{[":
            if len(stack) >= MAX_DEPTH:
                doc.problems.append(Problem(line_at(match.start()), (), DEPTH_MESSAGE))
                return
            stack.append([path, first == "{", 0, set()])
