"""End to end on the composed system with the sandbox Slack: a risky failure's whole story in
its thread, a refused click, an approved fix that the executor runs, and a failure no action
can fix told with its excerpt."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from medic.bus import Topology
from medic.sandbox.simulate import failure_id_of
from medic.slack.actions import APPROVE_ACTION
from tests.pipeline import Pipeline, running_pipeline

pytestmark = pytest.mark.e2e
ALICE, MALLORY = "U0ALICE001", "U0MALLORY3"
RISKY_REPO = "octo-org/billing-api"
OTHER_REPO = "octo-org/web-frontend"


async def history(pipeline: Pipeline) -> list[dict[str, Any]]:
    answer = await pipeline.http.get(
        f"{pipeline.slack_url}/_sandbox/history", params={"channel": "#ci-medic"}
    )
    return list(answer.json())


async def thread_of(pipeline: Pipeline, repository: str) -> dict[str, Any] | None:
    for parent in await history(pipeline):
        if parent["blocks"][0]["text"]["text"].startswith(repository):
            return parent
    return None


async def until(pipeline: Pipeline, repository: str, state: str, *, within: float = 60) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        parent = await thread_of(pipeline, repository)
        if parent is not None and state in parent["text"]:
            return parent
        await asyncio.sleep(0.2)
    raise AssertionError(f"{repository} never reached {state!r}: {await thread_of(pipeline, repository)}")


def card_of(parent: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in parent["replies"] if any(b["type"] == "actions" for b in r["blocks"]))


def stages(parent: dict[str, Any]) -> list[str]:
    return [r["blocks"][0]["text"]["text"].split("*")[1] for r in parent["replies"]]


async def test_a_risky_failure_is_approved_in_slack_and_its_thread_ends_fixed(
    nats_url: str, database_url: str, topology: Topology, db_schema: str
) -> None:
    async with running_pipeline(
        nats_url=nats_url,
        database_url=database_url,
        topology=topology,
        db_schema=db_schema,
        slack=True,
        protected_repositories=(RISKY_REPO,),
        approvers=(ALICE,),
    ) as pipeline:
        simulate = f"{pipeline.sandbox_url}/_sandbox/simulate"
        risky = {"failures": 1, "repositories": [RISKY_REPO], "scenarios": ["job_timeout"]}
        compile_error = {"failures": 1, "repositories": [OTHER_REPO], "scenarios": ["go_build_error"]}
        created = (await pipeline.http.post(simulate, json=risky)).json()["failures"]
        failure_id = failure_id_of(created[0])
        assert (await pipeline.http.post(simulate, json=compile_error)).status_code == 200

        waiting = await until(pipeline, RISKY_REPO, "waiting for approval")
        await asyncio.sleep(0.5)
        waiting = await thread_of(pipeline, RISKY_REPO) or waiting
        card = card_of(waiting)
        click = f"{pipeline.slack_url}/_sandbox/click"
        where = {"channel": card["channel"], "ts": card["ts"], "action_id": APPROVE_ACTION}
        refused = await pipeline.http.post(click, json={**where, "user": MALLORY})
        assert refused.json()["status"] == 200
        ephemeral = (await pipeline.http.get(f"{pipeline.slack_url}/_sandbox/ephemeral")).json()
        assert [e["user"] for e in ephemeral] == [MALLORY]
        approved = await pipeline.http.post(click, json={**where, "user": ALICE})
        assert approved.json()["status"] == 200

        fixed = await until(pipeline, RISKY_REPO, "fixed")
        assert stages(fixed) == [
            "Detected", "Analysed", "Gate", "Approval needed", "Approved", "Remediating", "Fixed",
        ]  # fmt: skip
        assert f"Approved by <@{ALICE}>" in str(card_of_history(fixed)["blocks"])
        trail = [row["action"] for row in await pipeline.audit(failure_id)]
        assert "ApprovalAttemptRefused" in trail
        assert trail.index("ApprovalAttemptRefused") < trail.index("ApprovalGranted")
        assert trail.count("ApprovalGranted") == 1

        told = await until(pipeline, OTHER_REPO, "no automatic fix")
        last = told["replies"][-1]
        assert "No automatic fix" in last["blocks"][0]["text"]["text"]
        assert "```" in str(last["blocks"]) and len(await history(pipeline)) == 2


def card_of_history(parent: dict[str, Any]) -> dict[str, Any]:
    """The approval card after its buttons were replaced (it no longer has an actions block)."""
    return next(r for r in parent["replies"] if r["blocks"][0]["text"]["text"].startswith(":raised_hand:"))
