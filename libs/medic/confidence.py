"""Confidence levels the analyzer and the safety gate must agree on (they never import each other).

The gate acts without a person only at or above :data:`AUTOMATIC_CONFIDENCE_FLOOR`. When the
analyzer knows its verdict is incomplete (a job it could not explain, a category inferred from
history alone) it caps the confidence at :data:`NEEDS_A_PERSON`, strictly below that floor, so
the cap always means "ask a human" whatever comparison the gate uses.
"""

from __future__ import annotations

from typing import Final

AUTOMATIC_CONFIDENCE_FLOOR: Final = 0.6
"""The gate's floor: below it, the cause is not known well enough to act without a person."""

NEEDS_A_PERSON: Final = 0.5
"""The analyzer's cap for a verdict it knows to be incomplete (strictly below the floor)."""

SECOND_OPINION_BELOW: Final = 0.7
"""Below this (or when the category is unknown) the rules ask the model for a second opinion."""

assert NEEDS_A_PERSON < AUTOMATIC_CONFIDENCE_FLOOR <= SECOND_OPINION_BELOW
