"""The excerpt: bounded, in log order, the log's own lines with their original numbers,
taken from the failing step's best error blocks, not from the end of the log."""

from __future__ import annotations

import re

from medic.services.analyzer.excerpt import extract_excerpt
from medic.services.analyzer.logtext import iter_clean_lines
from medic.services.analyzer.steps import find_failing_step

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def gha(lines: list[str]) -> list[str]:
    return [f"2024-03-01T10:00:{n % 60:02d}.1234567Z {text}" for n, text in enumerate(lines)]


def test_error_block_far_before_the_end_of_a_long_after_step() -> None:
    body = (
        ["##[group]Run pytest -q"]
        + [f"tests/test_{n}.py ...." for n in range(50)]
        + [
            "=================================== FAILURES ===================================",
            "    def test_total():",
            ">       assert total() == 3",
            "E       assert 2 == 3",
            "tests/test_orders.py:12: AssertionError",
            "FAILED tests/test_orders.py::test_total - assert 2 == 3",
            "##[error]Process completed with exit code 1.",
        ]
        + ["##[group]Run actions/cache/save@v4", *[f"uploading chunk {n}" for n in range(1500)]]
    )
    excerpt = extract_excerpt(gha(body), max_lines=20)
    numbers = [line.line for line in excerpt]
    assert numbers == sorted(numbers) and len(numbers) <= 20
    assert {54, 55, 56, 57} <= set(numbers)
    assert max(numbers) <= 58, "nothing after the failing step's exit line"


def test_excerpt_lines_are_the_log_text_verbatim() -> None:
    raw = gha(
        [
            "##[group]Run make",
            "\tcc -c a.c",
            "\x1b[31ma.c:3:1: error: expected ';'\x1b[0m",
            "##[error]Process completed with exit code 2.",
        ]
    )
    excerpt = extract_excerpt(raw)
    by_number = {line.line: line.text for line in excerpt}
    assert by_number[3] == _ANSI.sub("", raw[2])
    assert by_number[2] == raw[1], "tabs and the timestamp stay"
    assert by_number[4].endswith("##[error]Process completed with exit code 2.")


def test_a_list_of_failures_is_kept_whole() -> None:
    body = ["$ ./gradlew test"] + [f"building {n}" for n in range(300)]
    body += [f"com.acme.Test{n} > works() FAILED" for n in range(40)]
    body += ["", "BUILD FAILED in 3s", 'The command "./gradlew test" exited with 1.', "Done."]
    excerpt = extract_excerpt(body, max_lines=80)
    failed = {n for n, text in enumerate(body, 1) if text.endswith("FAILED")}
    assert failed <= {line.line for line in excerpt}


def test_early_warnings_do_not_use_up_the_budget() -> None:
    body = ["##[group]Run npm test"]
    body += [f"npm WARN deprecated pkg{n}@1.0.0: this is deprecated" for n in range(200)]
    body += [f"  ok {n}" for n in range(400)]
    body += ["  1) Orders", "     total is 3:", "     AssertionError: expected 2 to equal 3", "  1 failing"]
    body += ["##[error]Process completed with exit code 1."]
    numbers = {line.line for line in extract_excerpt(gha(body), max_lines=30)}
    assert {602, 603, 604, 605} <= numbers


def test_without_markers_the_whole_log_is_the_window() -> None:
    lines = ["noise"] * 300 + ["Error: something broke"] + ["noise"] * 300
    excerpt = extract_excerpt(lines, max_lines=10)
    assert any(line.line == 301 and line.text == "Error: something broke" for line in excerpt)
    assert excerpt[-1].line == 601


def test_small_budgets_and_short_logs() -> None:
    assert extract_excerpt("a\nError: b\nc", max_lines=0) == ()
    assert [line.line for line in extract_excerpt("x\n" * 50, max_lines=1)] == [50]
    assert [(line.line, line.text) for line in extract_excerpt("a\nb\nc")] == [(1, "a"), (2, "b"), (3, "c")]


def test_failing_step_of_each_ci_system() -> None:
    travis = [
        "$ pip install -r req.txt",
        "ok",
        "$ pytest",
        "E  assert 1",
        'The command "pytest" exited with 1.',
        "$ coverage report",
        'The command "coverage report" exited with 0.',
        "Done. Your build exited with 1.",
    ]
    step = find_failing_step(list(iter_clean_lines(travis)))
    assert (step.start, step.end, step.name, step.system) == (2, 4, "pytest", "travis")
    jenkins = [
        "[Pipeline] { (Build)",
        "+ make",
        "ok",
        "[Pipeline] { (Test)",
        "+ make test",
        "boom",
        "ERROR: script returned exit code 2",
        "[Pipeline] // stage",
    ]
    step = find_failing_step(list(iter_clean_lines(jenkins)))
    assert (step.start, step.end, step.name) == (4, 6, "make test")
    plain = ["a", "b"]
    assert find_failing_step(list(iter_clean_lines(plain))).marked is False


def test_a_megabyte_line_is_shown_cut_with_a_marker() -> None:
    raw = gha(
        [
            "##[group]Run x",
            "Error: " + "y" * 1_000_000 + " the end",
            "##[error]Process completed with exit code 1.",
        ]
    )
    excerpt = extract_excerpt(raw)
    long = next(line.text for line in excerpt if line.line == 2)
    assert len(long) <= 1000 and "[cut]" in long and long.endswith("the end")


def test_failing_step_of_gitlab_and_taskcluster() -> None:
    gitlab = [
        "section_start:1700000000:prepare_script",
        "ok",
        "section_start:1700000001:step_script",
        "$ make test",
        "FAIL: test_total",
        "ERROR: Job failed: exit code 1",
    ]
    step = find_failing_step(list(iter_clean_lines(gitlab)))
    assert (step.start, step.end, step.name, step.system) == (3, 5, "make test", "gitlab")  # its `$ cmd` line
    taskcluster = [
        "[taskcluster 2025-02-12T02:47:21.832Z] Worker Type (t-linux) settings:",
        "[task 2025-02-12T02:47:35.329Z] 02:47:35     INFO - running tests",
        "[taskcluster:error] Aborting task...",
        "[taskcluster:error] Task aborted - max run time exceeded",
        "[taskcluster 2025-02-12T03:47:21.832Z] === Task Finished ===",
    ]
    step = find_failing_step(list(iter_clean_lines(taskcluster)))
    assert (step.end, step.system) == (3, "taskcluster")
