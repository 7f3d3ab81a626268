"""Prometheus instruments of the projector (the shared bus counters live in medic.telemetry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROJECTION_LAG = Gauge(
    "medic_projection_lag_events", "Events in the stream the projector has not been delivered yet"
)
PROJECTION_BATCH = Histogram(
    "medic_projection_batch_size",
    "Events applied in one projector transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
)
PROJECTED_EVENTS = Counter("medic_projected_events_total", "Events seen by the projector", ["outcome"])
"""``outcome`` is ``applied`` or ``duplicate`` (already tracked: redelivery or replay)."""
