"""A knowledge base: the merged rules and their compiled matcher, built once.

Compiling the Hyperscan database costs milliseconds to seconds; analysing a log
costs microseconds per line. So the base is built at start-up (or on a rule file
change) and shared by every analysis, read-only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from medic.services.analyzer.compiled_rules import CompiledRulesCache, ParsedRulesCache, default_cache_dir
from medic.services.analyzer.matcher import Engine, Matcher
from medic.services.analyzer.rules import Rule, default_rules, load_knowledge_rules

if TYPE_CHECKING:  # the settings' import (pydantic-settings) is not needed to analyse one log
    from medic.config import Settings


@dataclass(frozen=True)
class KnowledgeBase:
    rules: tuple[Rule, ...]
    matcher: Matcher = field(repr=False)

    @classmethod
    def from_rules(
        cls,
        rules: Sequence[Rule],
        *,
        engine: Engine = "auto",
        cache: CompiledRulesCache | Literal["user"] | None = "user",
    ) -> KnowledgeBase:
        rules = tuple(rules)
        return cls(rules=rules, matcher=Matcher(rules, engine=engine, cache=cache))

    @classmethod
    def load(
        cls,
        *,
        organisation: Path | None = None,
        repository: Path | None = None,
        engine: Engine = "auto",
        cache: CompiledRulesCache | Literal["user"] | None = "user",
    ) -> KnowledgeBase:
        """Default rules overridden by the organisation's file, then the repository's; with a
        cache, each file's parsed rules are kept beside the compiled database."""
        compiled = CompiledRulesCache(default_cache_dir()) if cache == "user" else cache
        parsed = None if compiled is None else ParsedRulesCache.beside(compiled)
        rules = load_knowledge_rules(organisation=organisation, repository=repository, cache=parsed)
        return cls.from_rules(rules, engine=engine, cache=compiled)

    @property
    def engine(self) -> str:
        return self.matcher.engine


@functools.cache
def default_knowledge_base(engine: Engine = "auto") -> KnowledgeBase:
    """The shipped rules, parsed and compiled once per process and engine, or once per machine
    with the caches (the rule file's parsed form and the compiled database side by side)."""
    compiled = CompiledRulesCache(default_cache_dir())
    return KnowledgeBase.from_rules(
        default_rules(cache=ParsedRulesCache.beside(compiled)), engine=engine, cache=compiled
    )


def knowledge_for_settings(settings: Settings) -> Callable[[str], KnowledgeBase]:
    """Knowledge bases by repository: shipped rules, then the organisation's, then the repository's.

    Rule files are read and compiled at start-up, so a bad file stops the analyzer with the
    rule's name instead of failing on the first log; each distinct combination compiles once,
    and once per machine while its patterns stay the same (the compiled-rules cache).
    """
    engine = settings.analyzer_engine
    organisation = settings.rules_file
    cache = CompiledRulesCache(default_cache_dir())
    shared = (
        KnowledgeBase.load(organisation=organisation, engine=engine, cache=cache)
        if organisation
        else default_knowledge_base(engine)
    )
    by_repository = {
        repository.lower(): KnowledgeBase.load(
            organisation=organisation, repository=config.rules_file, engine=engine, cache=cache
        )
        for repository, config in settings.repository_configs.items()
        if config.rules_file is not None
    }

    def knowledge_for(repository: str) -> KnowledgeBase:
        return by_repository.get(repository.lower(), shared)

    return knowledge_for
