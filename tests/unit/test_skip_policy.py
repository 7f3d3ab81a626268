"""The skip policy of the suite itself: a missing tool is a skip on a laptop and a failure in CI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pytest_runtest_setup


class _Item:
    """Just what the hook reads from a test item: its ``requires`` marks."""

    def __init__(self, *marks: pytest.Mark) -> None:
        self._marks = marks

    def iter_markers(self, name: str) -> Iterator[pytest.Mark]:
        return (mark for mark in self._marks if mark.name == name)


OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)


def requires(available: bool, what: str) -> pytest.Mark:
    return pytest.mark.requires(available, what).mark


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_tool_fails_in_ci_naming_it(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(OUTCOMES) as outcome:
        pytest_runtest_setup(_Item(requires(True, "hyperscan"), requires(False, "chromium")))  # type: ignore[arg-type]
    assert outcome.type is pytest.fail.Exception  # caught either way: a skip here must not skip this test
    assert "chromium is missing and CI=true" in str(outcome.value)


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_a_missing_tool_is_a_skip_with_its_reason_outside_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(OUTCOMES) as outcome:
        pytest_runtest_setup(_Item(requires(False, "hyperscan")))  # type: ignore[arg-type]
    assert outcome.type is pytest.skip.Exception
    assert "hyperscan is missing" in str(outcome.value)


def test_an_available_tool_neither_skips_nor_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert pytest_runtest_setup(_Item(requires(True, "chromium"))) is None  # type: ignore[arg-type,func-returns-value]


def test_make_test_prints_skip_reasons() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    [line] = [line for line in makefile.splitlines() if line.startswith("\t$(BIN)/pytest")]
    assert " -rs " in f" {line} "
