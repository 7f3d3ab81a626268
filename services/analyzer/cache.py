"""Model verdicts remembered per repository and failure fingerprint: one failure, one model call.

Kept in a JetStream key-value bucket: shared by every analyzer replica, survives restarts,
needs nothing beside the bus. An entry is scoped to its repository (the key starts with a
hash of the repository's name), so one repository's verdict is never served to another;
and a hit keeps the current failure's own excerpt and summary, so no entry carries text
from another run into this one. A failure without a fingerprint (no line explains it) is
never cached.
"""

from __future__ import annotations

import hashlib

from nats.js import JetStreamContext

from medic.events import AnalysisMethod
from medic.records import RecordStore
from medic.services.analyzer.analysis import LogAnalysis


def cache_key(repository: str, fingerprint: str) -> str | None:
    """``<repository hash>.<fingerprint>``; None when there is no fingerprint to key on."""
    if not fingerprint:
        return None
    scope = hashlib.sha256(repository.strip().lower().encode("utf-8", "replace")).hexdigest()[:24]
    return f"{scope}.{fingerprint}"


class AnalysisCache:
    def __init__(self, store: RecordStore[LogAnalysis]) -> None:
        self.store = store

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> AnalysisCache:
        return cls(await RecordStore.open(js, bucket, LogAnalysis))

    async def get(self, repository: str, current: LogAnalysis) -> LogAnalysis | None:
        """The cached verdict for this repository's failure, carrying the current failure's text."""
        key = cache_key(repository, current.fingerprint)
        if key is None:
            return None
        found = await self.store.get(key)  # an entry that does not read as a verdict is a miss
        if found is None:
            return None
        return found.record.model_copy(
            update={
                "method": AnalysisMethod.CACHE,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "excerpt": tuple(current.excerpt),
                "summary": current.summary,
                "matched_rules": tuple(current.matched_rules),
            }
        )

    async def put(self, repository: str, analysis: LogAnalysis) -> None:
        key = cache_key(repository, analysis.fingerprint)
        if key is None:
            return
        stored = analysis.model_copy(update={"excerpt": (), "summary": ""})
        await self.store.put(key, stored)
