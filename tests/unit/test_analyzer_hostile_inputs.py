"""Hostile and malformed inputs on the analyzer's new paths: the green baseline, step markers,
ownership, and a log longer than what is kept. Each must give an answer, never an exception."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from medic.services.analyzer.baseline import added_lines
from medic.services.analyzer.classify import MAX_KEPT_LINES, analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.logtext import iter_clean_lines
from medic.services.analyzer.offline import analyze_file
from medic.services.analyzer.ownership import project_names
from medic.services.analyzer.steps import find_failing_step


def long_log(lines: int) -> Iterator[str]:
    yield "##[group]Run make test"
    for number in range(lines):
        yield f"2025-01-01T00:00:00Z ordinary output {number} " + "y" * 60
    yield "src/a.c:3:1: error: expected ';'"
    yield "##[error]Process completed with exit code 2."


def test_a_log_longer_than_what_is_kept_keeps_its_end_and_its_numbers() -> None:
    total = MAX_KEPT_LINES + 5_000
    tracemalloc.start()
    try:
        analysis = analyze_log(long_log(total), knowledge_base=default_knowledge_base())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert analysis.category.value == "compile"
    assert {line.line for line in analysis.excerpt} >= {total + 2, total + 3}
    assert peak < 200 * 1024 * 1024, "memory is bounded by the kept lines, not by the log"


def test_baseline_of_garbage_or_nothing_changes_no_verdict(tmp_path: Path) -> None:
    failing = tmp_path / "fail.log"
    failing.write_text("\n".join(long_log(50)), encoding="utf-8")
    for content in (b"", b"\x00\xff\xfe" * 10_000, b"\n" * 100_000, ("x" * 3_000_000).encode()):
        baseline = tmp_path / "pass.log"
        baseline.write_bytes(content)
        assert analyze_file(failing, as_json=True, console=_quiet(), baseline=baseline, stdout=_sink()) == 0


def test_everything_is_new_against_an_empty_baseline() -> None:
    lines = list(iter_clean_lines(["a", "", "b"]))
    assert added_lines(lines, []) == {0, 2}


def test_forged_markers_cannot_break_step_finding() -> None:
    hostile = [
        "##[group]Run " + "x" * 100_000,
        "$ " * 50_000,
        'The command "' + '"' * 10_000 + '" exited with 99999999999999999999.',
        "[Pipeline] { (" + "(" * 10_000,
        "section_start:" + "9" * 5_000 + ":x",
        "##[error]Process completed with exit code 1." + "\x00" * 100,
    ]
    step = find_failing_step(list(iter_clean_lines(hostile)))
    assert 0 <= step.start <= step.end <= len(hostile) - 1


def test_ownership_survives_paths_of_any_shape() -> None:
    names = project_names(["/home/runner/work/" + "a/" * 20_000, "/home/runner/work/" + "(" * 5000, ""])
    assert len(names) <= 5001


def _quiet():  # type: ignore[no-untyped-def]
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def _sink():  # type: ignore[no-untyped-def]
    import io

    return io.StringIO()
