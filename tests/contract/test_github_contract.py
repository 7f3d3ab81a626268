"""The sandbox and the client speak GitHub's documented API, checked against GitHub's own files."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY

from medic.github.client import GitHubClient
from medic.sandbox.github import SandboxGitHub, create_sandbox_github
from medic.sandbox.github_server import serve_on_free_port
from medic.sandbox.github_webhooks import signature_256

OpenApi = Any  # the fixture type lives in conftest.py, which tests cannot import
REPO = "octo-org/contract"
SECRET = "contract-secret"


def template_of(path: str, openapi: Any) -> str | None:
    """The OpenAPI path template matching a FastAPI path (parameter names may differ)."""
    shape = re.sub(r"\{[^}]+\}", "{}", path)
    for template in openapi.document["paths"]:
        if re.sub(r"\{[^}]+\}", "{}", template) == shape:
            return str(template)
    return None


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[SandboxGitHub, str, list[bytes]]]:
    bodies: list[bytes] = []
    hooks = FastAPI()

    @hooks.post("/hook")
    async def receive(request: Request) -> Response:
        bodies.append(await request.body())
        return Response(status_code=204)

    async with serve_on_free_port(hooks) as hook_url:
        sandbox = create_sandbox_github(
            webhook_url=f"{hook_url}/hook", webhook_secret=SECRET, rerun_delay_seconds=0.1
        )
        async with serve_on_free_port(sandbox.app) as url:
            yield sandbox, url, bodies


def test_signature_matches_the_documented_vector() -> None:
    assert (
        signature_256("It's a Secret to Everybody", b"Hello, World!")
        == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_every_sandbox_github_route_exists_in_the_openapi_subset(openapi: Any) -> None:
    sandbox = create_sandbox_github(webhook_url=None, webhook_secret="s")
    routes = [r for r in sandbox.app.routes if isinstance(r, APIRoute) and not r.path.startswith("/_sandbox")]
    assert len(routes) >= 8
    for route in routes:
        template = template_of(route.path, openapi)
        assert template is not None, route.path
        for method in route.methods:
            assert openapi.operation(template, method) is not None, f"{method} {route.path}"


async def test_every_route_the_client_calls_exists_in_the_openapi_subset(
    served: tuple[SandboxGitHub, str, list[bytes]], openapi: Any
) -> None:
    sandbox, url, _ = served
    run = sandbox.add_failed_run(REPO, "flaky_test")
    sandbox.add_cache(REPO, "Linux-node-1")
    async with GitHubClient(base_url=url, token="t") as client:
        await client.get_run(REPO, run.id)
        page = await client.list_runs(REPO)
        await client.list_runs(REPO, etag=page.etag)
        [job] = await client.list_failed_jobs(REPO, run.id)
        await client.fetch_job_log(REPO, job.id)
        await client.rerun_failed_jobs(REPO, run.id)
        await sandbox.drain()
        await client.rerun_workflow(REPO, run.id)
        await client.delete_caches(REPO, "Linux-node-1")
    await sandbox.drain()

    called = {
        sample.labels["method_route"]
        for metric in REGISTRY.collect()
        if metric.name == "medic_github_requests"
        for sample in metric.samples
        if sample.labels.get("method_route", "").split(" ")[-1].startswith("/")
    }
    assert len(called) >= 7
    for label in called - NOT_IN_SUBSET:
        method, path = label.split(" ", 1)
        assert path in openapi.document["paths"], label
        assert openapi.operation(path, method) is not None, label


NOT_IN_SUBSET = {"GET /orgs/{org}/repos"}
"""Routes GitHub documents but the copied provider contracts do not carry yet (listing an
organisation's repositories for polling; the App installation routes arrived in the extended
subset). Other tests in the session may have called them; they are checked by the test below so
that this list empties itself when the subset grows."""


def test_routes_outside_the_subset_are_still_missing_from_it(openapi: Any) -> None:
    for label in NOT_IN_SUBSET:
        path = label.split(" ", 1)[1]
        assert path not in openapi.document["paths"], f"{label} is in the subset now: test it there"


async def test_sandbox_json_bodies_validate_against_the_response_schemas(
    served: tuple[SandboxGitHub, str, list[bytes]], openapi: Any
) -> None:
    sandbox, url, _ = served
    run = sandbox.add_failed_run(REPO, "job_timeout", branch="feature/x", pull_request_numbers=[12])
    job_id = run.latest.jobs[0].id
    sandbox.add_cache(REPO, "Linux-pip-9")
    base = f"/repos/{REPO}/actions"
    t = "/repos/{owner}/{repo}/actions"
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("GET", "/rate_limit", "/rate_limit", {}),
        ("GET", f"{base}/runs", f"{t}/runs", {"status": "failure"}),
        ("GET", f"{base}/runs/{run.id}", t + "/runs/{run_id}", {}),
        ("GET", f"{base}/runs/{run.id}/jobs", t + "/runs/{run_id}/jobs", {"filter": "all"}),
        ("GET", f"{base}/jobs/{job_id}", t + "/jobs/{job_id}", {}),
        ("GET", f"{base}/jobs/{job_id}/logs", t + "/jobs/{job_id}/logs", {}),
        ("DELETE", f"{base}/caches", f"{t}/caches", {"key": "Linux-pip-9"}),
        ("POST", f"{base}/runs/{run.id}/rerun-failed-jobs", t + "/runs/{run_id}/rerun-failed-jobs", {}),
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer t"}) as http:
        for method, path, template, params in calls:
            response = await http.request(method, path, params=params)
            operation = openapi.operation(template, method)
            assert operation is not None and str(response.status_code) in operation["responses"], (
                path,
                response,
            )
            validator = openapi.response_validator(template, method, response.status_code)
            if validator is None:
                continue
            errors = [
                f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(response.json())
            ]
            assert errors == [], (path, errors[:5])
        await sandbox.drain()
        rerun = (await http.get(f"{base}/runs/{run.id}")).json()
        missing = await http.get(f"{base}/runs/1")
    validator = openapi.response_validator("/repos/{owner}/{repo}/actions/runs/{run_id}", "GET", 200)
    assert validator is not None and list(validator.iter_errors(rerun)) == []
    assert rerun["previous_attempt_url"] and rerun["run_attempt"] == 2
    error_schema = openapi.converted["components"]["schemas"]["basic-error"]
    assert (
        missing.status_code == 404
        and list(jsonschema.Draft7Validator(error_schema).iter_errors(missing.json())) == []
    )


async def test_webhook_bodies_validate_against_the_octokit_and_openapi_schemas(
    served: tuple[SandboxGitHub, str, list[bytes]], openapi: Any, webhook_validator: Any
) -> None:
    sandbox, url, bodies = served
    bodies.clear()
    async with httpx.AsyncClient(base_url=url) as http:
        created = (await http.post("/_sandbox/simulate", json={"failures": 12})).json()["failures"]
        await sandbox.drain()
        first = created[0]
        await http.post(f"/repos/{first['repository']}/actions/runs/{first['run_id']}/rerun")
        await sandbox.drain()

    payloads = [json.loads(body) for body in bodies]
    assert len(payloads) == 15
    completed = webhook_validator("workflow_run/completed.schema.json")
    openapi_schemas = {
        action: openapi.converted["components"]["schemas"][f"webhook-workflow-run-{action.replace('_', '-')}"]
        for action in ("completed", "requested", "in_progress")
    }
    for payload in payloads:
        if payload["action"] == "completed":
            errors = [e.message[:200] for e in completed.iter_errors(payload)]
            assert errors == [], errors[:5]
        schema = {"components": openapi.converted["components"], **openapi_schemas[payload["action"]]}
        errors = [e.message[:200] for e in jsonschema.Draft7Validator(schema).iter_errors(payload)]
        assert errors == [], (payload["action"], errors[:5])


def test_signatures_of_delivered_bodies_use_the_raw_bytes() -> None:
    body = b'{"action":"completed"}'
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature_256(SECRET, body) == expected
