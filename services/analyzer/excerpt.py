"""Pick the few lines of a log that explain its failure, in one bounded pass.

A human (or a model) reading a failure needs the lines around the error, not a
50 MiB log. The collector sees each line once and keeps only: a few lines of
context before the current one, the windows around lines that a rule hit or that
GitHub flagged as an error, and the tail. For every cause it keeps the first
occurrences and the last one, so memory is bounded by the size of the knowledge
base, never by the size of the log. Line numbers stay those of the original log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from medic.events import ExcerptLine
from medic.services.analyzer.logtext import CleanLine, Marker, iter_clean_lines

ANNOTATION = -1
"""Reason code of a line GitHub marked ``##[error]`` (rule reasons are rule indices)."""

DEFAULT_MAX_LINES = 80


@dataclass(slots=True)
class _Window:
    wid: int
    lines: list[CleanLine]
    anchors: list[int] = field(default_factory=list)
    reasons: set[int] = field(default_factory=set)
    after_left: int = 0


@dataclass(slots=True)
class _Retention:
    """Per reason: the first windows (kept for good) and the latest one (replaced)."""

    first: list[int] = field(default_factory=list)
    last: int | None = None


class ExcerptCollector:
    """Feed lines in order with the rules they hit; ``build`` returns the excerpt."""

    def __init__(
        self,
        *,
        before: int = 3,
        after: int = 3,
        keep_first: int = 2,
        max_window: int = 24,
        max_tail: int = DEFAULT_MAX_LINES,
    ) -> None:
        self._before: deque[CleanLine] = deque(maxlen=before)
        self._after = after
        self._keep_first = keep_first
        self._max_window = max_window
        self._tail: deque[CleanLine] = deque(maxlen=max_tail)
        self._open: _Window | None = None
        self._windows: dict[int, _Window] = {}
        self._retention: dict[int, _Retention] = {}
        self._next_id = 0

    def feed(self, line: CleanLine, reasons: Iterable[int] = ()) -> None:
        why = set(reasons)
        if line.marker is Marker.ERROR:
            why.add(ANNOTATION)
        window = self._open
        if window is not None and (not why or len(window.lines) < self._max_window):
            window.lines.append(line)
            if why:
                window.anchors.append(line.number)
                window.reasons |= why
                window.after_left = self._after
            else:
                window.after_left -= 1
            if window.after_left <= 0:
                self._close()
        elif why:
            self._close()
            self._open = _Window(
                self._next_id, [*self._before, line], [line.number], why, after_left=self._after
            )
            self._next_id += 1
        self._before.append(line)
        self._tail.append(line)

    def _close(self) -> None:
        window, self._open = self._open, None
        if window is None:
            return
        self._windows[window.wid] = window
        dropped: set[int] = set()
        for reason in window.reasons:
            kept = self._retention.setdefault(reason, _Retention())
            if len(kept.first) < self._keep_first:
                kept.first.append(window.wid)
                continue
            if kept.last is not None:
                dropped.add(kept.last)
            kept.last = window.wid
        for wid in dropped - self._referenced():
            self._windows.pop(wid, None)

    def _referenced(self) -> set[int]:
        refs: set[int] = set()
        for kept in self._retention.values():
            refs.update(kept.first)
            if kept.last is not None:
                refs.add(kept.last)
        return refs

    def build(
        self, *, max_lines: int = DEFAULT_MAX_LINES, preferred: Sequence[int] = ()
    ) -> tuple[ExcerptLine, ...]:
        """At most ``max_lines`` lines: hit lines of the preferred causes first, then their
        context, then the tail; returned in log order."""
        self._close()
        if max_lines <= 0:
            return ()
        ranked = sorted(self._windows.values(), key=lambda w: (_rank(w, preferred), w.wid))
        chosen: dict[int, str] = {}
        tail_reserve = min(len(self._tail), max(1, max_lines // 5))
        budget = max_lines - tail_reserve
        for window in ranked:
            for number in window.anchors:
                _take(chosen, number, _text_of(window, number), budget)
        for window in ranked:
            for line in _nearest_first(window):
                _take(chosen, line.number, line.text, budget)
        for line in reversed(self._tail):
            _take(chosen, line.number, line.text, max_lines)
        return tuple(ExcerptLine(line=n, text=chosen[n]) for n in sorted(chosen))


def _rank(window: _Window, preferred: Sequence[int]) -> int:
    order = {reason: position for position, reason in enumerate(preferred)}
    fallback = len(preferred) + (0 if ANNOTATION in window.reasons else 1)
    return min((order.get(reason, fallback) for reason in window.reasons), default=fallback)


def _text_of(window: _Window, number: int) -> str:
    return next(line.text for line in window.lines if line.number == number)


def _nearest_first(window: _Window) -> list[CleanLine]:
    anchors = window.anchors
    return sorted(window.lines, key=lambda line: min(abs(line.number - a) for a in anchors))


def _take(chosen: dict[int, str], number: int, text: str, limit: int) -> None:
    if number not in chosen and len(chosen) < limit:
        chosen[number] = text


def extract_excerpt(
    source: str | Iterable[str], *, max_lines: int = DEFAULT_MAX_LINES
) -> tuple[ExcerptLine, ...]:
    """Excerpt from error annotations and the tail alone, for callers without rules."""
    collector = ExcerptCollector(max_tail=max_lines)
    for line in iter_clean_lines(source):
        collector.feed(line)
    return collector.build(max_lines=max_lines)
