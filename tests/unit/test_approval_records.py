"""An approver may fill in a missing action from the typed set, never swap the one asked about."""

from __future__ import annotations

from datetime import timedelta

import pytest

from medic.events import ActionKind, ProposedAction, utc_now
from medic.services.approval.records import ApprovalConflict, ApprovalRecord, ApprovalStatus, DecisionRequest


def record(kind: ActionKind, cache_key: str | None = None) -> ApprovalRecord:
    now = utc_now()
    return ApprovalRecord(
        approval_id="a",
        failure_id="f",
        repository="acme/web",
        run_id=1,
        action=ProposedAction(kind=kind, cache_key=cache_key),
        requested_at=now,
        expires_at=now + timedelta(hours=1),
    )


def test_an_unexplained_failure_gets_the_action_its_approver_chose() -> None:
    decided = record(ActionKind.NONE).decide(
        ApprovalStatus.GRANTED, by="alice", at=utc_now(), chosen_action=ActionKind.RERUN_FAILED_JOBS
    )
    assert decided.action.kind is ActionKind.RERUN_FAILED_JOBS


def test_an_approver_cannot_swap_the_action_the_gate_asked_about() -> None:
    with pytest.raises(ApprovalConflict, match="cannot be changed"):
        record(ActionKind.RERUN_FAILED_JOBS).decide(
            ApprovalStatus.GRANTED, by="alice", at=utc_now(), chosen_action=ActionKind.OPEN_FIX_PR
        )


def test_clear_cache_without_a_key_cannot_be_chosen() -> None:
    with pytest.raises(ApprovalConflict, match="cache key"):
        record(ActionKind.NONE).decide(
            ApprovalStatus.GRANTED, by="alice", at=utc_now(), chosen_action=ActionKind.CLEAR_CACHE
        )


def test_a_rejection_ignores_any_chosen_action() -> None:
    decided = record(ActionKind.NONE).decide(
        ApprovalStatus.REJECTED, by="bob", at=utc_now(), chosen_action=ActionKind.RERUN_WORKFLOW
    )
    assert decided.action.kind is ActionKind.NONE


@pytest.mark.parametrize("action", ["rm -rf /", "shell", "RERUN_FAILED_JOBS; curl x", 3])
def test_only_typed_actions_are_accepted_from_a_person(action: object) -> None:
    with pytest.raises(ValueError, match="action"):
        DecisionRequest.model_validate({"approver": "alice", "action": action})
