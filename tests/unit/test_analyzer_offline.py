"""``medic analyze``: one JSON object, a readable report, exit 2 for an unreadable file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from medic.services.analyzer.offline import analyze_file


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None), buffer


def write_log(tmp_path: Path) -> Path:
    log = tmp_path / "job.log"
    lines = [f"2025-01-01T00:00:00.0000000Z setup {i}" for i in range(100)]
    lines += [
        "[bold red]not markup[/]",
        "npm ERR! code ECONNRESET",
        "##[error]Process completed with exit code 1.",
    ]
    log.write_text("\n".join(lines), encoding="utf-8")
    return log


def test_json_is_one_object_with_the_agreed_keys(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(write_log(tmp_path), as_json=True, console=out) == 0
    document = json.loads(buffer.getvalue())
    assert {"category", "risk", "confidence", "action", "fingerprint", "method", "excerpt"} <= set(document)
    assert document["category"] == "infrastructure"
    assert document["action"]["kind"] == "rerun_failed_jobs"
    assert document["method"] == "rules"
    assert {"line": 102, "text": "npm ERR! code ECONNRESET"} in document["excerpt"]


def test_report_shows_original_line_numbers_and_log_text_verbatim(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(write_log(tmp_path), as_json=False, console=out) == 0
    report = buffer.getvalue()
    for expected in (
        "infrastructure",
        "rerun_failed_jobs",
        "fingerprint",
        "rules",
        "102 │ npm ERR! code ECONNRESET",
    ):
        assert expected in report
    assert "[bold red]not markup[/]" in report


def test_missing_or_unreadable_file_exits_2_with_a_message(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(tmp_path / "nope.log", as_json=True, console=out) == 2
    assert "cannot read" in buffer.getvalue() and "no such file" in buffer.getvalue()
    out, buffer = console()
    assert analyze_file(tmp_path, as_json=False, console=out) == 2
    assert "not a regular file" in buffer.getvalue()
