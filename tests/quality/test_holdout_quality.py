"""The honest measure: rules alone on logs written after the rules were tuned (never tuned on).

tests/data/logs is the corpus the knowledge base was tuned on, so its figures are in-sample.
tests/data/logs-holdout was written afterwards by someone who never read the rules. Its
floors are set from what was measured the first time (accuracy 0.64, recall 0.954): a
rule change that makes the analyzer worse on unseen logs fails here. Tuning rules on these
logs would spend them; write a new held-out set instead.

The safety property matters more than accuracy: on unseen logs, the rules may say
"unknown" (a person then decides) but must not propose an automatic fix for a failure
that a rerun cannot fix.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base
from tests.quality.test_corpus_quality import score_corpus

HOLDOUT = Path(__file__).resolve().parents[1] / "data" / "logs-holdout"
ACCURACY_FLOOR = 0.60
RECALL_FLOOR = 0.93
TRANSIENT = {"flaky_test", "infrastructure", "timeout"}
AUTOMATIC = {"rerun_failed_jobs", "rerun_workflow", "clear_cache"}


def test_holdout_accuracy_and_recall_stay_above_their_measured_floors() -> None:
    score = score_corpus(corpus=HOLDOUT)
    print(f"\nholdout: {score.cases} logs, accuracy {score.accuracy:.3f}, excerpt recall {score.recall:.3f}")
    assert score.cases >= 50
    assert score.accuracy >= ACCURACY_FLOOR, "\n".join(score.misses)
    assert score.recall >= RECALL_FLOOR, "\n".join(score.misses)


def test_no_automatic_fix_is_proposed_for_an_unseen_failure_a_rerun_cannot_fix() -> None:
    knowledge_base = default_knowledge_base()
    unsafe = []
    for log in sorted(HOLDOUT.glob("*/*.log")):
        label = yaml.safe_load(log.with_suffix(".yaml").read_text(encoding="utf-8"))
        analysis = analyze_log(
            log.read_text(encoding="utf-8", errors="replace"), knowledge_base=knowledge_base
        )
        if analysis.proposed_action.kind.value in AUTOMATIC and label["category"] not in TRANSIENT:
            unsafe.append(
                f"{log.relative_to(HOLDOUT)}: {label['category']} -> {analysis.proposed_action.kind.value}"
            )
    assert unsafe == []
