"""Scan log lines for every rule at once.

The whole knowledge base is compiled ONCE into a single Hyperscan multi-pattern
database and each block of lines is scanned once for all rules, so the cost grows
with the log, not with the number of rules. Where Hyperscan is missing (an exotic
platform) or refuses one pattern, Google RE2 takes over (an ``re2.Set``), with the
same per-line semantics: both engines report exactly the same (line, rule) pairs,
which the tests check on the whole corpus.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import re2

from medic.services.analyzer.rules import Rule, re2_options

hyperscan: Any
try:
    hyperscan = importlib.import_module("hyperscan")
except ImportError:  # pragma: no cover - depends on the platform's wheel
    hyperscan = None

Engine = Literal["auto", "hyperscan", "re2"]


class EngineUnavailable(RuntimeError):
    """The engine asked for explicitly cannot run here."""


def hyperscan_available() -> bool:
    return hyperscan is not None


@dataclass(frozen=True, slots=True)
class _Pattern:
    rule_index: int
    text: str


def _encode(text: str) -> bytes:
    """UTF-8 that is always valid (Hyperscan's UTF-8 mode demands it); lone surrogates become '?'."""
    return text.encode("utf-8", "replace")


class _Re2Set:
    """Per-line fallback: one RE2 set over some patterns, each line scanned once."""

    def __init__(self, patterns: Sequence[_Pattern]) -> None:
        self._patterns = tuple(patterns)
        self._set = re2.Set.SearchSet(re2_options())
        for pattern in self._patterns:
            self._set.Add(pattern.text)
        self._set.Compile()

    def rules_in(self, encoded_line: bytes) -> set[int]:
        if not self._patterns:
            return set()
        return {self._patterns[i].rule_index for i in self._set.Match(encoded_line) or ()}


class _HyperscanDatabase:
    """One block-mode database over every pattern Hyperscan accepts.

    With ``leftmost_start`` a match knows where it began, so only a match that crossed a
    newline is checked again. Without it (bounded repeats can be too large for start-of-match
    tracking) the start is unknown and every match beyond the first line is checked again
    on its own line with RE2: rare, since hits are rare.
    """

    def __init__(self, patterns: Sequence[_Pattern], *, leftmost_start: bool) -> None:
        assert hyperscan is not None
        flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_MULTILINE
        if leftmost_start:
            flags |= hyperscan.HS_FLAG_SOM_LEFTMOST
        self.accepted, self.refused = _split_supported(patterns, flags)
        self._verify = [re2.compile(p.text, re2_options()) for p in self.accepted]
        self._db: Any = None
        self._local = threading.local()
        if self.accepted:
            self._db = _compile(self.accepted, flags)

    def _scratch(self) -> Any:
        """Hyperscan scratch space is per thread; one scan at a time may use it."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            assert hyperscan is not None
            scratch = hyperscan.Scratch(self._db)
            self._local.scratch = scratch
        return scratch

    def scan(self, block: bytes, starts: Sequence[int], hits: set[tuple[int, int]]) -> None:
        """Add (line index, rule index) for every match inside a single line of ``block``."""
        if self._db is None:
            return
        accepted, verify = self.accepted, self._verify

        def on_match(pattern_id: int, start: int, end: int, flags: int, context: object) -> None:
            first = bisect.bisect_right(starts, start) - 1
            last = bisect.bisect_right(starts, end - 1) - 1
            pattern = accepted[pattern_id]
            if first == last:
                hits.add((last, pattern.rule_index))
                return
            # The start is before the end line (or unknown); keep it only if the end line matches alone.
            line_end = starts[last + 1] - 1 if last + 1 < len(starts) else len(block)
            if verify[pattern_id].search(block[starts[last] : line_end]) is not None:
                hits.add((last, pattern.rule_index))

        self._db.scan(block, match_event_handler=on_match, scratch=self._scratch())


def _compile(patterns: Sequence[_Pattern], flags: int) -> Any:
    assert hyperscan is not None
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[_encode(p.text) for p in patterns],
        ids=list(range(len(patterns))),
        elements=len(patterns),
        flags=flags,
    )
    return database


def _split_supported(patterns: Sequence[_Pattern], flags: int) -> tuple[list[_Pattern], list[_Pattern]]:
    """Patterns Hyperscan compiles, and the rest (left to RE2). Whole set first: the common case."""
    assert hyperscan is not None
    try:
        _compile(patterns, flags)
    except hyperscan.error:
        pass
    else:
        return list(patterns), []
    accepted: list[_Pattern] = []
    refused: list[_Pattern] = []
    for pattern in patterns:
        try:
            _compile([pattern], flags)
        except hyperscan.error:
            refused.append(pattern)
        else:
            accepted.append(pattern)
    return accepted, refused


class Matcher:
    """All rules compiled once; ``scan_lines`` reports which rules hit which lines."""

    def __init__(self, rules: Sequence[Rule], *, engine: Engine = "auto") -> None:
        self.rules = tuple(rules)
        patterns = [_Pattern(i, p) for i, rule in enumerate(self.rules) for p in rule.patterns]
        use_hyperscan = engine == "hyperscan" or (engine == "auto" and hyperscan_available())
        if engine == "hyperscan" and not hyperscan_available():
            raise EngineUnavailable("hyperscan is not installed on this platform")
        self._databases: list[_HyperscanDatabase] = []
        if use_hyperscan:
            for leftmost_start in (True, False):
                database = _HyperscanDatabase(patterns, leftmost_start=leftmost_start)
                self._databases.append(database)
                patterns = database.refused
        self._fallback = _Re2Set(patterns)
        self.engine: Literal["hyperscan", "re2"] = "hyperscan" if use_hyperscan else "re2"

    @property
    def fallback_patterns(self) -> int:
        """How many patterns run on RE2 although Hyperscan was chosen (0 is the happy case)."""
        return len(self._fallback._patterns) if self._databases else 0

    def scan_lines(self, lines: Sequence[str]) -> list[tuple[int, int]]:
        """Sorted unique (index in ``lines``, rule index) pairs; one scan for the whole batch."""
        if not lines:
            return []
        encoded = [_encode(line) for line in lines]
        hits: set[tuple[int, int]] = set()
        if self._databases:
            starts = list(itertools.accumulate((len(e) + 1 for e in encoded[:-1]), initial=0))
            block = b"\n".join(encoded)
            for database in self._databases:
                database.scan(block, starts, hits)
        if self._fallback._patterns:
            for index, line in enumerate(encoded):
                hits.update((index, rule) for rule in self._fallback.rules_in(line))
        return sorted(hits)

    def match_line(self, line: str) -> tuple[Rule, ...]:
        """Rules that hit one line, in knowledge-base order."""
        return tuple(self.rules[rule] for _, rule in self.scan_lines([line]))
