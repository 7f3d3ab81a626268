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
from typing import Any, Literal, Protocol

import re2

from medic.services.analyzer.compiled_rules import (
    CompiledLayer,
    CompiledRulesCache,
    cache_key,
    decode_layers,
    default_cache_dir,
    encode_layers,
)
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
    """One block-mode database over every pattern Hyperscan accepts, without start of match.

    Hyperscan reports where a match ends, not where it began (tracking the start,
    ``HS_FLAG_SOM_LEFTMOST``, halved the scan rate and refused large bounded repeats). So a match
    counts for the line it ends in only if that line matches alone, checked with RE2 once per
    (line, pattern) and only when the line is not already a hit for the rule: hits are rare,
    and a line hit many times is checked at most once per pattern.
    """

    def __init__(
        self,
        accepted: Sequence[_Pattern],
        refused: Sequence[_Pattern],
        database: Any,
        *,
        source: Literal["compiled", "cache"] = "compiled",
    ) -> None:
        self.accepted, self.refused = list(accepted), list(refused)
        self.source = source
        self._verify: dict[int, Any] = {}
        self._db: Any = database
        self._local = threading.local()

    @classmethod
    def compiled(cls, patterns: Sequence[_Pattern]) -> _HyperscanDatabase:
        accepted, refused, database = _split_supported(patterns, _flags())
        return cls(accepted, refused, database)

    def _scratch(self) -> Any:
        """Hyperscan scratch space is per thread; one scan at a time may use it."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            assert hyperscan is not None
            scratch = hyperscan.Scratch(self._db)
            self._local.scratch = scratch
        return scratch

    def _verifier(self, pattern_id: int) -> Any:
        """The pattern in RE2, compiled the first time a match needs checking."""
        compiled = self._verify.get(pattern_id)
        if compiled is None:
            compiled = self._verify[pattern_id] = re2.compile(self.accepted[pattern_id].text, re2_options())
        return compiled

    def scan(self, block: bytes, lines: _LineLocator, hits: set[tuple[int, int]]) -> None:
        """Add (line index, rule index) for every match inside a single line of ``block``."""
        if self._db is None:
            return
        accepted = self.accepted
        checked: set[tuple[int, int]] = set()

        def on_match(pattern_id: int, start: int, end: int, flags: int, context: object) -> None:
            line, line_start, line_end = lines.locate(end - 1)
            hit = (line, accepted[pattern_id].rule_index)
            if hit in hits or (line, pattern_id) in checked:
                return
            checked.add((line, pattern_id))
            if self._verifier(pattern_id).search(block[line_start:line_end]) is not None:
                hits.add(hit)

        self._db.scan(block, match_event_handler=on_match, scratch=self._scratch())


class _LineLocator(Protocol):
    def locate(self, position: int) -> tuple[int, int, int]:
        """The line holding byte ``position`` (its ending newline included): index, start, end."""


class _NewlineLines:
    """Lines found from the block's newlines as matches arrive, when each line is one line.

    Hyperscan reports matches in the order they end, so counting newlines from the previous
    match on (``bytes.count``, in C) finds every line in one pass over the block, and a line's
    bounds are looked up once however many matches end in it. A table of every line's start,
    built in Python, cost more than the scan itself.
    """

    def __init__(self, block: bytes) -> None:
        self._block = block
        self._line, self._start, self._end = -1, 0, -1

    def locate(self, position: int) -> tuple[int, int, int]:
        block = self._block
        if not self._start <= position <= self._end:
            if position < self._start:  # out of order: count again from the top
                self._line, self._end = -1, -1
            self._line += 1 + block.count(b"\n", self._end + 1, position)
            self._start = block.rfind(b"\n", 0, position) + 1
            found = block.find(b"\n", position)
            self._end = found if found >= 0 else len(block)
        return self._line, self._start, self._end


class _StartsLines:
    """Lines by their start offsets: for a batch where a line holds a newline itself."""

    def __init__(self, block: bytes, starts: Sequence[int]) -> None:
        self._size, self._starts = len(block), starts

    def locate(self, position: int) -> tuple[int, int, int]:
        starts = self._starts
        line = bisect.bisect_right(starts, position) - 1
        return line, starts[line], starts[line + 1] - 1 if line + 1 < len(starts) else self._size


def _flags() -> int:
    assert hyperscan is not None
    flags: int = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_MULTILINE
    return flags


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


def _split_supported(patterns: Sequence[_Pattern], flags: int) -> tuple[list[_Pattern], list[_Pattern], Any]:
    """Patterns Hyperscan compiles, the rest (left to RE2), and the database of the first.

    Whole set first: the common case, compiled once.
    """
    assert hyperscan is not None
    if not patterns:
        return [], [], None
    try:
        return list(patterns), [], _compile(patterns, flags)
    except hyperscan.error:
        pass
    accepted: list[_Pattern] = []
    refused: list[_Pattern] = []
    for pattern in patterns:
        try:
            _compile([pattern], flags)
        except hyperscan.error:
            refused.append(pattern)
        else:
            accepted.append(pattern)
    return accepted, refused, _compile(accepted, flags) if accepted else None


def _hyperscan_database(patterns: Sequence[_Pattern], cache: CompiledRulesCache | None) -> _HyperscanDatabase:
    """The database over ``patterns``, from the cache when it holds it, else compiled (and stored)."""
    assert hyperscan is not None
    key = cache_key(
        [p.text for p in patterns],
        flags=[_flags()],
        engine_version=f"python-hyperscan {hyperscan.__version__}",
    )
    if cache is not None:
        loaded = _load_database(cache, key, patterns)
        if loaded is not None:
            return loaded
    database = _HyperscanDatabase.compiled(patterns)
    if cache is not None:
        position = {id(p): i for i, p in enumerate(patterns)}
        layer = CompiledLayer(
            accepted=tuple(position[id(p)] for p in database.accepted),
            refused=tuple(position[id(p)] for p in database.refused),
            database=None if database._db is None else hyperscan.dumpb(database._db),
        )
        cache.store(key, encode_layers([layer]))
    return database


def _load_database(
    cache: CompiledRulesCache, key: str, patterns: Sequence[_Pattern]
) -> _HyperscanDatabase | None:
    """The cached database, or None (absent, corrupt, foreign, or refused by Hyperscan)."""
    assert hyperscan is not None
    payload = cache.load(key)
    layers = None if payload is None else decode_layers(payload, patterns=len(patterns))
    if layers is None or len(layers) != 1:
        return None
    (layer,) = layers
    if sorted(layer.accepted + layer.refused) != list(range(len(patterns))):
        return None
    try:
        database = (
            None if layer.database is None else hyperscan.loadb(layer.database, hyperscan.HS_MODE_BLOCK)
        )
    except (hyperscan.error, TypeError):
        return None
    accepted = [patterns[i] for i in layer.accepted]
    return _HyperscanDatabase(accepted, [patterns[i] for i in layer.refused], database, source="cache")


def _block_of(lines: Sequence[str]) -> tuple[bytes, _LineLocator]:
    """The lines as one UTF-8 block joined by newlines (encoded once, not line by line), and how
    to find the line of a byte in it. A line that holds a newline itself (callers split on them,
    but a caller may not) is located by a table of starts, so that it stays one line.
    """
    text = "\n".join(lines)
    if text.count("\n") == len(lines) - 1:
        block = _encode(text)
        return block, _NewlineLines(block)
    encoded = [_encode(line) for line in lines]
    block = b"\n".join(encoded)
    return block, _StartsLines(
        block, list(itertools.accumulate((len(e) + 1 for e in encoded[:-1]), initial=0))
    )


class Matcher:
    """All rules compiled once; ``scan_lines`` reports which rules hit which lines."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        engine: Engine = "auto",
        cache: CompiledRulesCache | Literal["user"] | None = "user",
    ) -> None:
        """``cache="user"`` keeps the compiled database under ``default_cache_dir()`` (read now, not
        at import), so every matcher of a process, not only the knowledge base's, compiles once per
        machine; None compiles every time."""
        if cache == "user":
            cache = CompiledRulesCache(default_cache_dir())
        self.rules = tuple(rules)
        patterns = [_Pattern(i, p) for i, rule in enumerate(self.rules) for p in rule.patterns]
        use_hyperscan = engine == "hyperscan" or (engine == "auto" and hyperscan_available())
        if engine == "hyperscan" and not hyperscan_available():
            raise EngineUnavailable("hyperscan is not installed on this platform")
        self._databases: list[_HyperscanDatabase] = []
        if use_hyperscan:
            self._databases = [_hyperscan_database(patterns, cache)]
            patterns = self._databases[-1].refused
        self._fallback = _Re2Set(patterns)
        self.engine: Literal["hyperscan", "re2"] = "hyperscan" if use_hyperscan else "re2"
        self.source: Literal["compiled", "cache"] = (
            self._databases[0].source if self._databases else "compiled"
        )
        """Whether the Hyperscan database was read from the compiled-rules cache or compiled here."""

    @property
    def fallback_patterns(self) -> int:
        """How many patterns run on RE2 although Hyperscan was chosen (0 is the happy case)."""
        return len(self._fallback._patterns) if self._databases else 0

    def scan_lines(self, lines: Sequence[str]) -> list[tuple[int, int]]:
        """Sorted unique (index in ``lines``, rule index) pairs; one scan for the whole batch."""
        if not lines:
            return []
        hits: set[tuple[int, int]] = set()
        if self._databases:
            block, located = _block_of(lines)
            for database in self._databases:
                database.scan(block, located, hits)
        if self._fallback._patterns:
            for index, line in enumerate(lines):
                hits.update((index, rule) for rule in self._fallback.rules_in(_encode(line)))
        return sorted(hits)

    def match_line(self, line: str) -> tuple[Rule, ...]:
        """Rules that hit one line, in knowledge-base order."""
        return tuple(self.rules[rule] for _, rule in self.scan_lines([line]))
