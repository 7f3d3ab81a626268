"""Analyses remembered by failure fingerprint, so the same failure never pays for a model twice.

Kept in a JetStream key-value bucket: shared by every analyzer replica, survives restarts,
needs nothing beside the bus.
"""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from medic.bus import open_key_value
from medic.events import AnalysisMethod
from medic.services.analyzer.model_path import RefinedAnalysis


class AnalysisCache:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> AnalysisCache:
        return cls(await open_key_value(js, bucket))

    async def get(self, fingerprint: str) -> RefinedAnalysis | None:
        with contextlib.suppress(KeyNotFoundError, ValidationError):
            entry = await self.kv.get(fingerprint)
            if entry.value:
                cached = RefinedAnalysis.model_validate_json(entry.value)
                return cached.model_copy(
                    update={"method": AnalysisMethod.CACHE, "prompt_tokens": 0, "completion_tokens": 0}
                )
        return None

    async def put(self, analysis: RefinedAnalysis) -> None:
        await self.kv.put(analysis.fingerprint, analysis.model_dump_json().encode())
