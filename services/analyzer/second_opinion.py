"""The model's second opinion, combined so that it can only make ci-medic more careful.

Called only when the rules are not confident. The model reads attacker-controlled
text, so its answer is advice, never authority:

- risk: ``max(rules floor, model risk)``; a fooled model saying "risk 0" changes nothing;
- category: the rules' verdict bounds it. What the rules could not explain stays
  ``unknown`` (the gate's "cause unknown" blocker: a person decides; the model's opinion is
  in the summary for them); a known category changes only when the model is more confident,
  and never into one that can trigger an automatic action (infrastructure, timeout,
  flaky_test) unless the rules said so too;
- action: one of the typed :class:`ActionKind` values, and never more autonomy than the
  rules allowed; for an unknown failure it stays ``none`` (a person chooses one);
- model unavailable: the rules' answer, with risk +2 and confidence halved, so the gate
  leans towards asking a human.
"""

from __future__ import annotations

from typing import Final

from medic.events import (
    ActionKind,
    AnalysisMethod,
    Category,
    ProposedAction,
)
from medic.llm.client import ModelClient, ModelUnavailable
from medic.llm.schema import ModelVerdict, RulesHint
from medic.services.analyzer.analysis import LogAnalysis

AUTOMATIC_CATEGORIES: Final = frozenset({Category.INFRASTRUCTURE, Category.TIMEOUT, Category.FLAKY_TEST})
"""Categories that can lead to an automatic action: only the rules can say them."""
UNAVAILABLE_RISK_PENALTY: Final = 2
UNAVAILABLE_CONFIDENCE_FACTOR: Final = 0.5
UNAVAILABLE_NOTE: Final = "model unavailable"
NO_MODEL_NOTE: Final = "no model configured"

AUTONOMY: Final[dict[ActionKind, int]] = {
    ActionKind.NONE: 0,
    ActionKind.RERUN_FAILED_JOBS: 1,
    ActionKind.RERUN_WORKFLOW: 2,
    ActionKind.CLEAR_CACHE: 3,
    ActionKind.OPEN_FIX_PR: 4,
}
"""How much an action does without a human: reruns repeat work, a cache clear changes
state, a fix PR changes code. Unknown kinds rank highest, so they are never allowed in."""


def _autonomy(kind: ActionKind) -> int:
    return AUTONOMY.get(kind, max(AUTONOMY.values()) + 1)


def _clamp_risk(value: int) -> int:
    return min(10, max(0, value))


def rules_only(rules: LogAnalysis, *, note: str = "") -> LogAnalysis:
    """The rules' answer unchanged (apart from an optional note in the summary)."""
    summary = f"{rules.summary} ({note})" if note and rules.summary else (note or rules.summary)
    return rules.model_copy(update={"summary": summary, "method": AnalysisMethod.RULES})


def model_unavailable(rules: LogAnalysis) -> LogAnalysis:
    """No second opinion: be more careful than the rules alone would be."""
    base = rules_only(rules, note=UNAVAILABLE_NOTE)
    return base.model_copy(
        update={
            "risk": _clamp_risk(base.risk + UNAVAILABLE_RISK_PENALTY),
            "confidence": base.confidence * UNAVAILABLE_CONFIDENCE_FACTOR,
        }
    )


def _combined_action(rules: LogAnalysis, verdict: ModelVerdict) -> ProposedAction:
    allowed = rules.proposed_action
    if rules.category is Category.UNKNOWN or allowed.kind is ActionKind.NONE:
        return ProposedAction(kind=ActionKind.NONE)  # the model never turns "none" into an action
    if verdict.action is allowed.kind:
        return allowed  # keeps the rules' parameters (e.g. the cache key)
    if _autonomy(verdict.action) >= _autonomy(allowed.kind):
        return allowed  # the model cannot buy more autonomy than the rules granted
    if verdict.action is ActionKind.CLEAR_CACHE:
        return ProposedAction(kind=ActionKind.NONE)  # no rules-given cache key: a human decides
    return ProposedAction(kind=verdict.action)  # a step back towards a human is always fine


def combine(rules: LogAnalysis, verdict: ModelVerdict) -> LogAnalysis:
    """Merge the model's verdict into the rules' result; see the module docstring."""
    model_wins = (
        rules.category is not Category.UNKNOWN
        and verdict.category is not Category.UNKNOWN
        and verdict.confidence > rules.confidence
        and (verdict.category not in AUTOMATIC_CATEGORIES or verdict.category is rules.category)
    )
    category = verdict.category if model_wins else rules.category
    confidence = verdict.confidence if model_wins else rules.confidence
    summary = verdict.summary or rules.summary
    if category is not verdict.category and verdict.category is not Category.UNKNOWN:
        summary = (
            f"{rules.summary} (model suggests {verdict.category.value} at {verdict.confidence:.2f}: "
            f"{verdict.summary[:300]}; the rules' verdict bounds what happens without a person)"
        )
    if verdict.risk < rules.risk:
        summary = f"{summary} (model suggested risk {verdict.risk}; the rules floor {rules.risk} holds)"
    return rules.model_copy(
        update={
            "category": category,
            "risk": _clamp_risk(max(rules.risk, verdict.risk)),
            "confidence": min(1.0, max(0.0, confidence)),
            "proposed_action": _combined_action(rules, verdict),
            "summary": summary,
            "method": AnalysisMethod.MODEL,
            "prompt_tokens": verdict.prompt_tokens,
            "completion_tokens": verdict.completion_tokens,
        }
    )


def rules_hint(rules: LogAnalysis) -> RulesHint:
    return RulesHint(
        category=rules.category,
        risk=_clamp_risk(rules.risk),
        confidence=min(1.0, max(0.0, rules.confidence)),
        matched_rules=tuple(rules.matched_rules),
        proposed_action=rules.proposed_action.kind,
    )


async def refine_with_model(
    rules_result: LogAnalysis, *, client: ModelClient | None, confidence_threshold: float
) -> LogAnalysis:
    """Ask the model when the rules are unsure; otherwise (or without a model) keep the rules.

    Without a configured model the rules' answer stands as it is (with a note): the
    penalty of :func:`model_unavailable` is for a model that should have answered and
    did not, a sign that something is wrong right now.
    """
    if rules_result.confidence >= confidence_threshold and rules_result.category is not Category.UNKNOWN:
        return rules_only(rules_result)
    if client is None:
        return rules_only(rules_result, note=NO_MODEL_NOTE)
    try:
        verdict = await client.classify(excerpt=rules_result.excerpt, rules_hint=rules_hint(rules_result))
    except ModelUnavailable:
        return model_unavailable(rules_result)
    return combine(rules_result, verdict)
