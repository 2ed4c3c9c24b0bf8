"""Aliases cannot make a small file huge (issue 10, item 4): past 10,000 nodes or 1 MiB
of scalar text once expanded, a document is invalid, and refusing it costs no memory."""

from __future__ import annotations

import signal
from pathlib import Path

from controller_harness import ControllerProc, write_task
from test_spec_support import HEADER

from reconciler.spec.safeyaml import FILE_TEXT_MESSAGE, MAX_TEXT, TEXT_MESSAGE, parse_yaml

MiB = 1024 * 1024


def alias_doc(name: str, copies: int, size: int) -> str:
    """A task whose env holds `copies` aliases of one `size`-character string."""
    lines = [
        HEADER.rstrip("\n"),
        "metadata:",
        f"  name: {name}",
        "spec:",
        "  schedule: '@daily'",
        '  command: ["true"]',
        f"  workingDir: &big /{'x' * (size - 1)}",
        "  env:",
    ]
    lines += [f"    K{i}: *big" for i in range(copies)]
    return "\n".join(lines) + "\n"


def problems(text: str) -> list[list[str]]:
    return [[p.message for p in d.problems] for d in parse_yaml(text).documents]


def test_issue_example_400_kb_of_aliases_is_invalid() -> None:
    text = alias_doc("bomb", 2000, 200_000)
    assert len(text) < 500_000
    assert problems(text) == [[TEXT_MESSAGE]]
    assert TEXT_MESSAGE == "document expands to more than 1 MiB of scalar text (aliases included)"


def test_just_under_1_mib_of_text_is_fine_just_over_is_not() -> None:
    # Keys and values count; find the size that lands exactly on the limit.
    base = alias_doc("edge", 4, 1)
    fixed = sum(len(d) for d in _scalars(base)) - 5  # without the five copies of the string
    size = (MAX_TEXT - fixed) // 5
    exact = alias_doc("edge", 4, size)
    assert sum(len(d) for d in _scalars(exact)) <= MAX_TEXT
    assert problems(exact) == [[]]
    over = alias_doc("edge", 4, size + 1 + (MAX_TEXT - fixed) % 5)
    assert problems(over) == [[TEXT_MESSAGE]]


def _scalars(text: str) -> list[str]:
    import yaml

    out = []
    anchors: dict[str, str] = {}
    for ev in yaml.parse(text):
        if isinstance(ev, yaml.ScalarEvent):
            out.append(ev.value)
            if ev.anchor:
                anchors[ev.anchor] = ev.value
        elif isinstance(ev, yaml.AliasEvent):
            out.append(anchors[ev.anchor])
    return out


def test_aliased_collections_count_their_text() -> None:
    text = "a: &a [" + ",".join([f'"{"y" * 1000}"'] * 100) + "]\n"
    text += "b: [" + ",".join(["*a"] * 20) + "]\n"  # 2 MB of text, 2,101 nodes
    assert problems(text) == [[TEXT_MESSAGE]]


def test_text_counts_over_the_whole_file() -> None:
    one = alias_doc("a", 3, 200_000)  # 800 KB each once expanded
    assert problems(one) == [[]]
    two = one + "---\n" + alias_doc("b", 3, 200_000)
    assert problems(two) == [[], [FILE_TEXT_MESSAGE]]
    # A document refused for its own size does not count against the ones after it.
    three = alias_doc("c", 10, 200_000) + "---\n" + one
    assert problems(three) == [[TEXT_MESSAGE], []]


def test_a_plain_file_of_1_mib_is_never_over_the_text_bound() -> None:
    text = "a: " + "z" * (MiB - 10) + "\n"
    assert problems(text) == [[]]


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_controller_refuses_the_alias_bomb_within_100_mib(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "small", {"schedule": "@daily", "command": ["true"]})
    c = ControllerProc(spec, state, ["--watch", "poll"])
    controllers.append(c)
    c.wait_for("spec.applied")
    baseline = _hwm_kib(c.pid)
    bomb = spec / "bomb.yaml"
    bomb.write_text(alias_doc("bomb", 2000, 200_000))
    bomb.chmod(0o644)
    c.signal(signal.SIGHUP)
    found = c.wait_for("spec.invalid", file=str(bomb))
    assert "1 MiB of scalar text" in found[0]["message"]
    grown = _hwm_kib(c.pid) - baseline
    assert grown < 100 * 1024, f"peak memory grew by {grown} KiB"
    assert c.proc.poll() is None
    assert c.stop() == 0
