"""Decide why a job failed, from its log and its history, with rules alone.

Every line is scanned once for every rule. When several causes match, the rule
with the highest priority explains the failure (a network reset outranks the test
failure it provoked); the others stay listed as evidence. No rule hit means
``unknown``: low confidence, a high risk floor and no action, because what the
rules cannot explain must go to a human (or a model, then a human), never to an
automatic fix. Log text is only ever matched, never obeyed.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from medic.confidence import NEEDS_A_PERSON, SECOND_OPINION_BELOW
from medic.events import (
    ActionKind,
    Category,
    ExcerptLine,
    FailedJob,
    ProposedAction,
    RunHistory,
)
from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.baseline import added_lines
from medic.services.analyzer.excerpt import (
    DEFAULT_MAX_LINES,
    DISTANCE_SCALE,
    error_marker_weights,
    select_lines,
    shape_weights,
)
from medic.services.analyzer.fingerprint import fingerprint
from medic.services.analyzer.flakiness import FlakinessEvidence, assess_history
from medic.services.analyzer.knowledge import KnowledgeBase
from medic.services.analyzer.logtext import CleanLine, Marker, iter_clean_lines
from medic.services.analyzer.ownership import is_own_module, project_names
from medic.services.analyzer.rules import Rule
from medic.services.analyzer.steps import FailingStep, find_failing_step, job_passed, step_prior

UNKNOWN_CONFIDENCE = 0.2
UNKNOWN_RISK = 6
CONFIDENT_THRESHOLD = SECOND_OPINION_BELOW
_BATCH_LINES = 4096
_EVIDENCE_TEXTS = 3
_FLAKY_ELIGIBLE = frozenset({Category.TEST_FAILURE, Category.TIMEOUT, Category.UNKNOWN, Category.FLAKY_TEST})
MAX_KEPT_LINES = 60_000
"""Lines kept for structure and ranking; a longer log keeps its end (where a failure is)."""
_RULE_WEIGHT = 4.0
_ADDED_BOOST = 3.0
_ADDED_WEIGHT = 0.5
_SEEN_DAMPING = 0.3
_AUTOMATIC = frozenset({Category.INFRASTRUCTURE, Category.TIMEOUT, Category.FLAKY_TEST})
_AUTOMATIC_CLOSENESS = 0.7
_AUTOMATIC_SLACK = 0.005
"""An automatic category must be the failing step's last word: no other cause nearer its end."""
_END_CLOSENESS = 0.97
_EARLY_PRIORITY_CAP = 52
_WARNING_LINE = re.compile(
    r"^\s*(?:\[(?:WARNING|WARN)\]|WARNING:|warning:|npm WARN|W: |\S+:\d+(?::\d+)?: warning:)"
)
_MISSING_MODULE_RULE = "python-missing-module"
_EXPLAINING = 2.0
"""Anchor weight a line needs to explain a failure (a warning or a stack frame does not)."""
_PRIOR_CONFIDENCE = 0.5
_PRIOR_RISK = 5
_GENERIC_EXIT = re.compile(
    r"process completed with exit code|exited with \d|exit code:? \d|^error: process .* exit|build failed"
    r"|^\W*(?:error|errors|failed|failure|fail|fatal)\W*$",
    re.IGNORECASE,
)


@dataclass(slots=True)
class _RuleEvidence:
    first_line: int
    hits: int = 0
    texts: list[str] = field(default_factory=list)
    closeness: float = 0.0


@dataclass(slots=True)
class _Scan:
    lines: list[CleanLine]
    step: FailingStep
    evidence: dict[int, _RuleEvidence]
    weights: dict[int, float]
    annotations: list[str]
    baseline_used: bool = False


def kept_lines(source: str | Iterable[str]) -> list[CleanLine]:
    """The last ``MAX_KEPT_LINES`` cleaned lines, numbered as in the log (memory stays bounded)."""
    return list(deque(iter_clean_lines(source), maxlen=MAX_KEPT_LINES))


