"""The excerpt: bounded, in log order, with original numbers, around what explains the failure."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from medic.services.analyzer.excerpt import ExcerptCollector, extract_excerpt
from medic.services.analyzer.logtext import CleanLine, Marker, iter_clean_lines


def feed(collector: ExcerptCollector, count: int, hits: dict[int, list[int]]) -> None:
    for number in range(1, count + 1):
        collector.feed(CleanLine(number, f"line {number}"), hits.get(number, ()))


def test_hit_lines_with_context_and_the_tail() -> None:
    collector = ExcerptCollector(before=2, after=2)
    feed(collector, 1000, {500: [0]})
    numbers = [line.line for line in collector.build(max_lines=20)]
    assert numbers == sorted(numbers) and len(numbers) == 20
    assert {498, 499, 500, 501, 502} <= set(numbers)
    assert 1000 in numbers and 1 not in numbers


def test_preferred_cause_wins_the_budget() -> None:
    collector = ExcerptCollector(before=1, after=1)
    hits = {n: [1] for n in range(100, 400, 10)}
    hits[700] = [0]
    feed(collector, 1000, hits)
    numbers = {line.line for line in collector.build(max_lines=10, preferred=[0, 1])}
    assert 700 in numbers
    assert {100, 110} <= numbers  # the first occurrences of the other cause are kept too


def test_error_annotations_are_anchors_without_rules() -> None:
    lines = ["noise"] * 300 + ["##[error]Something broke"] + ["noise"] * 300
    excerpt = extract_excerpt(lines, max_lines=10)
    assert any(line.line == 301 and line.text == "Something broke" for line in excerpt)
    assert excerpt[-1].line == 601


def test_small_budgets() -> None:
    collector = ExcerptCollector()
    feed(collector, 50, {10: [0]})
    assert collector.build(max_lines=0) == ()
    assert [line.line for line in collector.build(max_lines=1)] == [50]


def test_short_log_is_shown_whole() -> None:
    excerpt = extract_excerpt("a\nb\nc")
    assert [(line.line, line.text) for line in excerpt] == [(1, "a"), (2, "b"), (3, "c")]


def huge_log(lines: int) -> Iterator[str]:
    for number in range(lines):
        if number % 97 == 0:
            yield f"2025-01-01T00:00:00Z ##[error]failure number {number} " + "x" * 80
        else:
            yield f"2025-01-01T00:00:00Z ordinary output {number} " + "y" * 80


def test_memory_stays_bounded_whatever_the_log_size() -> None:
    collector = ExcerptCollector()
    tracemalloc.start()
    try:
        for line in iter_clean_lines(huge_log(80_000)):  # ~9 MiB; peak does not grow with size
            collector.feed(line)
        excerpt = collector.build(max_lines=80)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(excerpt) <= 80
    assert peak < 8 * 1024 * 1024
    assert len(collector._windows) <= 4  # first two and the last window of the one reason


def test_marker_plain_lines_are_not_anchors() -> None:
    collector = ExcerptCollector()
    collector.feed(CleanLine(1, "x", Marker.WARNING))
    assert collector._open is None
