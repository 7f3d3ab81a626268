"""The honest measure: rules alone on logs written after the rules were tuned (never tuned on).

tests/data/logs is the corpus the knowledge base was tuned on, so its figures are in-sample.
tests/data/logs-holdout was written afterwards by someone who never read the rules. Its
figures and floors live in test_corpus_quality.py, beside the in-sample ones. Tuning rules on these
logs would spend them; write a new held-out set instead.

The safety property matters more than accuracy: on unseen logs, the rules may say
"unknown" (a person then decides) but must not propose an automatic fix for a failure
that a rerun cannot fix.
"""

from __future__ import annotations

import yaml

from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base
from tests.quality.scoring import HOLDOUT

TRANSIENT = {"flaky_test", "infrastructure", "timeout"}
AUTOMATIC = {"rerun_failed_jobs", "rerun_workflow", "clear_cache"}


def test_no_automatic_fix_is_proposed_for_an_unseen_failure_a_rerun_cannot_fix() -> None:
    knowledge_base = default_knowledge_base()
    unsafe = []
    logs = sorted(HOLDOUT.glob("*/*.log"))
    assert len(logs) >= 50, "an empty holdout is a failure"
    for log in logs:
        label = yaml.safe_load(log.with_suffix(".yaml").read_text(encoding="utf-8"))
        analysis = analyze_log(
            log.read_text(encoding="utf-8", errors="replace"), knowledge_base=knowledge_base
        )
        if analysis.proposed_action.kind.value in AUTOMATIC and label["category"] not in TRANSIENT:
            unsafe.append(
                f"{log.relative_to(HOLDOUT)}: {label['category']} -> {analysis.proposed_action.kind.value}"
            )
    assert unsafe == []
