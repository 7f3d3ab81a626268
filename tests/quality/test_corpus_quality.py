"""How well the rules explain the synthetic corpora, against baselines computed in the test.

``tests/data/logs`` (193 logs the rules were tuned on: in-sample) and ``tests/data/logs-holdout``
(50 logs written afterwards, never tuned on). The last 80 lines of each log and the most
common category (and action) are scored on the same logs in the same run; the analyzer must
beat them by the stated margins, and stay above floors set from what was measured. An empty
corpus is a failure (a broken path), never a skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.quality.scoring import (
    HOLDOUT,
    SYNTHETIC,
    EmptyCorpus,
    Score,
    load_cases,
    score_analyzer,
    score_tail,
)


@dataclass(frozen=True)
class Floors:
    recall: float
    recall_margin: float
    """Over the last 80 lines."""
    accuracy: float
    accuracy_margin: float
    """Over the most common category."""
    action: float


# Measured 2026-11-29: in-sample recall 0.988 (last-80 0.960), accuracy 0.917 (constant 0.150),
# action 0.228 (constant 0.705); holdout recall 0.994 (last-80 0.948), accuracy 0.60
# (constant 0.24), action 0.22 (constant 0.68). The labelled action is open_fix_pr for most
# code failures, which the rules never propose (a fix PR needs a person): the action floor
# holds what is measured and the constant guess is printed beside it, not required beaten.
FLOORS = {
    "in-sample": (
        SYNTHETIC,
        Floors(recall=0.985, recall_margin=0.02, accuracy=0.91, accuracy_margin=0.6, action=0.22),
    ),
    "holdout": (
        HOLDOUT,
        Floors(recall=0.99, recall_margin=0.03, accuracy=0.58, accuracy_margin=0.3, action=0.2),
    ),
}


def failures_against(score: Score, tail: Score, floors: Floors) -> list[str]:
    failures = []
    if score.recall < floors.recall:
        failures.append(f"recall {score.recall:.3f} < {floors.recall}")
    if score.recall < tail.recall + floors.recall_margin:
        failures.append(
            f"recall {score.recall:.3f} not {floors.recall_margin} above last-80 {tail.recall:.3f}"
        )
    if score.accuracy < floors.accuracy:
        failures.append(f"accuracy {score.accuracy:.3f} < {floors.accuracy}")
    if score.accuracy < tail.accuracy + floors.accuracy_margin:
        failures.append(
            f"accuracy {score.accuracy:.3f} not {floors.accuracy_margin} above constant {tail.accuracy:.3f}"
        )
    if score.action_accuracy < floors.action:
        failures.append(f"action accuracy {score.action_accuracy:.3f} < {floors.action}")
    return failures


@pytest.mark.parametrize("corpus", sorted(FLOORS))
def test_synthetic_corpus_beats_the_trivial_baselines(corpus: str) -> None:
    path, floors = FLOORS[corpus]
    cases = load_cases(path)
    score, tail = score_analyzer(cases), score_tail(cases, 80)
    print(
        f"\n{corpus}: {score.cases} logs; recall {score.recall:.3f} (last-80 {tail.recall:.3f}); "
        f"accuracy {score.accuracy:.3f} (constant {tail.accuracy:.3f}); action {score.action_accuracy:.3f} "
        f"(constant {tail.action_accuracy:.3f})"
    )
    failures = failures_against(score, tail, floors)
    assert not failures, "\n".join(failures + score.misses)


def test_the_tail_itself_does_not_pass_the_in_sample_floors() -> None:
    """The check can fail: an excerpt that is just the last 80 lines misses the margin."""
    path, floors = FLOORS["in-sample"]
    tail = score_tail(load_cases(path), 80)
    assert any("recall" in failure for failure in failures_against(tail, tail, floors))


def test_a_missing_corpus_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(EmptyCorpus):
        load_cases(tmp_path / "nowhere")
