"""Bounded, safe YAML and JSON reading with a line number for every value.

PyYAML's own composer and constructor are not used: they build the whole node graph
before anything can be checked, recurse once per nesting level, keep the last of two
duplicate keys and expand aliases without limit. Instead the parser's event stream is
turned into plain Python data here, one event at a time, so that nesting depth, node
count (aliases expanded) and duplicate keys are checked before the next event is read.
A billion-laughs document stops after 10,000 nodes, and one that repeats a long
string through aliases after 1 MiB of scalar text; 100,000 nested brackets stop at
level 65. Only the standard safe scalar tags are accepted.

The result is JSON-shaped data (dict with str keys, list, str, int, float, bool, None;
YAML timestamps and binary stay date/datetime/bytes so the schema rejects them with a
clear type error) plus a map from field path to line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode

MAX_DEPTH = 64
MAX_NODES = 10_000
MAX_DOCUMENTS = 1_000
# Scalar text (keys and values, in characters) once aliases are expanded. Counted over
# the whole file: without aliases a file of at most 1 MiB cannot hold more, so only
# aliases can reach it, and a file's tasks together stay as small as the file could be.
MAX_TEXT = 1024 * 1024
TEXT_MESSAGE = "document expands to more than 1 MiB of scalar text (aliases included)"
FILE_TEXT_MESSAGE = (
    "document expands the file past 1 MiB of scalar text (aliases included, "
    "counted over all its documents)"
)
DEPTH_MESSAGE = f"nesting deeper than {MAX_DEPTH} levels of mappings and lists"

Path = tuple[str | int, ...]

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null"
_MERGE, _SEQ, _MAP = _Y + "merge", _Y + "seq", _Y + "map"
_TIMESTAMP, _BINARY, _VALUE = _Y + "timestamp", _Y + "binary", _Y + "value"
_MERGE_KEY = object()

# A private copy, so that resolvers registered elsewhere on PyYAML's classes never apply.
_RESOLVERS: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
    k: list(v) for k, v in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_WILDCARD = _RESOLVERS.get(None, [])

_CTOR = SafeConstructor()
_CONSTRUCT: dict[str, Callable[[Any, ScalarNode], Any]] = {
    _INT: SafeConstructor.construct_yaml_int,
    _FLOAT: SafeConstructor.construct_yaml_float,
    _BOOL: SafeConstructor.construct_yaml_bool,
    _NULL: SafeConstructor.construct_yaml_null,
    _TIMESTAMP: SafeConstructor.construct_yaml_timestamp,
    _BINARY: SafeConstructor.construct_yaml_binary,
}

try:  # libyaml makes reading about ten times faster; the pure parser behaves the same.
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

QUOTE_LIMIT = 200

_MISS = object()
# Plain scalars resolve the same way every time, and task files repeat most of them
# (keys, types, schedules): resolving each distinct text once is a large part of speed.
_PLAIN_CACHE: dict[str, Any] = {}
_PLAIN_CACHE_MAX = 50_000
_PLAIN_CACHED_MAX_LEN = 200


def _resolve(value: str) -> str:
    for tag, regexp in _RESOLVERS.get(value[0] if value else "", ()):
        if regexp.match(value):
            return tag
    for tag, regexp in _WILDCARD:
        if regexp.match(value):
            return tag
    return _STR


def _plain(value: str) -> Any:
    """The value of a plain (unquoted, untagged) scalar; _MERGE_KEY for `<<`.

    Raises ValueError for text that resolves to a type but does not construct.
    """
    found = _PLAIN_CACHE.get(value, _MISS)
    if found is not _MISS:
        return found
    tag = _resolve(value)
    if tag in (_STR, _VALUE):
        result: Any = value
    elif tag == _MERGE:
        return _MERGE_KEY
    else:
        node = ScalarNode(tag, value)
        try:
            result = _CONSTRUCT[tag](_CTOR, node)
        except (ValueError, TypeError, ConstructorError, OverflowError, KeyError):
            raise ValueError(short_tag(tag)) from None
    if len(value) <= _PLAIN_CACHED_MAX_LEN:
        if len(_PLAIN_CACHE) >= _PLAIN_CACHE_MAX:
            _PLAIN_CACHE.clear()
        _PLAIN_CACHE[value] = result
    return result


def quote(value: Any) -> str:
    """A value for an error message: JSON-escaped (no raw control characters) and short."""
    if isinstance(value, str):
        if len(value) > QUOTE_LIMIT:
            return json.dumps(value[:QUOTE_LIMIT], ensure_ascii=False)[:-1] + '..."'
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "..."
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bytes):
        return "binary data"
    text = str(value)  # dates and times
    return text[:QUOTE_LIMIT]


def short_tag(tag: str) -> str:
    text = "!!" + tag[len(_Y) :] if tag.startswith(_Y) else tag
    return quote(text)[1:-1]


@dataclass
class Problem:
    """A structural problem in one document (the document is then invalid)."""

    line: int | None
    path: Path
    message: str


@dataclass
class RawDocument:
    index: int  # 1-based position among the documents of the file
    line: int
    data: Any
    lines: dict[Path, int]
    source: str
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Path) -> int:
        """Line of the value at path, else of its nearest ancestor that has one."""
        lines = self.lines
        for end in range(len(path), 0, -1):
            found = lines.get(path[:end])
            if found is not None:
                return found
        return self.line


class FileProblem(Exception):
    """The file as a whole cannot be read (syntax error, too many documents, ...)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass
