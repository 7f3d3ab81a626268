"""Decide why a job failed, from its log and its history, with rules alone.

Every line is scanned once for every rule. When several causes match, the rule
with the highest priority explains the failure (a network reset outranks the test
failure it provoked); the others stay listed as evidence. No rule hit means
``unknown``: low confidence, a high risk floor and no action, because what the
rules cannot explain must go to a human (or a model, then a human), never to an
automatic fix. Log text is only ever matched, never obeyed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from medic.events import (
    ActionKind,
    AnalysisMethod,
    Category,
    ExcerptLine,
    FailedJob,
    ProposedAction,
    RunHistory,
)
from medic.services.analyzer.excerpt import DEFAULT_MAX_LINES, ExcerptCollector
from medic.services.analyzer.fingerprint import fingerprint
from medic.services.analyzer.flakiness import FlakinessEvidence, assess_history
from medic.services.analyzer.knowledge import KnowledgeBase
from medic.services.analyzer.logtext import Marker, iter_clean_lines
from medic.services.analyzer.rules import Rule

UNKNOWN_CONFIDENCE = 0.2
UNKNOWN_RISK = 6
CONFIDENT_THRESHOLD = 0.7
_BATCH_LINES = 4096
_EVIDENCE_TEXTS = 3
_FLAKY_ELIGIBLE = frozenset({Category.TEST_FAILURE, Category.TIMEOUT, Category.UNKNOWN, Category.FLAKY_TEST})
_BOILERPLATE = ("post job cleanup", "cleaning up orphan processes", "[command]", "process completed with")


class LogAnalysis(BaseModel):
    """The rules' verdict on one failure: what, how sure, how risky, what to do, why."""

    model_config = ConfigDict(frozen=True)

    category: Category
    risk: int = Field(ge=0, le=10)
    confidence: float = Field(ge=0.0, le=1.0)
    retryable: bool
    proposed_action: ProposedAction
    matched_rules: tuple[str, ...] = ()
    summary: str = ""
    excerpt: tuple[ExcerptLine, ...] = ()
    fingerprint: str
    method: AnalysisMethod = AnalysisMethod.RULES
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class _RuleEvidence:
    first_line: int
    hits: int = 0
    texts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Scan:
    evidence: dict[int, _RuleEvidence]
    annotations: list[str]
    collector: ExcerptCollector


def _scan(source: str | Iterable[str], knowledge_base: KnowledgeBase, max_lines: int) -> _Scan:
    """One pass: clean, match in batches, feed the excerpt; memory bounded by the batch."""
    evidence: dict[int, _RuleEvidence] = {}
    annotations: list[str] = []
    collector = ExcerptCollector(max_tail=max_lines)
    lines = iter_clean_lines(source)
    while batch := list(itertools.islice(lines, _BATCH_LINES)):
        per_line: dict[int, list[int]] = {}
        for index, rule in knowledge_base.matcher.scan_lines([line.text for line in batch]):
            per_line.setdefault(index, []).append(rule)
        for index, line in enumerate(batch):
            rules = per_line.get(index, ())
            for rule in rules:
                found = evidence.setdefault(rule, _RuleEvidence(first_line=line.number))
                found.hits += 1
                if len(found.texts) < _EVIDENCE_TEXTS:
                    found.texts.append(line.text)
            if line.marker is Marker.ERROR and len(annotations) < _EVIDENCE_TEXTS:
                annotations.append(line.text)
            collector.feed(line, rules)
    return _Scan(evidence, annotations, collector)


def _ranked(scan: _Scan, rules: Sequence[Rule]) -> list[int]:
    """Rule indices, the best explanation first: priority, then confidence, then earliest."""
    return sorted(
        scan.evidence,
        key=lambda i: (-rules[i].priority, -rules[i].confidence, scan.evidence[i].first_line),
    )


def _confidence(winner: Rule, others: Iterable[Rule]) -> float:
    """A rival cause of another category at a similar priority makes the verdict less sure."""
    rivals = [r for r in others if r.category != winner.category and r.priority >= winner.priority - 3]
    return round(max(0.0, winner.confidence - (0.15 if rivals else 0.0)), 3)


