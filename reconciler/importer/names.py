"""Task names derived from commands: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63, unique."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable

from reconciler.importer.model import Draft, ImportedTask

MAX_LEN = 63
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
FALLBACK = "task"

# Segments that only prepare or guard the real work (`cd /srv && ./run`, `test -x ... ||`).
_PREAMBLE = {"cd", "test", "[", "[[", "true", ":", "umask", "export", "set", "fi", "done"}
# Words that run (or introduce) the next word: the next word names the task better.
_WRAPPERS = {"exec", "nohup", "chronic", "command", "if", "then", "else", "elif", "do",
             "while", "until", "!", "time"}
_INTERPRETER = re.compile(r"^(python|php|perl|ruby|node|nodejs|bash|sh|dash|zsh|ksh)[0-9.]*$")
_SCRIPT_EXT = re.compile(r"\.(sh|bash|py|php|pl|rb|js)$")
_OPERATORS = {"&&", "||", ";", "|", "&", ";;", "|&"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def sanitize(text: str) -> str:
    """Lower-case, runs of other characters to one dash, trimmed to the length limit."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    name = name[:MAX_LEN].rstrip("-")
    return name or FALLBACK


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: the shell would fail too; still name it
        return command.split()


def _segments(words: list[str]) -> list[list[str]]:
    segments: list[list[str]] = [[]]
    for word in words:
        if word in _OPERATORS:
            segments.append([])
        elif word not in {"(", ")", "{", "}"}:
            segments[-1].append(word)
    return [s for s in segments if s]


def _name_of_segment(words: list[str]) -> str | None:
    while words and (_ASSIGNMENT.match(words[0]) or words[0] in _WRAPPERS):
        words = words[1:]
    if not words or words[0] in _PREAMBLE:
        return None
    program = posixpath.basename(words[0]) or words[0]
    args = words[1:]
    if program == "run-parts":
        # `run-parts --report /etc/cron.daily` is best known by its directory.
        targets = [a for a in args if not a.startswith("-")]
        return posixpath.basename(targets[-1].rstrip("/")) if targets else program
    if _INTERPRETER.match(program):
        for i, arg in enumerate(args):
            if arg in {"-c", "-e", "-r"}:
                return None  # inline code: a later segment may name it better
            if arg == "-m" and i + 1 < len(args):
                return args[i + 1]
            if not arg.startswith("-"):
                return _SCRIPT_EXT.sub("", posixpath.basename(arg))
        return program
    return _SCRIPT_EXT.sub("", program)


def derive_name(command: str) -> str:
    """A readable name for a command: its program (or script), sanitised."""
    segments = _segments(_words(command))
    for segment in segments:
        name = _name_of_segment(segment)
        if name:
            return sanitize(name)
    if segments:
        return sanitize(posixpath.basename(segments[0][0]))
    return FALLBACK


def _with_suffix(base: str, n: int) -> str:
    suffix = f"-{n}"
    return base[: MAX_LEN - len(suffix)].rstrip("-") + suffix


def _claim(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = _with_suffix(base, n)
    taken.add(name)
    return name


def assign_names(drafts: Iterable[Draft], reserved: Iterable[str] = ()) -> list[ImportedTask]:
    """Give every draft a unique name; names a comment asked for win over derived ones."""
    drafts = list(drafts)
    taken = set(reserved)
    chosen: dict[int, str] = {}
    for i, draft in enumerate(drafts):
        if draft.explicit_name is not None:
            chosen[i] = _claim(sanitize(draft.explicit_name), taken)
    for i, draft in enumerate(drafts):
        if i not in chosen:
            chosen[i] = _claim(sanitize(draft.name_hint), taken)
    return [
        ImportedTask(name=chosen[i], line=d.line, spec=d.spec, comments=d.comments)
        for i, d in enumerate(drafts)
    ]
