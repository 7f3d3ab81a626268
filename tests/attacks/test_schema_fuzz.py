"""Schemathesis against the OpenAPI document of every HTTP surface of a running ``medic run``: no 5xx.

Each operation gets generated requests (valid and invalid by its schema), first as a
stranger (no token), then as a person with every scope, after a few simulated failures so
the reads have rows to return. Any answer >= 500 is a failure, listed with the request.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.attacks.system import MEDIC, RunningSystem, medic_run
from tests.attacks.tally import TALLY

EXAMPLES_PER_OPERATION = 20
OPEN_TO_STRANGERS = ("/healthz", "/readyz", "/webhooks/")
"""A stranger's 2xx anywhere else is a read or an action that should have needed a token."""


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    with medic_run(nats_url, database_url, Path(tmp_path_factory.mktemp("fuzz"))) as running:
        subprocess.run(  # noqa: S603 - our own command line
            [MEDIC, "simulate", "--failures", "6", "--url", f"{running.url}/sandbox/github"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield running


def fuzz(system: RunningSystem, headers: dict[str, str]) -> tuple[int, list[str], list[str]]:
    """(requests sent, 5xx answers, 2xx answers to a stranger on a protected route)."""
    schema = schemathesis.openapi.from_url(f"{system.url}/openapi.json", headers=headers)
    tried = 0
    server_errors: list[str] = []
    wrongly_accepted: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def one(case: Any) -> None:
            nonlocal tried
            tried += 1
            try:
                response = case.call(headers=headers, timeout=15)
            except httpx.HTTPError:  # the client refused to send it: not the server's answer
                return
            said = f"{case.method} {case.formatted_path} -> {response.status_code}"
            readiness = case.formatted_path == "/readyz" and response.status_code == 503
            if response.status_code >= 500 and not readiness:  # /readyz says 503 by design when not ready
                server_errors.append(said)
            stranger = not headers
            if stranger and response.is_success and not case.formatted_path.startswith(OPEN_TO_STRANGERS):
                wrongly_accepted.append(said)

        one()
    return tried, server_errors, wrongly_accepted


def test_no_operation_answers_5xx_to_a_stranger_or_a_person(system: RunningSystem) -> None:
    stranger_tried, stranger_errors, accepted = fuzz(system, {})
    person_tried, person_errors, _ = fuzz(system, system.person)
    TALLY.add(
        "schemathesis (stranger)",
        tried=stranger_tried,
        server_errors=len(stranger_errors),
        wrongly_accepted=len(accepted),
    )
    TALLY.add("schemathesis (person)", tried=person_tried, server_errors=len(person_errors))
    assert stranger_tried > 100 and person_tried > 100
    assert stranger_errors == [] and person_errors == [], (stranger_errors + person_errors)[:20]
    assert accepted == [], accepted[:20]