def _scan(
    lines: list[CleanLine], knowledge_base: KnowledgeBase, baseline: Iterable[str] | None = None
) -> _Scan:
    """Match every line once; keep rule evidence from the failing step only, nearest its end first."""
    step = find_failing_step(lines)
    rules = knowledge_base.rules
    weights = shape_weights(lines)
    for index, weight in error_marker_weights(lines, step).items():
        weights[index] = max(weights.get(index, 0.0), weight)
    evidence: dict[int, _RuleEvidence] = {}
    for offset in range(step.start, step.end + 1, _BATCH_LINES):
        batch = lines[offset : min(offset + _BATCH_LINES, step.end + 1)]
        for position, rule in knowledge_base.matcher.scan_lines([line.text for line in batch]):
            index = offset + position
            line = lines[index]
            if rules[rule].category is not Category.LINT and _WARNING_LINE.match(line.text):
                continue  # a warning explains no failure (javadoc, deprecations), except a linter's
            found = evidence.get(rule)
            if found is None:
                found = evidence[rule] = _RuleEvidence(first_line=line.number)
            found.hits += 1
            found.closeness = max(found.closeness, closeness(step, index))
            if len(found.texts) < _EVIDENCE_TEXTS:
                found.texts.append(line.text)
            weights[index] = max(weights.get(index, 0.0), _RULE_WEIGHT + rules[rule].priority / 50)
    annotations = [lines[i].text for i in range(step.start, step.end + 1) if lines[i].marker is Marker.ERROR][
        :_EVIDENCE_TEXTS
    ]
    used = False
    if baseline is not None:
        added = added_lines(lines, baseline)
        used = True
        for index in range(step.start, step.end + 1):
            if index in added:
                weights[index] = weights.get(index, 0.0) * _ADDED_BOOST + _ADDED_WEIGHT
            elif index in weights:
                weights[index] *= _SEEN_DAMPING
    return _Scan(lines, step, evidence, weights, annotations, used)


def closeness(step: FailingStep, index: int) -> float:
    """1 at the failing step's end, halving every ``DISTANCE_SCALE`` lines before it."""
    return 1.0 / (1.0 + (step.end - index) / DISTANCE_SCALE)


def _ranked(scan: _Scan, rules: Sequence[Rule]) -> list[int]:
    """Rule indices, the best explanation first: closeness to the step's end, weighted by priority.

    A cause that can trigger an automatic action (runner, network, timeout, flaky) must sit
    near the end of the failing step and be its last word: the same words earlier are usually
    setup noise, and inside test output they are the test's business (a wrong automatic
    category is worse than a safe one).
    """
    nearest = max((found.closeness for found in scan.evidence.values()), default=0.0)
    eligible = [
        i
        for i in scan.evidence
        if rules[i].category not in _AUTOMATIC
        or scan.evidence[i].closeness >= max(_AUTOMATIC_CLOSENESS, nearest - _AUTOMATIC_SLACK)
    ]
    eligible = _missing_module_verdict(scan, rules, eligible)
    return sorted(
        eligible,
        key=lambda i: (
            -scan.evidence[i].closeness * (1 + _priority(rules[i], scan.evidence[i]) / 100),
            -rules[i].confidence,
            scan.evidence[i].first_line,
        ),
    )


def _missing_module_verdict(scan: _Scan, rules: Sequence[Rule], eligible: list[int]) -> list[int]:
    """A missing module of the project's own is a code failure (the rule is dropped); a missing
    third-party package explains the test failure it caused (it is heard as the step's end)."""
    module_rules = [i for i in eligible if rules[i].name == _MISSING_MODULE_RULE]
    if not module_rules:
        return eligible
    found = scan.evidence[module_rules[0]]
    names = project_names(line.text for line in scan.lines[scan.step.start : scan.step.end + 1])
    verdict = next((v for v in (is_own_module(text, names) for text in found.texts) if v is not None), None)
    if verdict is True:  # the first missing module, as a triager reads it
        return [i for i in eligible if i not in module_rules]
    if verdict is False:
        nearest = max(scan.evidence[i].closeness for i in eligible)
        found.closeness = max(found.closeness, nearest)
    return eligible


def _priority(rule: Rule, found: _RuleEvidence) -> int:
    """Priority breaks ties only at the very end of the failing step (a runner fault after the
    tests); earlier, a high-priority word inside test output must not outrank the test failure."""
    return rule.priority if found.closeness >= _END_CLOSENESS else min(rule.priority, _EARLY_PRIORITY_CAP)


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
    baseline: Iterable[str] | None = None,
) -> LogAnalysis:
    """Classify one job log (a whole text or an iterable of lines) with rules alone.

    ``baseline`` is the log of the last green run of the same job, when there is one: lines
    new in this log rank first.
    """
    rules = knowledge_base.rules
    scan = _scan(kept_lines(text_or_lines), knowledge_base, baseline)
    ranked = _ranked(scan, rules)
    excerpt = select_lines(scan.lines, scan.weights, scan.step, max_lines=max_lines)
    notes = ("baseline: compared with the last green run",) if scan.baseline_used else ()
    if not ranked:
        analysis = _from_step(scan, excerpt) or _unknown(scan, excerpt)
        analysis = analysis.model_copy(update={"matched_rules": _evidence_names(scan, rules, ())})
    else:
        winner = rules[ranked[0]]
        found = scan.evidence[ranked[0]]
        analysis = LogAnalysis(
            category=winner.category,
            risk=winner.risk_floor,
            confidence=_confidence(winner, (rules[i] for i in ranked[1:])),
            retryable=winner.retryable,
            proposed_action=winner.action.proposed(),
            matched_rules=_evidence_names(scan, rules, ranked),
            summary=_summary(winner, found),
            excerpt=excerpt,
            fingerprint=fingerprint(found.texts, salt=winner.name),
        )
    if notes:
        analysis = analysis.model_copy(update={"notes": analysis.notes + notes})
    if job_passed(scan.lines, scan.step):
        analysis = analysis.model_copy(update={"job_passed": True})
    return apply_history(analysis, assess_history(history))


