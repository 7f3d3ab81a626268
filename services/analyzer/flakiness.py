"""What the run's history says about a failure, beyond its log.

A log shows a test failing; only the history shows it passing on another attempt of
the very same commit (so the code is not what changed: the test is flaky), or the
parent commit failing the same way (so the pull request did not break it). Each
piece of evidence is named in words a reviewer can check.
"""

from __future__ import annotations

from dataclasses import dataclass

from medic.conclusions import run_failed
from medic.events import RunHistory


@dataclass(frozen=True, slots=True)
class FlakinessEvidence:
    passed_on_same_commit: bool = False
    parent_fails_too: bool = False
    notes: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.notes)


def assess_history(history: RunHistory | None) -> FlakinessEvidence:
    """Evidence from earlier attempts of the same commit and from the parent commit."""
    if history is None:
        return FlakinessEvidence()
    notes: list[str] = []
    passed = history.earlier_attempts_passed > 0
    if passed:
        notes.append(
            f"flaky: {_attempts(history.earlier_attempts_passed)} of the same commit passed "
            f"({_attempts(history.earlier_attempts_failed)} failed), so the code did not change "
            "between a green and a red run"
        )
    parent = (history.parent_commit_conclusion or "").lower()
    parent_fails = run_failed(parent)
    if parent_fails:
        notes.append(
            f"not the PR's fault: the parent commit fails too (conclusion: {parent}), "
            "so the failure predates this change"
        )
    return FlakinessEvidence(passed_on_same_commit=passed, parent_fails_too=parent_fails, notes=tuple(notes))


def _attempts(count: int) -> str:
    return f"{count} earlier attempt" + ("" if count == 1 else "s")
