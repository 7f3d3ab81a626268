"""What we ask the model for, and how its answer is made safe to use.

The JSON schema is sent as a Structured Outputs ``response_format`` so a compliant
model cannot answer in another shape; :func:`verdict_from_content` still validates
and clamps everything, because an OpenAI-compatible server (or a confused model) may
ignore the schema, and a model answer is never trusted to stay inside its bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from typing import Any, Final

from openai.types.shared_params.response_format_json_schema import JSONSchema, ResponseFormatJSONSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medic.events import ActionKind, Category
from medic.redact import redact

SCHEMA_NAME: Final = "failure_analysis"
SUMMARY_MAX_CHARS: Final = 600
MAX_CITED_LINES: Final = 20


class RulesHint(BaseModel):
    """What the deterministic rules concluded; the model sees it as trusted context.

    Only values ci-medic itself computed belong here: names a pull request controls
    (workflow, job, branch) would smuggle untrusted text outside the log block.
    """

    model_config = ConfigDict(frozen=True)

    category: Category = Category.UNKNOWN
    risk: int = Field(default=5, ge=0, le=10)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    matched_rules: tuple[str, ...] = ()
    proposed_action: ActionKind = ActionKind.NONE


class ModelVerdict(BaseModel):
    """A validated, clamped model answer plus what it cost."""

    model_config = ConfigDict(frozen=True)

    category: Category
    risk: int = Field(ge=0, le=10)
    confidence: float = Field(ge=0.0, le=1.0)
    action: ActionKind
    summary: str = ""
    cited_lines: tuple[int, ...] = ()
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    model: str = ""


class ModelAnswerInvalid(ValueError):
    """The answer was not JSON of the requested shape (truncated, refused, free text)."""


class _RawAnswer(BaseModel):
    """Lenient first read: right field names, loose values; clamping happens afterwards."""

    model_config = ConfigDict(extra="ignore")

    category: str
    risk: float
    confidence: float
    action: str
    summary: str = ""
    cited_lines: list[int] = Field(default_factory=list)


def response_json_schema() -> dict[str, Any]:
    """The analysis payload as a strict Structured Outputs schema.

    Strict mode requires every property to be listed in ``required`` and
    ``additionalProperties: false``; the bounds are repeated in the descriptions
    because not every compatible server enforces ``minimum``/``maximum``.
    """
    return {
        "type": "object",
        "properties": {
            "category": {
                "type": "string",
                "enum": [c.value for c in Category],
                "description": "Why the job failed. Use 'unknown' when the log does not say.",
            },
            "risk": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "description": "0 = harmless to retry automatically, 10 = dangerous or suspicious.",
            },
            "confidence": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "How sure you are of the category, between 0 and 1.",
            },
            "action": {
                "type": "string",
                "enum": [a.value for a in ActionKind],
                "description": "The one remediation to propose; 'none' when a human must look.",
            },
            "summary": {
                "type": "string",
                "description": "One or two sentences a developer can check against the log.",
            },
            "cited_lines": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "Line numbers (as shown in the log) that support the answer.",
            },
        },
        "required": ["category", "risk", "confidence", "action", "summary", "cited_lines"],
        "additionalProperties": False,
    }


def response_format() -> ResponseFormatJSONSchema:
    return ResponseFormatJSONSchema(
        type="json_schema",
        json_schema=JSONSchema(name=SCHEMA_NAME, strict=True, schema=response_json_schema()),
    )


def _clamp_risk(value: float) -> int:
    if math.isnan(value):
        return 10  # a risk the model could not state is not a low risk
    if math.isinf(value):
        return 10 if value > 0 else 0
    return min(10, max(0, round(value)))


def _clamp_confidence(value: float) -> float:
    if math.isnan(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def _category(value: str) -> Category:
    try:
        return Category(value.strip().lower())
    except ValueError:
        return Category.UNKNOWN


def _action(value: str) -> ActionKind:
    try:
        return ActionKind(value.strip().lower())
    except ValueError:
        return ActionKind.NONE


def _cited(lines: Sequence[int], known: Collection[int]) -> tuple[int, ...]:
    kept: list[int] = []
    for line in lines:
        if line in known and line not in kept:
            kept.append(line)
        if len(kept) >= MAX_CITED_LINES:
            break
    return tuple(kept)


def verdict_from_content(
    content: str | None,
    *,
    known_lines: Collection[int],
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    model: str = "",
) -> ModelVerdict:
    """Parse, validate and clamp the model's JSON; raise :class:`ModelAnswerInvalid` if unusable.

    An unknown category becomes ``unknown`` and an unknown action ``none`` (never a
    guess), cited lines the excerpt does not contain are dropped, and the summary is
    redacted again since it is shown to humans and may quote the log.
    """
    if not content:
        raise ModelAnswerInvalid("empty answer")
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ModelAnswerInvalid(f"answer is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelAnswerInvalid("answer is not a JSON object")
    try:
        raw = _RawAnswer.model_validate(data)
    except ValidationError as exc:
        raise ModelAnswerInvalid(f"answer does not match the schema: {exc.error_count()} error(s)") from exc
    return ModelVerdict(
        category=_category(raw.category),
        risk=_clamp_risk(raw.risk),
        confidence=_clamp_confidence(raw.confidence),
        action=_action(raw.action),
        summary=redact(raw.summary.strip())[:SUMMARY_MAX_CHARS],
        cited_lines=_cited(raw.cited_lines, known_lines),
        prompt_tokens=max(0, prompt_tokens),
        completion_tokens=max(0, completion_tokens),
        model=model,
    )
