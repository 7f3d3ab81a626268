"""The monitor's word on the branch's last green run travels in FailureDetected version 1.

Added as optional fields, not a version 2: a reader of the previous release must still read
what this monitor writes (a version it does not know would be dead-lettered), and this
analyzer must read what the previous monitor wrote, searching GitHub as it always did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from medic.events import (
    EventDecodeError,
    FailureDetected,
    FailureDetectedPayload,
    RunHistory,
    decode_event,
    derive_failure_id,
    encode_event,
)
from medic.github.models import WorkflowRun
from medic.services.analyzer.green_baseline import named_green_run, search_scopes
from medic.services.monitor.detection import _branch_history
from medic.services.monitor.intake import RunToInspect

PUBLISHED = Path(__file__).resolve().parents[2] / "proto" / "published" / "FailureDetected.v1.json"

WRITTEN_BY_THE_PREVIOUS_MONITOR = {
    "event_id": "0193a1b2-0000-7000-8000-000000000001",
    "occurred_at": "2026-11-25T10:00:00Z",
    "failure_id": derive_failure_id("acme/web", 7, 1),
    "actor": "monitor",
    "event_type": "FailureDetected",
    "schema_version": 1,
    "payload": {
        "repository": "acme/web",
        "run_id": 7,
        "run_attempt": 1,
        "workflow_name": "CI",
        "branch": "main",
        "detected_at": "2026-11-25T10:00:00Z",
        "history": {
            "earlier_attempts_passed": 0,
            "earlier_attempts_failed": 1,
            "parent_commit_conclusion": None,
        },
    },
}


def event_with(history: dict[str, Any] | None) -> dict[str, Any]:
    raw = json.loads(json.dumps(WRITTEN_BY_THE_PREVIOUS_MONITOR))
    raw["payload"]["history"] = history
    return raw


def test_an_event_of_the_previous_monitor_decodes_and_is_searched_as_before() -> None:
    event = decode_event(json.dumps(WRITTEN_BY_THE_PREVIOUS_MONITOR))
    assert isinstance(event, FailureDetected)
    history = event.payload.history
    assert history is not None and history.earlier_attempts_failed == 1
    assert not history.branch_runs_read and history.last_green_run_id is None
    assert named_green_run(event.payload) is None
    assert search_scopes(event.payload) == ("main", None)  # the branch, then every branch


def test_what_this_monitor_writes_is_still_version_one_and_fits_the_published_contract() -> None:
    history = RunHistory(branch_runs_read=True, last_green_run_id=5, last_green_run_attempt=2)
    payload = FailureDetectedPayload(
        repository="acme/web",
        run_id=7,
        run_attempt=1,
        workflow_name="CI",
        branch="main",
        detected_at=datetime(2026, 11, 25, tzinfo=UTC),
        history=history,
    )
    event = FailureDetected(failure_id=derive_failure_id("acme/web", 7, 1), actor="monitor", payload=payload)
    raw = json.loads(encode_event(event))
    assert raw["schema_version"] == 1
    jsonschema.validate(raw, json.loads(PUBLISHED.read_text()))  # what the previous reader was built from
    decoded = decode_event(json.dumps(raw))
    assert isinstance(decoded, FailureDetected) and decoded.payload.history == history
    assert search_scopes(decoded.payload) == (None,)  # the monitor read the branch: every branch only
    named = named_green_run(decoded.payload)
    assert named is not None and (named.run_id, named.run_attempt) == (5, 2)


@pytest.mark.parametrize("bad", [0, -1, "five", [5], {"id": 5}, 1.5])
def test_a_malformed_green_run_is_a_decode_error(bad: Any) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(json.dumps(event_with({"branch_runs_read": True, "last_green_run_id": bad})))


def test_a_failure_never_names_itself_as_its_green_run() -> None:
    raw = event_with({"branch_runs_read": True, "last_green_run_id": 7, "last_green_run_attempt": 1})
    event = decode_event(json.dumps(raw))
    assert isinstance(event, FailureDetected) and named_green_run(event.payload) is None


def workflow_run(
    run_id: int, *, attempt: int = 1, conclusion: str = "success", sha: str = "a"
) -> WorkflowRun:
    at = datetime(2026, 11, 25, tzinfo=UTC)
    return WorkflowRun(
        id=run_id,
        run_attempt=attempt,
        name="CI",
        path=".github/workflows/ci.yml",
        event="push",
        status="completed",
        conclusion=conclusion,
        head_branch="main",
        head_sha=sha,
        head_commit_message="",
        actor_login="octocat",
        pull_request_numbers=(),
        html_url="",
        run_started_at=at,
        created_at=at,
        updated_at=at,
        repository="acme/web",
    )


def test_a_green_run_with_an_impossible_attempt_is_not_named_and_history_goes_on() -> None:
    failing = RunToInspect(
        repository="acme/web",
        run_id=10,
        run_attempt=1,
        workflow_name="CI",
        workflow_path=".github/workflows/ci.yml",
        branch="main",
        head_sha="b",
    )
    page = (workflow_run(9, attempt=0), workflow_run(8), workflow_run(3, conclusion="failure", sha="b"))
    same_commit, parent, green = _branch_history(page, failing)
    assert same_commit == ["failure"] and parent == "success"
    assert green is not None and green.id == 8  # run 9's attempt 0 is not one GitHub could have
