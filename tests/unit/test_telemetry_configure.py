"""Client spans (httpx, asyncpg) are made only when traces go somewhere.

Recorded and dropped, a span per GitHub request cost about a third of the request's CPU in the
pipeline bench's profile; the services' own spans stay, so log lines keep their trace ids.
Each case runs in its own interpreter: ``configure`` acts once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json
from opentelemetry import trace
import medic.telemetry as telemetry
telemetry.configure("probe", level="WARNING")
with telemetry.tracer().start_as_current_span("handle") as span:
    traced = span.get_span_context().is_valid
print(json.dumps({"instrumented": telemetry._instrumented, "own_spans": traced}))
"""


def configure_in_fresh_process(endpoint: str | None) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    out = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("endpoint", "instrumented"), [(None, False), ("http://127.0.0.1:9/", True)], ids=["no-exporter", "otlp"]
)
def test_libraries_are_instrumented_only_when_spans_are_exported(
    endpoint: str | None, instrumented: bool
) -> None:
    result = configure_in_fresh_process(endpoint)
    assert result == {"instrumented": instrumented, "own_spans": True}