def analyze_log(
    text_or_lines: str | Iterable[str],
    *,
    knowledge_base: KnowledgeBase,
    history: RunHistory | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
) -> LogAnalysis:
    """Classify one job log (a whole text or an iterable of lines) with rules alone."""
    rules = knowledge_base.rules
    scan = _scan(text_or_lines, knowledge_base, max_lines)
    ranked = _ranked(scan, rules)
    excerpt = scan.collector.build(max_lines=max_lines, preferred=ranked)
    if not ranked:
        analysis = _unknown(scan, excerpt)
    else:
        winner = rules[ranked[0]]
        found = scan.evidence[ranked[0]]
        analysis = LogAnalysis(
            category=winner.category,
            risk=winner.risk_floor,
            confidence=_confidence(winner, (rules[i] for i in ranked[1:])),
            retryable=winner.retryable,
            proposed_action=winner.action.proposed(),
            matched_rules=tuple(rules[i].name for i in ranked),
            summary=_summary(winner, found),
            excerpt=excerpt,
            fingerprint=fingerprint(found.texts, salt=winner.name),
        )
    return apply_history(analysis, assess_history(history))


def _summary(winner: Rule, found: _RuleEvidence) -> str:
    what = winner.description or winner.name
    first = found.texts[0][:200] if found.texts else ""
    more = f" (and {found.hits - 1} more)" if found.hits > 1 else ""
    return f"{winner.category.value}: {what}; line {found.first_line}{more}: {first}"


def _unknown(scan: _Scan, excerpt: tuple[ExcerptLine, ...]) -> LogAnalysis:
    tail = [e.text for e in excerpt if e.text.strip() and not e.text.lower().startswith(_BOILERPLATE)]
    evidence = scan.annotations or tail[-8:]
    return LogAnalysis(
        category=Category.UNKNOWN,
        risk=UNKNOWN_RISK,
        confidence=UNKNOWN_CONFIDENCE,
        retryable=False,
        proposed_action=ProposedAction(kind=ActionKind.NONE),
        summary="unknown: no known cause matched; a human should look",
        excerpt=excerpt,
        fingerprint=fingerprint(evidence, salt="unknown"),
    )


def apply_history(analysis: LogAnalysis, evidence: FlakinessEvidence) -> LogAnalysis:
    """Fold run-history evidence in: a pass on the same commit turns a test failure flaky.

    An unknown failure that passed elsewhere stays below the confidence threshold, so a
    model or a human still looks before anything is rerun.
    """
    if not evidence.any:
        return analysis
    changes: dict[str, object] = {
        "notes": analysis.notes + evidence.notes,
        "summary": "; ".join((analysis.summary, *evidence.notes)),
    }
    if evidence.passed_on_same_commit and analysis.category in _FLAKY_ELIGIBLE:
        known = analysis.category is not Category.UNKNOWN
        changes |= {
            "category": Category.FLAKY_TEST,
            "retryable": True,
            "risk": min(analysis.risk, 3) if known else analysis.risk,
            "confidence": max(analysis.confidence, 0.8) if known else 0.6,
            "proposed_action": ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
        }
    return analysis.model_copy(update=changes)


def is_confident(analysis: LogAnalysis, threshold: float = CONFIDENT_THRESHOLD) -> bool:
    """Whether rules alone suffice, or a model should be consulted (then the gate decides)."""
    return analysis.category is not Category.UNKNOWN and analysis.confidence >= threshold


def analyze_failure(
    jobs: Sequence[FailedJob],
    *,
    knowledge_base: KnowledgeBase,
    history: RunHistory | None = None,
    max_lines: int = DEFAULT_MAX_LINES,
) -> LogAnalysis:
    """One verdict for a run with several failed jobs.

    The known cause with the highest risk (then confidence) wins, since rerunning cannot
    fix a job that failed for a worse reason. Risk is the highest of all jobs, and an
    unexplained job caps confidence: part of the failure is still unexplained.
    """
    analyses = [
        (job, analyze_log(job.log_excerpt, knowledge_base=knowledge_base, max_lines=max_lines))
        for job in jobs
    ]
    if not analyses:
        empty = _unknown(_Scan({}, [], ExcerptCollector()), ())
        return apply_history(
            empty.model_copy(update={"summary": "unknown: no failed job logs"}), assess_history(history)
        )
    _, best = max(
        analyses,
        key=lambda pair: (pair[1].category is not Category.UNKNOWN, pair[1].risk, pair[1].confidence),
    )
    unexplained = [j.name for j, a in analyses if a.category is Category.UNKNOWN]
    confidence = best.confidence
    notes: list[str] = []
    if unexplained and best.category is not Category.UNKNOWN:
        confidence = min(confidence, 0.6)
        notes.append(f"unexplained jobs: {', '.join(unexplained)}")
    combined = best.model_copy(
        update={
            "risk": max(a.risk for _, a in analyses),
            "confidence": confidence,
            "matched_rules": tuple(dict.fromkeys(r for _, a in analyses for r in a.matched_rules)),
            "summary": " | ".join(f"{j.name}: {a.summary}" for j, a in analyses),
            "notes": tuple(notes),
        }
    )
    return apply_history(combined, assess_history(history))
