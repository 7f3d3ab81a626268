"""Pick the lines of a log that explain its failure: whole error blocks, latest first.

A triager reads the error block of the step that failed, not the end of the log. So
the search window is the failing step (``steps.py``); inside it every line gets an
anchor weight (a rule hit, an error shape such as ``error:``/``FAILED``/``E   ``/a stack
frame, a GitHub ``##[error]`` annotation, or being new compared with the last green run);
anchors close together form blocks; a block's score grows with its weight and its
closeness to the step's end. The 80-line budget goes to the best blocks whole (a list of
30 failing tests stays together), then a short tail of the failing step. The lines shown
are the log's own text, with their original numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from medic.events import Category, ExcerptLine
from medic.services.analyzer.fingerprint import normalise_line
from medic.services.analyzer.logtext import CleanLine, Marker, iter_clean_lines
from medic.services.analyzer.matcher import Matcher
from medic.services.analyzer.rules import Rule
from medic.services.analyzer.steps import FailingStep, find_failing_step

DEFAULT_MAX_LINES = 80
TAIL_LINES = 6
"""Lines of the failing step's end always shown: the command's own last words."""
BLOCK_GAP = 3
"""Anchors at most this many lines apart belong to one block."""
CONTEXT_BEFORE = 2
CONTEXT_AFTER = 3
STRONG = 2.5
"""Anchors at least this heavy are shown before any block's context."""
REPEAT_DAMPING = 0.2
DISTANCE_SCALE = 250.0
"""A block this many lines before the step's end counts half as much as one at the end."""

# (weight, RE2 pattern): the shapes error output takes across tools and languages. Weights
# only rank lines inside the failing step; categories come from the rules, never from here.
SHAPES: tuple[tuple[float, str], ...] = (
    (3.0, r"(?-i)\b(?:ERROR|FAILED|FAILURE|FAIL|FATAL|FAILING)\b"),
    (3.0, r"(?-i)\b(?:[Ee]rror|[Ff]ailed|[Ff]ailure)(?:\]|:|!| \()"),
    (3.0, r"^\s*\[?error\]?[:\s]"),
    (3.0, r"(?-i)^E\s"),
    (3.0, r"traceback \(most recent call last\)"),
    (3.0, r"(?-i)\b[A-Z]\w*(?:Error|Exception|Failure|Failed)\b"),
    (3.0, r"^npm err!"),
    (3.0, r":\d+(?::\d+)?:?\s*(?:fatal )?error\b"),
    (3.0, r"(?:^|\s)(?:✖|✗|\x{00d7}|●|✘)\s"),
    (3.0, r"\b[1-9]\d* (?:failing|failed|failures?|errors?|broken)\b"),
    (3.0, r"(?:failures|errors): [1-9]"),
    (3.0, r"\bpanic:|^fatal:|segmentation fault|core dumped|\baborted\b"),
    (3.0, r"would (?:be )?reformat|not (?:properly )?formatted|files? (?:were|was|would be) modified"),
    (2.0, r"(?-i)\b(?:[Ee]xpected|[Aa]ctual|[Rr]eceived|but was|but got)\b"),
    (2.0, r"^\s*\d+\) \S"),
    (2.0, r"(?-i)\b(?:failed|error|errors|exception|assert)\b"),
    (2.0, r"exited with [1-9]|exit (?:code|status) [1-9]|returned non-zero|did not complete successfully"),
    (1.5, r"^\s*(?:symbol|location|required|found|reason):"),
    (0.3, r"^\s+at \S.*[(:]\S*\d+\)?$|^\s+at [\w$.<>]+\(|^\s+file \".*\", line \d+"),
    (1.0, r"^\s*\^[\^~]*\s*$"),
    (0.5, r"(?-i)\b(?:warning|WARNING|Warning)\b"),
)
QUIET: tuple[str, ...] = (
    r"(?:failures|errors|failed|skipped): 0, (?:errors|skipped|failures)",
    r"\b0 (?:failed|failures|errors|failing)\b",
    r"-werror|error-?prone|ignore-errors|fail-fast|failfast|on-error|error_reporting",
    r"^\s*\[?(?:info|debug)\]?\b",
    r"^\s*(?:downloading|downloaded|progress|receiving|resolving|compressing|unpacking)\b",
)


def _shape_rule(index: int, pattern: str) -> Rule:
    return Rule(
        name=f"shape-{index}", patterns=(pattern,), category=Category.UNKNOWN, risk_floor=0, confidence=0
    )


@functools.cache
def _shape_matcher() -> Matcher:
    rules = [_shape_rule(i, p) for i, (_, p) in enumerate(SHAPES)]
    rules += [_shape_rule(len(SHAPES) + i, p) for i, p in enumerate(QUIET)]
    return Matcher(rules, engine="auto")


