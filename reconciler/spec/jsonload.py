"""Strict JSON task files, with the same bounds and line marks as YAML.

json.loads decides what is valid (no NaN/Infinity); a small scanner over the text then
finds the line of every key and array item, the nesting depth, the node count and
duplicate keys, which json.loads alone cannot report with a line.
"""

from __future__ import annotations

import json
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

_TOKEN = re.compile(
    r'[ \t\r\n]*(?:("(?:[^"\\]|\\.)*")|([{}\[\],:])|([^ \t\r\n{}\[\],:"]+))', re.DOTALL
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON task files")


def parse_json(text: str) -> ParsedFile:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return ParsedFile([], FileProblem(f"invalid JSON: {exc.msg}", exc.lineno))
    except RecursionError:
        return ParsedFile([], FileProblem(DEPTH_MESSAGE, 1))
    except ValueError as exc:  # NaN/Infinity, integers of more than 4300 digits
        return ParsedFile([], FileProblem(f"invalid JSON: {str(exc)[:200]}"))
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return ParsedFile([], FileProblem("invalid JSON: \\u escape of a lone surrogate"))
    doc = RawDocument(index=1, line=1, data=data, lines={}, source=text.strip())
    _scan(text, doc)
    return ParsedFile([doc])


def _scan(text: str, doc: RawDocument) -> None:
    """Lines, depth, node count and duplicate keys of valid JSON text."""
    lines = doc.lines
    # A frame: [path, is_object, next index or pending key, keys seen]
    stack: list[list[Any]] = []
    line = 1
    nodes = 0
    expect_key = False
    first = True
    for match in _TOKEN.finditer(text):
        line += match.group(0).count("\n")
        string, punct, atom = match.groups()
        if punct in (":", ","):
            if punct == "," and stack and stack[-1][1]:
                expect_key = True
            continue
        if punct in ("}", "]"):
            stack.pop()
            expect_key = False
            continue
        if string is not None and expect_key:
            key = json.loads(string)
            top = stack[-1]
            key_path = top[0] + (key,)
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
            expect_key = False
            continue
        if string is None and punct is None and atom is None:
            continue
        # A value starts here.
        nodes += 1
        if nodes > MAX_NODES:
            doc.problems.append(Problem(line, (), f"document has more than {MAX_NODES} nodes"))
            return
        path: Path
        if not stack:
            path = ()
            if first:
                doc.line = line
                first = False
        elif stack[-1][1]:
            path = stack[-1][0] + (stack[-1][2],)
        else:
            path = stack[-1][0] + (stack[-1][2],)
            lines[path] = line
            stack[-1][2] += 1
        if punct in ("{", "["):
            if len(stack) >= MAX_DEPTH:
                doc.problems.append(Problem(line, (), DEPTH_MESSAGE))
                return
            is_object = punct == "{"
            stack.append([path, is_object, 0, set()])
            expect_key = is_object