class ParsedFile:
    documents: list[RawDocument]
    problem: FileProblem | None = None


class _Bad:
    """Stands for a mapping key that was rejected; its value is read and dropped."""


_BAD = _Bad()
_NO_KEY = object()


class _Frame:
    __slots__ = (
        "is_map",
        "value",
        "path",
        "key",
        "key_line",
        "merges",
        "start",
        "anchor",
        "line",
        "as_key",
        "chars",
    )

    def __init__(self, is_map: bool, path: Path, start: int, anchor: str | None, line: int) -> None:
        self.is_map = is_map
        self.line = line
        self.value: Any = {} if is_map else []
        self.path = path
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.merges: list[tuple[Any, int]] | None = None
        self.start = start
        self.anchor = anchor
        self.as_key = False
        self.chars = 0  # scalar text before this collection (set for anchored ones)


class _Abandon(Exception):
    """Stop building the current document; the rest of its events are skipped."""


def _is_notify(path: Path) -> bool:
    return len(path) == 3 and path[:2] == ("spec", "notify")


class _DocumentBuilder:
    """Turns the events of one document into data, checking the bounds as it goes."""

    def __init__(self, index: int, text: str, chars: int = 0) -> None:
        self.index = index
        self.text = text
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.nodes = 0
        # Scalar text of the file so far (documents before this one included).
        self.chars = chars
        self.chars_before = chars
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.root: Any = None
        self.root_line = 0
        self.root_start = 0
        self.source = ""
        self.empty = False

    # -- helpers --------------------------------------------------------------------

    def problem(self, line: int | None, path: Path, message: str) -> None:
        self.problems.append(Problem(line, path, message))

    def child_path(self) -> Path | None:
        """Path of the node about to start, or None when it is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.is_map:
            if top.key is _NO_KEY:
                return None
            if top.key is _BAD or top.key is _MERGE_KEY:
                return top.path + ("?",)
            return top.path + (top.key,)
        return top.path + (len(top.value),)

    def count(self, n: int, line: int, chars: int = 0) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            self.problem(
                line, (), f"document expands to more than {MAX_NODES} nodes (aliases included)"
            )
            raise _Abandon
        self.chars += chars
        if self.chars > MAX_TEXT:
            self.problem(line, (), self.text_message())
            raise _Abandon

    def carried_chars(self) -> int:
        """The file's scalar text after this document; one refused for its own size adds
        nothing, so that the documents after it are judged on their own."""
        return self.chars if self.chars <= MAX_TEXT else self.chars_before

    def text_message(self) -> str:
        return TEXT_MESSAGE if self.chars - self.chars_before > MAX_TEXT else FILE_TEXT_MESSAGE

    # -- events ---------------------------------------------------------------------

    def scalar(self, ev: Any) -> None:
        line = ev.start_mark.line + 1
        self.count(1, line, len(ev.value))
        value = self.construct_scalar(ev, line)
        if not self.stack and value is None and ev.value == "" and ev.tag is None:
            self.empty = True
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (value, 1, len(ev.value))
        self.attach(value, line, ev.start_mark.index, ev.end_mark.index, ev)

    def alias(self, ev: Any) -> None:
        line = ev.start_mark.line + 1
        found = self.anchors.get(ev.anchor)
        if found is None:
            # An anchor still open is a recursive alias; any other was never defined, as
            # when `*/5 * * * *` is left unquoted.
            hint = "" if any(f.anchor == ev.anchor for f in self.stack) else ALIAS_HINT
            self.problem(
                line, self.child_path() or (), f"unknown alias *{short_tag(ev.anchor)}{hint}"
            )
            raise _Abandon
        value, size, chars = found
        self.count(size, line, chars)
        self.attach(value, line, ev.start_mark.index, ev.end_mark.index, None)

    def start(self, ev: Any, is_map: bool) -> None:
        line = ev.start_mark.line + 1
        if len(self.stack) >= MAX_DEPTH:
            self.problem(line, (), DEPTH_MESSAGE)
            raise _Abandon
        self.count(1, line)
        tag = ev.tag
        if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
            self.problem(line, self.child_path() or (), f"tag {short_tag(tag)} is not allowed")
        path = self.child_path()
        as_key = path is None
        if path is None:
            self.problem(line, self.stack[-1].path, "a mapping key must be a string")
            path = self.stack[-1].path + ("?",)
        elif not self.stack:
            self.root_line = line
            self.root_start = ev.start_mark.index
        frame = _Frame(is_map, path, self.nodes - 1, ev.anchor, line)
        frame.chars = self.chars
        frame.as_key = as_key
        self.stack.append(frame)

    def end(self, ev: Any) -> None:
        frame = self.stack.pop()
        if frame.is_map and frame.merges:
            self.apply_merges(frame)
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (
                frame.value,
                self.nodes - frame.start,
                self.chars - frame.chars,
            )
        if frame.as_key:  # already reported; its value is read and dropped
            self.stack[-1].key = _BAD
            return
        self.attach(frame.value, frame.line, 0, ev.end_mark.index, None)

    # -- building -------------------------------------------------------------------

    def construct_scalar(self, ev: Any, line: int) -> Any:
        value: str = ev.value
        tag = ev.tag
        if tag is None and ev.implicit[0]:
            try:
                found = _plain(value)
            except ValueError as exc:
                self.problem(line, self.child_path() or (), f"value is not a valid {exc}")
                return None
            if found is _MERGE_KEY and not (self.stack and self.stack[-1].is_map):
                return value
            if value == "on" and self.child_path() is None and _is_notify(self.stack[-1].path):
                return value  # the key `on:` of a notify entry is the word, not YAML 1.1 true
            return found
        if tag is None or tag == "!":
            return value
        if tag == _STR:
            return value
        if tag == _MERGE:
            return _MERGE_KEY if self.stack and self.stack[-1].is_map else value
        if tag == _VALUE:
            return value
        ctor = _CONSTRUCT.get(tag)
        if ctor is None:
            self.problem(line, self.child_path() or (), f"tag {short_tag(tag)} is not allowed")
            return None
        node = ScalarNode(tag, value, ev.start_mark, ev.end_mark, ev.style)
        try:
            return ctor(_CTOR, node)
        except (ValueError, TypeError, ConstructorError, OverflowError):
            # The value is not quoted: it may be a secret (env).
            self.problem(line, self.child_path() or (), f"value is not a valid {short_tag(tag)}")
            return None

    def attach(self, value: Any, line: int, start: int, end: int, ev: Any) -> None:
        stack = self.stack
        if not stack:
            self.root = value
            if ev is not None:  # a scalar root
                self.root_line = line
                self.root_start = start
            self.source = self.text[self.root_start : end].rstrip()
            return
        top = stack[-1]
        if not top.is_map:
            self.lines[top.path + (len(top.value),)] = line
            top.value.append(value)
            return
        if top.key is _NO_KEY:
            self.take_key(top, value, line)
            return
        key = top.key
        top.key = _NO_KEY
        if key is _BAD:
            return
        if key is _MERGE_KEY:
            self.take_merge(top, value)
            return
        top.value[key] = value

    def take_key(self, top: _Frame, key: Any, line: int) -> None:
        top.key_line = line
        if key is _MERGE_KEY:
            if top.merges is not None:
                self.problem(line, top.path, "duplicate merge key <<")
                top.key = _BAD
            else:
                top.merges = []
                top.key = _MERGE_KEY
            return
        if not isinstance(key, str):
            self.problem(line, top.path, f"mapping key {quote(key)} must be a string (quote it)")
            top.key = _BAD
            return
        path = top.path + (key,)
        if key in top.value:
            first = self.lines.get(path)
            self.problem(line, path, f"duplicate key {quote(key)} (first on line {first})")
            top.key = _BAD
            return
        self.lines[path] = line
        top.key = key

    def take_merge(self, top: _Frame, value: Any) -> None:
        assert top.merges is not None
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                self.problem(
                    top.key_line,
                    top.path,
                    "the value of << must be a mapping or a list of mappings",
                )
                return
            top.merges.append((source, top.key_line))

    def apply_merges(self, frame: _Frame) -> None:
        # As YAML's merge key type: explicit keys win, then earlier merged mappings.
        target = frame.value
        assert frame.merges is not None
        for source, line in frame.merges:
            for key, value in source.items():
                if key not in target:
                    target[key] = value
                    self.lines[frame.path + (key,)] = line


def parse_yaml(text: str) -> ParsedFile:
    """Every document of a YAML stream, each with its own problems; stops at a syntax error."""
    documents: list[RawDocument] = []
    loader = _Loader(text)
    get_event = loader.get_event
    scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    doc_start, stream_end = yaml.DocumentStartEvent, yaml.StreamEndEvent
    index = 0
    file_chars = 0  # scalar text of the documents before, aliases expanded
    builder: _DocumentBuilder | None = None
    skipping = False
    cached = _PLAIN_CACHE.get
    try:
        while True:
            ev = get_event()
            cls = ev.__class__
            if cls is scalar_event and builder is not None and not skipping:
                # The common case inline, for speed: a plain or quoted scalar without tag
                # or anchor inside a collection, whose value is known. Its text is counted
                # here and checked at the next alias and at the document's end (without
                # aliases, text cannot outgrow the file). Anything else, and
                # any key that needs a check, takes builder.scalar() below.
                stack = builder.stack
                if stack and ev.anchor is None and ev.tag is None and builder.nodes < MAX_NODES:
                    value = ev.value
                    if ev.implicit[0]:
                        value = cached(value, _MISS)
                        if value is _MISS:
                            try:
                                value = _plain(ev.value)
                            except ValueError:
                                value = _MISS
                    if value is not _MISS and value is not _MERGE_KEY:
                        top = stack[-1]
                        if not top.is_map:
                            builder.lines[top.path + (len(top.value),)] = ev.start_mark.line + 1
                            top.value.append(value)
                            builder.nodes += 1
                            builder.chars += len(ev.value)
                            continue
                        key = top.key
                        if key is _NO_KEY:
                            if value.__class__ is str and value not in top.value:
                                line = ev.start_mark.line + 1
                                builder.lines[top.path + (value,)] = line
                                top.key = value
                                top.key_line = line
                                builder.nodes += 1
                                builder.chars += len(ev.value)
                                continue
                        elif key is not _BAD and key is not _MERGE_KEY:
                            top.value[key] = value
                            top.key = _NO_KEY
                            builder.nodes += 1
                            builder.chars += len(ev.value)
                            continue
            elif (cls is map_end or cls is seq_end) and builder is not None and not skipping:
                # Inline too: a collection without anchor or merges ends inside another.
                stack = builder.stack
                if len(stack) > 1:
                    frame = stack[-1]
                    if frame.anchor is None and not frame.merges and not frame.as_key:
                        top = stack[-2]
                        if not top.is_map:
                            stack.pop()
                            top.value.append(frame.value)
                            continue
                        key = top.key
                        if key is not _NO_KEY and key is not _BAD and key is not _MERGE_KEY:
                            stack.pop()
                            top.value[key] = frame.value
                            top.key = _NO_KEY
                            continue
            elif (cls is map_start or cls is seq_start) and builder is not None and not skipping:
                stack = builder.stack
                if (
                    stack
                    and ev.anchor is None
                    and ev.tag is None
                    and len(stack) < MAX_DEPTH
                    and builder.nodes < MAX_NODES
                ):
                    top = stack[-1]
                    line = ev.start_mark.line + 1
                    if not top.is_map:
                        path = top.path + (len(top.value),)
                        builder.lines[path] = line
                    else:
                        key = top.key
                        if key is _NO_KEY or key is _BAD or key is _MERGE_KEY:
                            path = None
                        else:
                            path = top.path + (key,)
                    if path is not None:
                        builder.nodes += 1
                        stack.append(_Frame(cls is map_start, path, builder.nodes - 1, None, line))
                        continue
            if cls is doc_start:
                index += 1
                if index > MAX_DOCUMENTS:
                    return ParsedFile(
                        [], FileProblem(f"more than {MAX_DOCUMENTS} documents in one file")
                    )
                builder = _DocumentBuilder(index, text, file_chars)
                skipping = False
                continue
            if cls is stream_end:
                break
            if builder is None:
                continue
            if skipping:
                if cls is yaml.DocumentEndEvent:
                    file_chars = builder.carried_chars()
                    builder = None
                continue
            try:
                if cls is scalar_event:
                    builder.scalar(ev)
                elif cls is map_start:
                    builder.start(ev, True)
                elif cls is seq_start:
                    builder.start(ev, False)
                elif cls is map_end or cls is seq_end:
                    builder.end(ev)
                elif cls is alias_event:
                    builder.alias(ev)
                elif cls is yaml.DocumentEndEvent:
                    _finish(builder, documents)
                    file_chars = builder.carried_chars()
                    builder = None
            except _Abandon:
                assert builder is not None
                documents.append(_failed(builder))
                skipping = True
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        return ParsedFile(documents, FileProblem(_yaml_message(exc), at))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        if "maximum nesting depth" in str(exc.problem):
            # libyaml scans ahead and may stop deep flow nesting before the check here.
            if skipping and documents and documents[-1].problems[-1].message == DEPTH_MESSAGE:
                return ParsedFile(documents)  # already reported for this document
            return ParsedFile(documents, FileProblem(DEPTH_MESSAGE, where))
        message = _yaml_message(exc) + _hint(exc, text, mark)
        return ParsedFile(documents, FileProblem(message, where))
    except yaml.YAMLError as exc:  # reader errors: control characters and the like
        return ParsedFile(documents, FileProblem(_yaml_message(exc)))
    finally:
        loader.dispose()
    return ParsedFile(documents)


def _finish(builder: _DocumentBuilder, documents: list[RawDocument]) -> None:
    if builder.chars > MAX_TEXT:
        builder.problem(builder.root_line or 1, (), builder.text_message())
        documents.append(_failed(builder))
        return
    if builder.empty and not builder.problems:
        return
    documents.append(
        RawDocument(
            index=builder.index,
            line=builder.root_line,
            data=builder.root,
            lines=builder.lines,
            source=builder.source,
            problems=builder.problems,
        )
    )


def _failed(builder: _DocumentBuilder) -> RawDocument:
    line = builder.root_line or (builder.problems[0].line if builder.problems else None) or 1
    return RawDocument(builder.index, line, None, builder.lines, "", builder.problems)


ALIAS_HINT = " (YAML reads a value that starts with * as an alias: quote it)"
TAB_HINT = "; a tab in the indentation: YAML indents with spaces only"
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML 1.1's line breaks
# `key: *value` or `- *value` on the line of an alias error.
_STAR_VALUE = re.compile(r"^[ \t]*(?:-[ \t]+)?(?:([^\s:#'\"][^:#]*?):[ \t]+)?(\*.*?)[ \t]*$")


def _hint(exc: yaml.MarkedYAMLError, text: str, mark: Any) -> str:
    """What the two most common mistakes of a newcomer need to hear: an unquoted schedule
    (`*` starts an alias) and a tab in the indentation."""
    if mark is None:
        return ""
    lines = _LINE_BREAK.split(text, maxsplit=mark.line + 1)
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[: len(line) - len(line.lstrip(" \t"))]:
        return TAB_HINT
    if exc.context != "while scanning an alias":
        return ""
    example = "schedule: '*/5 * * * *'"
    found = _STAR_VALUE.match(line)
    if found is not None and len(found.group(0)) <= 100:
        key, value = found.group(1), "'" + found.group(2).replace("'", "''") + "'"
        example = f"{key}: {value}" if key else f"- {value}"
    return f"; YAML reads a value that starts with * as an alias: quote it, as in {example}"


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        text = ": ".join(parts) if parts else "invalid YAML"
    elif isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        code = ord(char) if isinstance(char, str) and len(char) == 1 else char
        text = f"character #x{code:04x}: {exc.reason}" if isinstance(code, int) else exc.reason
    else:
        text = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
    text = " ".join(text.split())
    return "invalid YAML: " + (text[:QUOTE_LIMIT] if len(text) > QUOTE_LIMIT else text)