def shape_weights(lines: Sequence[CleanLine]) -> dict[int, float]:
    """Index → error-shape weight (the strongest shape on the line; 0 when a quiet shape hits)."""
    weights: dict[int, float] = {}
    quiet: set[int] = set()
    for index, shape in _shape_matcher().scan_lines([line.text for line in lines]):
        if shape >= len(SHAPES):
            quiet.add(index)
        else:
            weights[index] = max(weights.get(index, 0.0), SHAPES[shape][0])
    for index in quiet:
        weights.pop(index, None)
    return weights


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive anchors (at most ``BLOCK_GAP`` apart) and their combined score."""

    first: int
    last: int
    anchors: tuple[int, ...]
    score: float


def blocks(
    weights: Mapping[int, float], step: FailingStep, lines: Sequence[CleanLine] | None = None
) -> list[Block]:
    """Anchor blocks inside the failing step, the best first.

    A block that repeats an earlier one (the same strongest line, numbers aside: 30 tests
    failing the same way, 13 modules failing to import) is read once, where it first
    appears: the first occurrence takes the group's best score, the repeats a fraction.
    """
    inside = sorted(i for i, w in weights.items() if step.start <= i <= step.end and w > 0)
    found: list[Block] = []
    group: list[int] = []
    for index in [*inside, None]:
        if index is not None and (not group or index - group[-1] <= BLOCK_GAP):
            group.append(index)
            continue
        if group:
            found.append(_block(group, weights, step))
        group = [index] if index is not None else []
    if lines is not None:
        found = _first_of_repeats(found, weights, lines)
    return sorted(found, key=lambda b: (-b.score, -b.last))


def _first_of_repeats(
    found: list[Block], weights: Mapping[int, float], lines: Sequence[CleanLine]
) -> list[Block]:
    groups: dict[str, list[int]] = {}
    for position, block in enumerate(found):
        strongest = max(block.anchors, key=lambda i: (weights[i], -i))
        groups.setdefault(normalise_line(lines[strongest].text[:300]), []).append(position)
    rescored = list(found)
    for members in groups.values():
        if len(members) < 2:
            continue
        best = max(found[m].score for m in members)
        first, *repeats = members
        rescored[first] = replace(found[first], score=best)
        for member in repeats:
            rescored[member] = replace(found[member], score=found[member].score * REPEAT_DAMPING)
    return rescored


def _block(group: list[int], weights: Mapping[int, float], step: FailingStep) -> Block:
    strongest = max(weights[i] for i in group)
    strong = sum(1 for i in group if weights[i] >= STRONG)
    closeness = 1.0 / (1.0 + (step.end - group[-1]) / DISTANCE_SCALE)
    score = (strongest + 0.5 * min(strong, 8)) * closeness
    return Block(group[0], group[-1], tuple(group), score)


def select_lines(
    lines: Sequence[CleanLine],
    weights: Mapping[int, float],
    step: FailingStep,
    *,
    max_lines: int = DEFAULT_MAX_LINES,
) -> tuple[ExcerptLine, ...]:
    """At most ``max_lines`` verbatim lines: the failing step's tail, then the best blocks whole."""
    if max_lines <= 0 or not lines:
        return ()
    chosen: set[int] = set()
    tail = [i for i in range(step.end, step.start - 1, -1) if lines[i].text.strip()][
        : min(TAIL_LINES, max_lines)
    ]
    chosen.update(tail)
    ranked = blocks({i: w for i, w in weights.items() if i != step.end}, step, lines)
    for block in ranked:  # first the strong lines of the best blocks, so a list stays whole
        strong = [i for i in block.anchors if weights[i] >= STRONG and i not in chosen]
        if not _add(chosen, strong, max_lines):
            break
    for block in ranked:  # then each block's own span and context, nearest its anchors first
        start = max(step.start, block.first - CONTEXT_BEFORE)
        stop = min(step.end, block.last + CONTEXT_AFTER)
        span = sorted(
            (i for i in range(start, stop + 1) if i not in chosen),
            key=lambda i: min(abs(i - a) for a in block.anchors),
        )
        if not _add(chosen, span, max_lines):
            break
    if len(chosen) < max_lines:
        _fill_with_tail(chosen, step, max_lines)
    return tuple(ExcerptLine(line=lines[i].number, text=lines[i].original) for i in sorted(chosen))


def _add(chosen: set[int], indices: Sequence[int], max_lines: int) -> bool:
    """Add as many as fit; False once the budget is spent."""
    for index in indices:
        if len(chosen) >= max_lines:
            return False
        chosen.add(index)
    return len(chosen) < max_lines


def _fill_with_tail(chosen: set[int], step: FailingStep, max_lines: int) -> None:
    """Spare budget goes to the failing step's lines nearest its end, then to earlier ones."""
    index = step.end
    while len(chosen) < max_lines and index >= step.start:
        chosen.add(index)
        index -= 1


def error_marker_weights(lines: Sequence[CleanLine], step: FailingStep) -> dict[int, float]:
    """``##[error]`` annotations other than the step's own exit line."""
    return {
        i: 3.0 for i in range(step.start, step.end + 1) if lines[i].marker is Marker.ERROR and i != step.end
    }


def extract_excerpt(
    source: str | Iterable[str], *, max_lines: int = DEFAULT_MAX_LINES
) -> tuple[ExcerptLine, ...]:
    """Excerpt from structure and error shapes alone, for callers without rules."""
    lines = list(iter_clean_lines(source))
    step = find_failing_step(lines)
    weights = shape_weights(lines)
    for index, weight in error_marker_weights(lines, step).items():
        weights[index] = max(weights.get(index, 0.0), weight)
    return select_lines(lines, weights, step, max_lines=max_lines)
