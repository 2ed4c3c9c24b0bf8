"""The output kept of a run (head and tail within outputLimitBytes) and a follower that
prints each kept line once: in one process, no controller."""

from __future__ import annotations

import json
import random

from reconciler.history import OutputBuffer, lines_of
from reconciler.history.reader import Follower


def doc(buf: OutputBuffer, ended: bool) -> dict:
    text, _ = buf.to_json()
    return {"record": {"ended": 1.0 if ended else None}, "output": json.loads(text)}


def test_a_short_output_is_kept_whole_in_order_with_its_streams() -> None:
    buf = OutputBuffer(1024)
    buf.append("stdout", "one")
    buf.append("stderr", "two")
    buf.append("stdout", "<script>alert(1)</script>")
    lines = lines_of(doc(buf, True))
    assert [(x.seq, x.stream, x.text) for x in lines] == [
        (1, "stdout", "one"), (2, "stderr", "two"), (3, "stdout", "<script>alert(1)</script>")
    ]


def test_a_long_output_keeps_its_first_quarter_and_last_three_quarters() -> None:
    buf = OutputBuffer(4000)
    for i in range(1000):
        buf.append("stdout", f"line {i:04d} " + "x" * 20)  # 31 bytes with the newline
    lines = lines_of(doc(buf, True))
    kept = [x for x in lines if not x.marker]
    markers = [x for x in lines if x.marker]
    assert len(markers) == 1
    head = [x for x in kept if x.seq < markers[0].seq or lines.index(x) < lines.index(markers[0])]
    tail = kept[len(head):]
    assert head[0].text.startswith("line 0000") and tail[-1].text.startswith("line 0999")
    assert sum(len(x.text) + 1 for x in head) <= 1000
    assert 3000 - 31 < sum(len(x.text) + 1 for x in tail) <= 3000
    kept_bytes = sum(len(x.text) + 1 for x in kept)
    assert markers[0].text == f"[... {31 * 1000 - kept_bytes} bytes not kept ...]"
    # Every line of the tail follows the previous one: nothing missing but the middle.
    seqs = [x.seq for x in tail]
    assert seqs == list(range(seqs[0], 1001))


def test_a_limit_of_zero_keeps_nothing_and_says_so() -> None:
    buf = OutputBuffer(0)
    buf.append("stdout", "secret")
    assert [x.text for x in lines_of(doc(buf, True))] == ["[... 7 bytes not kept ...]"]


def test_a_follower_polling_a_flood_prints_every_kept_line_once() -> None:
    """A follower reads the file now and then while the run floods: it prints each line
    once, in order, a marker for what scrolled away unseen, and at the end it has printed
    every line the final record kept."""
    rnd = random.Random(7)
    buf = OutputBuffer(2000)
    f = Follower()
    printed = []
    for i in range(5000):
        buf.append(rnd.choice(["stdout", "stderr"]), f"l{i}" + "y" * rnd.randrange(40))
        if rnd.random() < 0.01:
            printed += f.feed(doc(buf, False))
    printed += f.feed(doc(buf, True))
    seqs = [x.seq for x in printed if not x.marker]
    assert seqs == sorted(set(seqs)), "a line printed twice or out of order"
    final = {x.seq for x in lines_of(doc(buf, True)) if not x.marker}
    assert final <= set(seqs), "a kept line was never printed"
    # Bytes printed plus bytes announced by markers add up to the whole output.
    total = sum(len(x.text) + 1 for x in printed if not x.marker)
    total += sum(int(x.text.split()[1]) for x in printed if x.marker)
    assert total == buf.total
