"""Model verdicts remembered per repository and failure fingerprint: one failure, one model call.

Kept in a JetStream key-value bucket: shared by every analyzer replica, survives restarts,
needs nothing beside the bus. An entry is scoped to its repository (the key starts with a
hash of the repository's name), so one repository's verdict is never served to another;
and a hit keeps the current failure's own excerpt and summary, so no entry carries text
from another run into this one. A failure without a fingerprint (no line explains it) is
never cached.
"""

from __future__ import annotations

import contextlib
import hashlib

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from medic.bus import open_key_value
from medic.events import AnalysisMethod
from medic.services.analyzer.model_path import LogAnalysisLike, RefinedAnalysis


def cache_key(repository: str, fingerprint: str) -> str | None:
    """``<repository hash>.<fingerprint>``; None when there is no fingerprint to key on."""
    if not fingerprint:
        return None
    scope = hashlib.sha256(repository.strip().lower().encode("utf-8", "replace")).hexdigest()[:24]
    return f"{scope}.{fingerprint}"


class AnalysisCache:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> AnalysisCache:
        return cls(await open_key_value(js, bucket))

    async def get(self, repository: str, current: LogAnalysisLike) -> RefinedAnalysis | None:
        """The cached verdict for this repository's failure, carrying the current failure's text."""
        key = cache_key(repository, current.fingerprint)
        if key is None:
            return None
        with contextlib.suppress(KeyNotFoundError, ValidationError):
            entry = await self.kv.get(key)
            if entry.value:
                cached = RefinedAnalysis.model_validate_json(entry.value)
                return cached.model_copy(
                    update={
                        "method": AnalysisMethod.CACHE,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "excerpt": tuple(current.excerpt),
                        "summary": current.summary,
                        "matched_rules": tuple(current.matched_rules),
                    }
                )
        return None

    async def put(self, repository: str, analysis: RefinedAnalysis) -> None:
        key = cache_key(repository, analysis.fingerprint)
        if key is None:
            return
        stored = analysis.model_copy(update={"excerpt": (), "summary": ""})
        await self.kv.put(key, stored.model_dump_json().encode())
