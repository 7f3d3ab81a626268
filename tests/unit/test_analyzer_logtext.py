"""Cleaning hostile log text: linear, bounded, and faithful to line numbers."""

from __future__ import annotations

from pathlib import Path

from medic.services.analyzer.logtext import (
    MAX_LINE_CHARS,
    Marker,
    clean_line,
    iter_clean_lines,
    iter_file_lines,
    split_text,
)


def test_strips_timestamp_and_colour() -> None:
    text, marker = clean_line(
        "2025-10-11T22:44:24.0057129Z \x1b[31mFAILED\x1b[0m tests/test_a.py::test_x\r\n"
    )
    assert (text, marker) == ("FAILED tests/test_a.py::test_x", Marker.PLAIN)


def test_workflow_commands_become_markers() -> None:
    assert clean_line("2025-01-01T00:00:00Z ##[error]Process completed with exit code 1.") == (
        "Process completed with exit code 1.",
        Marker.ERROR,
    )
    assert clean_line("::error file=app.py,line=3,col=1::F401 unused import") == (
        "F401 unused import",
        Marker.ERROR,
    )
    assert clean_line("##[group]Run pytest") == ("Run pytest", Marker.GROUP)
    assert clean_line("##[endgroup]") == ("", Marker.ENDGROUP)
    assert clean_line("::warning::careful")[1] is Marker.WARNING


def test_nul_and_control_bytes_are_removed() -> None:
    assert clean_line("a\x00b\x07c\x1fd")[0] == "abcd"


def test_megabyte_line_is_cut_but_keeps_its_end() -> None:
    text, _ = clean_line("x" * 1_000_000 + " (signal: 9, SIGKILL: kill)")
    assert len(text) <= MAX_LINE_CHARS
    assert text.endswith("SIGKILL: kill)")
    assert "[cut]" in text


def test_ansi_bomb_is_cleaned() -> None:
    # speed is measured in `make bench` (analyzer_analyze_log); here only the outcome counts,
    # and the suite's per-test timeout stands guard against a pattern that backtracks
    bomb = "\x1b[1;31;40m" * 200_000 + "boom" + "\x1b[" * 100_000
    text, _ = clean_line(bomb)
    assert "\x1b" not in text


def test_original_line_numbers_survive_cleaning() -> None:
    lines = list(iter_clean_lines("##[group]x\n\x1b[0m\n\nthird\n"))
    assert [(line.number, line.text) for line in lines] == [(1, "x"), (2, ""), (3, ""), (4, "third")]


def test_iterable_of_lines_and_text_agree() -> None:
    text = "one\r\ntwo\n\nfour"
    from_text = [(c.number, c.text) for c in iter_clean_lines(text)]
    from_lines = [(c.number, c.text) for c in iter_clean_lines(text.splitlines(keepends=True))]
    assert from_text == from_lines


def test_split_text_never_copies_a_huge_line_whole() -> None:
    lines = list(split_text("a" * 5_000_000 + "Z\nb", limit=10_000))
    assert len(lines[0]) < 10_100
    assert lines[0].endswith("Z")
    assert lines[1] == "b"


def test_file_reading_replaces_invalid_utf8_and_bounds_long_lines(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_bytes(b"ok\n\xff\xfe broken \xc3\n" + b"y" * 3_000_000 + b"END\nlast")
    lines = list(iter_file_lines(log))
    assert lines[0] == "ok"
    assert "\ufffd" in lines[1]
    assert len(lines[2]) < 20_000 and lines[2].endswith("END")
    assert lines[3] == "last"
