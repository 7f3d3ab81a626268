"""History evidence is named, and absent history says nothing."""

from __future__ import annotations

from medic.events import RunHistory
from medic.services.analyzer.flakiness import assess_history


def test_no_history_no_evidence() -> None:
    assert not assess_history(None).any
    assert not assess_history(RunHistory()).any


def test_pass_on_same_commit_is_named() -> None:
    evidence = assess_history(RunHistory(earlier_attempts_passed=1, earlier_attempts_failed=2))
    assert evidence.passed_on_same_commit and not evidence.parent_fails_too
    assert evidence.notes == (
        "flaky: 1 earlier attempt of the same commit passed (2 earlier attempts failed), "
        "so the code did not change between a green and a red run",
    )


def test_parent_failing_is_not_the_prs_fault() -> None:
    evidence = assess_history(RunHistory(parent_commit_conclusion="FAILURE"))
    assert evidence.parent_fails_too and "not the PR's fault" in evidence.notes[0]
    assert not assess_history(RunHistory(parent_commit_conclusion="success")).any
