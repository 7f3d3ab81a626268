"""Where a match's line is: counted from newlines as matches arrive, or by a table of starts.

The matcher no longer builds a table of every line's start (it cost more than the scan); it
counts newlines from one match to the next. Both locators must agree with a brute-force
count for any block and any order of positions, and a line that holds a newline itself must
still be one line for both engines.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medic.events import Category
from medic.services.analyzer import matcher as matcher_module
from medic.services.analyzer.matcher import Matcher, _NewlineLines, _StartsLines
from medic.services.analyzer.rules import Rule

needs_hyperscan = pytest.mark.requires(matcher_module.hyperscan_available(), "hyperscan (pip: hyperscan)")


def brute_force(block: bytes, position: int) -> tuple[int, int, int]:
    line = block.count(b"\n", 0, position)
    start = block.rfind(b"\n", 0, position) + 1
    end = block.find(b"\n", position)
    return line, start, len(block) if end < 0 else end


@given(
    st.lists(st.sampled_from([b"a", b"bc", b"\n", "é".encode()]), min_size=1, max_size=60).map(b"".join),
    st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=20),
)
def test_newline_locator_agrees_with_counting_in_any_order(block: bytes, fractions: list[float]) -> None:
    lines = _NewlineLines(block)
    for fraction in fractions:
        position = int(fraction * len(block))
        assert lines.locate(position) == brute_force(block, position)


@given(st.lists(st.text(alphabet="ab\né", max_size=8), min_size=1, max_size=12))
def test_starts_locator_keeps_a_line_with_a_newline_whole(texts: list[str]) -> None:
    encoded = [t.encode() for t in texts]
    block = b"\n".join(encoded)
    starts = list(itertools.accumulate((len(e) + 1 for e in encoded[:-1]), initial=0))
    locator = _StartsLines(block, starts)
    for index, (start, line) in enumerate(zip(starts, encoded, strict=True)):
        for position in range(start, start + len(line)):
            assert locator.locate(position) == (index, start, start + len(line))


@needs_hyperscan
def test_a_line_holding_a_newline_counts_once_for_both_engines() -> None:
    rule = Rule(name="oom", patterns=("out of memory",), category=Category.OOM, risk_floor=1, confidence=0.9)
    lines = ["fine", "first half\nOut of memory here", "out of memory", "fine\n"]
    hyperscan = Matcher([rule], engine="hyperscan").scan_lines(lines)
    assert hyperscan == Matcher([rule], engine="re2").scan_lines(lines) == [(1, 0), (2, 0)]


@needs_hyperscan
def test_a_long_line_hit_many_times_is_one_hit() -> None:
    rule = Rule(name="err", patterns=("error",), category=Category.COMPILE, risk_floor=1, confidence=0.9)
    lines = ["ok", "error " * 50_000, "ok", "no match", "ERROR"]
    assert Matcher([rule], engine="hyperscan").scan_lines(lines) == [(1, 0), (4, 0)]
