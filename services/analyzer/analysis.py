"""The analysis of one failure, as the analyzer carries it from the rules to AnalysisCompleted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from medic.events import AnalysisCompletedPayload, AnalysisMethod, Category, ExcerptLine, ProposedAction


class LogAnalysis(BaseModel):
    """The analyzer's verdict on one failure: what, how sure, how risky, what to do, why.

    One model from the rules' first answer to the event: the second opinion and the cache
    return it changed (``method``, token counts), and :meth:`to_payload` is the one conversion
    at the event boundary. The model's own answer (``ModelVerdict``) is the other boundary.
    """

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
    job_passed: bool = False
    """The log is of a job that passed (no failing step, the CI system's success line)."""
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    """What the model's second opinion cost (zero when the rules sufficed)."""

    def to_payload(self, *, repository: str, run_id: int, run_attempt: int) -> AnalysisCompletedPayload:
        """The event payload; where the failure happened comes from ``FailureDetected``."""
        return AnalysisCompletedPayload(
            repository=repository,
            run_id=run_id,
            run_attempt=run_attempt,
            category=self.category,
            risk=self.risk,
            confidence=self.confidence,
            proposed_action=self.proposed_action,
            method=self.method,
            fingerprint=self.fingerprint,
            summary=self.summary,
            retryable=self.retryable,
            matched_rules=self.matched_rules,
            excerpt=self.excerpt,
        )
