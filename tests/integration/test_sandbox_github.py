"""The sandbox GitHub as a server: simulate, signed webhooks, fault modes, filters, auth."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from medic.sandbox.github import SCENARIOS, SandboxGitHub, create_sandbox_github
from medic.sandbox.serving import serve_on_free_port
from medic.sandbox.simulate import simulate

SECRET = "sandbox-webhook-secret"


@dataclass
class Receiver:
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/github")
        async def receive(request: Request) -> Response:
            self.deliveries.append((dict(request.headers), await request.body()))
            return Response(status_code=202)

        return app

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.deliveries]


@dataclass
class Served:
    sandbox: SandboxGitHub
    url: str
    receiver: Receiver


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    receiver = Receiver()
    async with serve_on_free_port(receiver.app()) as hook_base:
        sandbox = create_sandbox_github(
            webhook_url=f"{hook_base}/webhooks/github", webhook_secret=SECRET, rerun_delay_seconds=0.15
        )
        async with serve_on_free_port(sandbox.app) as url:
            yield Served(sandbox, url, receiver)
            await sandbox.drain()


async def test_simulate_creates_a_mix_and_delivers_signed_webhooks(served: Served) -> None:
    answer = await simulate(served.url, 20, repositories=["acme/api", "acme/web"])
    await served.sandbox.drain()

    kinds = Counter(item["scenario"] for item in answer["failures"])
    assert len(answer["failures"]) == 20 and len(kinds) == len(SCENARIOS)
    assert {item["repository"] for item in answer["failures"]} == {"acme/api", "acme/web"}
    assert len(served.receiver.deliveries) == 20
    for headers, body in served.receiver.deliveries:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-hub-signature-256"], expected)
        assert headers["x-github-event"] == "workflow_run"
        assert headers["user-agent"].startswith("GitHub-Hookshot/")
        assert headers["content-type"] == "application/json" and len(headers["x-github-delivery"]) == 36
    runs = {p["workflow_run"]["id"]: p for p in served.receiver.payloads()}
    assert set(runs) == {item["run_id"] for item in answer["failures"]}
    assert {p["action"] for p in runs.values()} == {"completed"}
    assert {p["workflow_run"]["conclusion"] for p in runs.values()} == {"failure"}


async def test_duplicate_and_shuffle_modes(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        await http.post("/_sandbox/modes", json={"webhook_duplicates": True, "webhook_shuffle": True})
        await http.post("/_sandbox/simulate", json={"failures": 6})
    await served.sandbox.drain()

    guids = Counter(headers["x-github-delivery"] for headers, _ in served.receiver.deliveries)
    assert len(guids) == 6 and set(guids.values()) == {2}


async def test_rerun_announces_requested_in_progress_completed(served: Served) -> None:
    run = served.sandbox.add_failed_run("acme/api", "job_timeout")
    async with httpx.AsyncClient(base_url=served.url, headers={"Authorization": "Bearer x"}) as http:
        response = await http.post(f"/repos/acme/api/actions/runs/{run.id}/rerun-failed-jobs")
        again = await http.post(f"/repos/acme/api/actions/runs/{run.id}/rerun-failed-jobs")
    await served.sandbox.drain()

    assert (response.status_code, response.json()) == (201, {})
    assert again.status_code == 403
    events = [(p["action"], p["workflow_run"]["run_attempt"]) for p in served.receiver.payloads()]
    assert events == [("requested", 2), ("in_progress", 2), ("completed", 2)]
    assert served.receiver.payloads()[-1]["workflow_run"]["conclusion"] == "success"


async def test_list_runs_filters_and_paginates(served: Served) -> None:
    first = served.sandbox.add_failed_run("acme/web", "lint_errors", branch="main")
    for _ in range(4):
        served.sandbox.add_failed_run("acme/web", "lint_errors", branch="feature/x")
    async with httpx.AsyncClient(base_url=served.url) as http:
        by_branch = (await http.get("/repos/acme/web/actions/runs", params={"branch": "main"})).json()
        by_sha = (await http.get("/repos/acme/web/actions/runs", params={"head_sha": first.head_sha})).json()
        success = (await http.get("/repos/acme/web/actions/runs", params={"status": "success"})).json()
        page = await http.get("/repos/acme/web/actions/runs", params={"per_page": 2, "page": 2})

    assert [r["id"] for r in by_branch["workflow_runs"]] == [first.id]
    assert [r["id"] for r in by_sha["workflow_runs"]] == [first.id]
    assert success["total_count"] == 0
    assert page.json()["total_count"] == 5 and len(page.json()["workflow_runs"]) == 2
    assert 'rel="next"' in page.headers["link"] and 'rel="prev"' in page.headers["link"]


async def test_auth_and_rate_limit_headers(served: Served) -> None:
    served.sandbox.add_failed_run("acme/api", "lint_errors")
    async with httpx.AsyncClient(base_url=served.url) as http:
        anonymous = await http.get("/repos/acme/api/actions/runs")
        token = await http.get("/repos/acme/api/actions/runs", headers={"Authorization": "token abc"})
        bad = await http.get("/repos/acme/api/actions/runs", headers={"Authorization": "Basic abc"})
        limits = await http.get("/rate_limit", headers={"Authorization": "token abc"})
        missing = await http.get("/repos/acme/nope/actions/runs")

    assert anonymous.status_code == 200 and anonymous.headers["x-ratelimit-limit"] == "600"
    assert token.headers["x-ratelimit-limit"] == "5000" and token.headers["x-ratelimit-used"] == "1"
    assert token.headers["x-ratelimit-resource"] == "core" and int(token.headers["x-ratelimit-reset"]) > 0
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert limits.json()["resources"]["core"]["used"] == 1  # /rate_limit itself is free
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    assert "documentation_url" in missing.json()


async def test_exhausted_mode_answers_403_with_reset(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        await http.post("/_sandbox/modes", json={"rate_limit_exhausted_for_seconds": 30})
        limited = await http.get("/repos/acme/api/actions/runs")
        await http.post("/_sandbox/modes", json={"rate_limit_exhausted_for_seconds": 0})

    assert limited.status_code == 403 and limited.headers["x-ratelimit-remaining"] == "0"
    assert "rate limit" in limited.json()["message"]


async def test_log_urls_are_signed_and_expire(served: Served) -> None:
    run = served.sandbox.add_failed_run("acme/api", "out_of_memory")
    job_id = run.latest.jobs[0].id
    async with httpx.AsyncClient(base_url=served.url) as http:
        redirect = await http.get(f"/repos/acme/api/actions/jobs/{job_id}/logs")
        location = redirect.headers["location"]
        good = await http.get(location)
        forged = await http.get(location.replace("signature=", "signature=0"))

    assert redirect.status_code == 302 and location.startswith(f"{served.url}/_sandbox/logs/")
    assert good.status_code == 200 and good.headers["content-type"].startswith("text/plain")
    assert "exit code 137" in good.text
    assert forged.status_code == 403


async def test_undeliverable_webhooks_are_recorded_not_fatal() -> None:
    sandbox = create_sandbox_github(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s")
    async with serve_on_free_port(sandbox.app) as url:
        answer = await simulate(url, 2)
        await asyncio.wait_for(sandbox.drain(), timeout=10)
        async with httpx.AsyncClient() as http:
            state = (await http.get(f"{url}/_sandbox/state")).json()

    assert len(answer["failures"]) == 2
    assert [d["status"] for d in state["webhook_deliveries"]] == [None, None]
    assert all(d["error"] for d in state["webhook_deliveries"])
    assert len(state["runs"]) == 2
