"""Splitting output bytes into lines: limits, markers, escaping."""

from __future__ import annotations

from helpers_proc import join_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.supervisor import CONTINUATION_MARKER
from reconciler.supervisor.lines import LineSplitter


def run(chunks: list[bytes], limit: int = 8) -> list[str]:
    sp = LineSplitter(limit)
    out: list[str] = []
    for chunk in chunks:
        out += sp.feed(chunk)
    return out + sp.flush()


def test_lines_across_chunks() -> None:
    assert run([b"ab", b"c\nde", b"f\n\ng"]) == ["abc", "def", "", "g"]


def test_trailing_newline_adds_no_empty_line() -> None:
    assert run([b"a\n"]) == ["a"]
    assert run([b""]) == []


def test_carriage_return_is_kept() -> None:
    assert run([b"a\r\n"]) == ["a\r"]


def test_long_line_pieces_are_marked_except_last() -> None:
    out = run([b"0123456789abcdefXY\nz"], limit=8)
    assert out == [
        "01234567" + CONTINUATION_MARKER,
        "89abcdef" + CONTINUATION_MARKER,
        "XY",
        "z",
    ]


def test_line_of_exactly_the_limit_is_whole() -> None:
    assert run([b"01234567", b"\n"], limit=8) == ["01234567"]


def test_pending_piece_emitted_before_newline_arrives() -> None:
    sp = LineSplitter(4)
    assert sp.feed(b"abcdefg") == ["abcd" + CONTINUATION_MARKER]
    assert sp.feed(b"\n") == ["efg"]


def test_invalid_utf8_escaped() -> None:
    assert run([b"\xff\xfeok\n"]) == ["\\xff\\xfeok"]


def test_piece_boundary_not_inside_utf8_character() -> None:
    text = "aaaaaaa\u20ac" * 3  # 7 ASCII then a 3-byte character
    out = run([text.encode()], limit=8)
    assert all("\\x" not in piece for piece in out)
    assert join_pieces(out) == [text]


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(st.sampled_from([b"a", b"\n", b"\xe2\x82\xac", b"\xff", b"xyz"]), max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_join_restores_input(data: list[bytes], cuts: list[int]) -> None:
    raw = b"".join(data)
    bounds = sorted({c for c in cuts if c < len(raw)} | {0, len(raw)})
    chunks = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    out = run(chunks, limit=8)
    for piece in out:
        body = piece.removesuffix(CONTINUATION_MARKER)
        assert len(body.encode("utf-8", "surrogateescape")) <= 8 * 4
    expected = raw.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert join_pieces(out) == [e.decode("utf-8", "backslashreplace") for e in expected]
