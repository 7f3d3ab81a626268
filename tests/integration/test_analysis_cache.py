"""Issue 9: the analysis cache never crosses repositories, never carries another run's text,
and a failure whose only error line is a generic exit line has no fingerprint to share.

The cache lives in a real JetStream key-value bucket (real nats-server)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from medic.bus import Bus
from medic.events import ActionKind, AnalysisMethod, Category, ExcerptLine, ProposedAction
from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.cache import AnalysisCache, cache_key
from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base


@pytest.fixture
async def cache(bus: Bus) -> AsyncIterator[AnalysisCache]:
    bucket = f"{bus.topology.stream}_analysis_cache_test"
    yield await AnalysisCache.open(bus.js, bucket)
    with contextlib.suppress(Exception):
        await bus.js.delete_key_value(bucket)


def verdict(fingerprint: str, text: str) -> LogAnalysis:
    return LogAnalysis(
        category=Category.DEPENDENCY,
        risk=5,
        confidence=0.9,
        retryable=False,
        proposed_action=ProposedAction(kind=ActionKind.NONE),
        matched_rules=(),
        summary=f"summary with {text}",
        excerpt=(ExcerptLine(line=7, text=text),),
        fingerprint=fingerprint,
        method=AnalysisMethod.MODEL,
    )


async def test_an_entry_is_never_served_to_another_repository(cache: AnalysisCache) -> None:
    await cache.put("acme/one", verdict("f" * 64, "acme-one private text"))
    assert await cache.get("other/two", verdict("f" * 64, "two's own line")) is None
    hit = await cache.get("Acme/One", verdict("f" * 64, "this run's own line"))
    assert hit is not None and hit.method is AnalysisMethod.CACHE
    assert hit.category is Category.DEPENDENCY
    assert [line.text for line in hit.excerpt] == ["this run's own line"]
    assert "acme-one private text" not in hit.model_dump_json()


async def test_no_fingerprint_means_nothing_is_cached(cache: AnalysisCache) -> None:
    await cache.put("acme/one", verdict("", "text"))
    assert (await cache.store.kv.status()).values == 0
    assert cache_key("acme/one", "") is None


def test_a_generic_exit_line_gives_no_fingerprint() -> None:
    kb = default_knowledge_base()
    generic = analyze_log(
        "##[group]Run ./opaque.sh\nworking\nError: Process completed with exit code 3.\n"
        "##[error]Process completed with exit code 3.",
        knowledge_base=kb,
    )
    assert generic.category is Category.UNKNOWN and generic.fingerprint == ""
    empty = analyze_log("", knowledge_base=kb)
    assert empty.fingerprint == ""


def test_unknown_failures_with_different_causes_get_different_fingerprints() -> None:
    kb = default_knowledge_base()
    one, two = (
        analyze_log(
            f"##[group]Run ./opaque.sh\nError: {cause}\n##[error]Process completed with exit code 1.",
            knowledge_base=kb,
        )
        for cause in ("widget catalogue is inconsistent", "the moon is in the wrong phase")
    )
    assert one.category is two.category is Category.UNKNOWN
    assert one.fingerprint and two.fingerprint and one.fingerprint != two.fingerprint