def _evidence_names(scan: _Scan, rules: Sequence[Rule], ranked: Sequence[int]) -> tuple[str, ...]:
    """Every rule that hit the failing step: the ranked ones first, then those held back."""
    rest = sorted(set(scan.evidence) - set(ranked), key=lambda i: -scan.evidence[i].closeness)
    return tuple(rules[i].name for i in [*ranked, *rest])


def _from_step(scan: _Scan, excerpt: tuple[ExcerptLine, ...]) -> LogAnalysis | None:
    """No rule fired in the failing step: its identity (command, task, goal) is a weaker prior."""
    prior = step_prior(scan.step.name)
    evidence = _explaining_lines(scan)
    if prior is None or not evidence:
        return None
    return LogAnalysis(
        category=prior,
        risk=_PRIOR_RISK,
        confidence=_PRIOR_CONFIDENCE,
        retryable=False,
        proposed_action=ProposedAction(kind=ActionKind.NONE),
        summary=f"{prior.value}: the failing step is {scan.step.name[:120]!r}; no known error line matched",
        excerpt=excerpt,
        fingerprint=fingerprint(evidence, salt=f"step:{prior.value}"),
    )


def _explaining_lines(scan: _Scan) -> list[str]:
    """The strongest anchors of the failing step, nearest its end: never generic exit lines."""
    ranked = sorted(
        (i for i, w in scan.weights.items() if scan.step.start <= i <= scan.step.end and w >= _EXPLAINING),
        key=lambda i: (-scan.weights[i] * closeness(scan.step, i), -i),
    )
    texts = [scan.lines[i].text for i in ranked if not _GENERIC_EXIT.search(scan.lines[i].text)]
    return texts[: _EVIDENCE_TEXTS * 2]


def _summary(winner: Rule, found: _RuleEvidence) -> str:
    what = winner.description or winner.name
    first = found.texts[0][:200] if found.texts else ""
    more = f" (and {found.hits - 1} more)" if found.hits > 1 else ""
    return f"{winner.category.value}: {what}; line {found.first_line}{more}: {first}"


def _unknown(scan: _Scan, excerpt: tuple[ExcerptLine, ...]) -> LogAnalysis:
    """No known cause. The fingerprint comes from the lines that explain the failure (never a
    generic exit line); with no such line there is none, so nothing can be shared under it."""
    evidence = _explaining_lines(scan)
    return LogAnalysis(
        category=Category.UNKNOWN,
        risk=UNKNOWN_RISK,
        confidence=UNKNOWN_CONFIDENCE,
        retryable=False,
        proposed_action=ProposedAction(kind=ActionKind.NONE),
        summary="unknown: no known cause matched; a human should look",
        excerpt=excerpt,
        fingerprint=fingerprint(evidence, salt="unknown") if evidence else "",
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
            "confidence": max(analysis.confidence, 0.8) if known else NEEDS_A_PERSON,
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
    baselines: Mapping[int, str] | None = None,
) -> LogAnalysis:
    """One verdict for a run with several failed jobs.

    ``baselines`` maps a job id to the log of the last green run of the same job, when one
    was found: that job's new lines rank first.

    The known cause with the highest risk (then confidence) wins, since rerunning cannot
    fix a job that failed for a worse reason. Risk is the highest of all jobs, and an
    unexplained job caps confidence: part of the failure is still unexplained.
    """
    green = baselines or {}
    analyses = [
        (
            job,
            analyze_log(
                job.log_tail,
                knowledge_base=knowledge_base,
                max_lines=max_lines,
                baseline=green.get(job.job_id),
            ),
        )
        for job in jobs
    ]
    if not analyses:
        empty = _unknown(_Scan([], FailingStep(0, -1), {}, {}, []), ())
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
        confidence = min(confidence, NEEDS_A_PERSON)  # a job unexplained: a person looks
        notes.append(f"unexplained jobs: {', '.join(unexplained)}")
    combined = best.model_copy(
        update={
            "risk": max(a.risk for _, a in analyses),
            "confidence": confidence,
            "matched_rules": tuple(dict.fromkeys(r for _, a in analyses for r in a.matched_rules)),
            "summary": " | ".join(f"{j.name}: {a.summary}" for j, a in analyses),
            "notes": tuple(dict.fromkeys((*notes, *(n for _, a in analyses for n in a.notes)))),
        }
    )
    return apply_history(combined, assess_history(history))
