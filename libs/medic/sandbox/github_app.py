"""HTTP surface of the sandbox GitHub: the REST paths ci-medic calls, plus ``/_sandbox`` controls.

Served alone or mounted under a prefix; every URL handed out (redirects, ``Link``, ``url``
fields) is built from the incoming request and its ``root_path``, so it works in both setups.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medic.sandbox import github_payloads as payloads
from medic.sandbox.github_http import conditional, github_error, link_header, links_for, page_of, route_path
from medic.sandbox.github_limits import RATE_LIMIT_DOCS, Window, parse_credential
from medic.sandbox.github_orgs import beyond_contract_app
from medic.sandbox.github_store import GitHubStore, Job, Repository, Run

if TYPE_CHECKING:
    from medic.sandbox.github import SandboxGitHub

CONTROL_PREFIX = "/_sandbox"
LOG_URL_TTL_SECONDS = 60
JOB_STATUSES = {"requested", "in_progress", "completed", "queued", "waiting", "pending"}


Routes = Callable[[FastAPI], None]


def build_app(
    sandbox: SandboxGitHub, *, more_routes: tuple[Routes, ...] = (), beyond: tuple[Routes, ...] = ()
) -> FastAPI:
    """``more_routes`` are in the contract's subset; ``beyond`` GitHub documents but the subset lacks."""
    app = FastAPI(title="sandbox GitHub", docs_url=None, redoc_url=None, openapi_url=None)
    _errors_and_limits(app, sandbox)
    find = _Lookups(sandbox.store)
    _run_routes(app, sandbox, find)
    _job_routes(app, sandbox, find)
    _rerun_routes(app, sandbox, find)
    _cache_and_rate_routes(app, sandbox, find)
    for register in more_routes:
        register(app)  # before the catch-all mount below
    _control_routes(app, sandbox)
    extras = beyond_contract_app(sandbox)
    for register in beyond:
        register(extras)
    app.mount("", extras)  # last: it answers every path not matched above
    return app


def _errors_and_limits(app: FastAPI, sandbox: SandboxGitHub) -> None:
    """GitHub's error bodies, and its rate limit and outages (as the sandbox's modes say) on every call."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return github_error(exc.status_code, "Not Found" if exc.status_code == 404 else str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return github_error(422, "Validation Failed")

    app.add_middleware(_RateLimitAndFaults, sandbox=sandbox)


class _RateLimitAndFaults:
    """Every API call: its credential, its rate-limit window and headers, the fault modes.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs every call through an extra task and memory streams, which was a tenth of the
    sandbox's CPU in the pipeline bench, where the sandbox shares two cores with the system
    it stands in for.
    """

    def __init__(self, app: ASGIApp, sandbox: SandboxGitHub) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = route_path(request)
        if path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        refusal, window, free = self._admit(request, path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert window is not None

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not free and message["status"] != 304:
                    window.used += 1  # conditional requests answered 304 are free, as on GitHub
                headers = MutableHeaders(scope=message)
                for name, value in window.headers().items():
                    headers[name] = value
            await send(message)

        window.in_flight += 1
        window.most_in_flight = max(window.most_in_flight, window.in_flight)
        try:
            if self.sandbox.modes.latency_seconds:
                await asyncio.sleep(self.sandbox.modes.latency_seconds)
            await self.app(scope, receive, send_with_limits)
        finally:
            window.in_flight -= 1

    def _admit(self, request: Request, path: str) -> tuple[Response | None, Window | None, bool]:
        """(refusal, window, free): GitHub's answer when the call does not go through."""
        sandbox = self.sandbox
        valid, token = parse_credential(request.headers.get("authorization"))
        if not valid or (token is not None and not sandbox.apps.token_valid(token)):
            return github_error(401, "Bad credentials"), None, False
        window = sandbox.budget.window(token)
        free = path == "/rate_limit"
        if (reset := sandbox.modes.exhausted_reset()) is not None and not free:
            headers = window.headers(exhausted=True) | {"x-ratelimit-reset": str(reset)}
            body = {
                "message": "API rate limit exceeded for user ID 583231.",
                "documentation_url": RATE_LIMIT_DOCS,
            }
            return JSONResponse(body, status_code=403, headers=headers), window, free
        if not free and window.remaining == 0:
            body = {"message": "API rate limit exceeded.", "documentation_url": RATE_LIMIT_DOCS}
            return JSONResponse(body, status_code=403, headers=window.headers()), window, free
        if not free and (status := sandbox.modes.take_server_error()) is not None:
            window.used += 1
            if status == 502:
                page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
                return Response(page, 502, window.headers(), media_type="text/html"), window, free
            return github_error(503, "Service Unavailable", window.headers()), window, free
        return None, window, free


class _Lookups:
    """Runs and jobs by their URL's owner/repo: another repository's id is not found, as on GitHub."""

    def __init__(self, store: GitHubStore) -> None:
        self.store = store

    def repository(self, owner: str, repo: str) -> Repository | None:
        return self.store.find_repository(owner, repo)

    def run(self, owner: str, repo: str, run_id: int) -> Run | None:
        found = self.repository(owner, repo)
        run = self.store.runs.get(run_id)
        return run if found is not None and run is not None and run.repository is found else None

    def job(self, owner: str, repo: str, job_id: int) -> tuple[Run, Job] | None:
        job = self.store.jobs.get(job_id)
        run = None if job is None else self.run(owner, repo, job.run_id)
        return None if job is None or run is None else (run, job)


def _run_routes(app: FastAPI, sandbox: SandboxGitHub, find: _Lookups) -> None:
    store = sandbox.store

    @app.get("/repos/{owner}/{repo}/actions/runs")
    async def list_runs(
        request: Request,
        owner: str,
        repo: str,
        status: str | None = None,
        branch: str | None = None,
        head_sha: str | None = None,
        per_page: Annotated[int, Query(ge=1, le=100)] = 30,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        found = find.repository(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        return _runs_page(request, store.runs_of(found), status, branch, head_sha, per_page, page)

    @app.get("/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs")
    async def list_workflow_runs(
        request: Request,
        owner: str,
        repo: str,
        workflow_id: str,
        status: str | None = None,
        branch: str | None = None,
        head_sha: str | None = None,
        per_page: Annotated[int, Query(ge=1, le=100)] = 30,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        """One workflow's runs: ``workflow_id`` is its id or its file name, as on GitHub."""
        found = find.repository(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        runs = [
            run
            for run in store.runs_of(found)
            if workflow_id in (str(run.workflow_id), run.workflow_path.rsplit("/", 1)[-1])
        ]
        if not runs:  # the sandbox knows a workflow by its runs: none, no such workflow
            return github_error(404, "Not Found")
        return _runs_page(request, runs, status, branch, head_sha, per_page, page)

    @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}")
    async def get_run(request: Request, owner: str, repo: str, run_id: int) -> Response:
        run = find.run(owner, repo, run_id)
        if run is None:
            return github_error(404, "Not Found")
        body = json.dumps(payloads.workflow_run(run, run.latest, links_for(request))).encode()
        return conditional(request, body, {})


def _runs_page(
    request: Request,
    runs: list[Run],
    status: str | None,
    branch: str | None,
    head_sha: str | None,
    per_page: int,
    page: int,
) -> Response:
    """A page of ``{total_count, workflow_runs}`` with its ETag (a 304 when it matches) and Link."""
    if status in JOB_STATUSES:
        runs = [run for run in runs if run.latest.status == status]
    elif status:
        runs = [run for run in runs if run.latest.conclusion == status]
    runs = [run for run in runs if branch in (None, run.head_branch) and head_sha in (None, run.head_sha)]
    links = links_for(request)
    items = [payloads.workflow_run(run, run.latest, links) for run in page_of(runs, per_page, page)]
    body = json.dumps({"total_count": len(runs), "workflow_runs": items}).encode()
    return conditional(request, body, link_header(request, len(runs), per_page, page))


def _job_routes(app: FastAPI, sandbox: SandboxGitHub, find: _Lookups) -> None:
    store = sandbox.store

    @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")
    async def list_jobs(
        request: Request,
        owner: str,
        repo: str,
        run_id: int,
        filter: str = "latest",
        per_page: Annotated[int, Query(ge=1, le=100)] = 30,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        run = find.run(owner, repo, run_id)
        if run is None or filter not in {"latest", "all"}:
            return github_error(
                404 if run is None else 422, "Not Found" if run is None else "Validation Failed"
            )
        if filter == "latest":
            jobs = list(run.latest.jobs)
        else:
            seen: dict[int, Job] = {}
            for attempt in run.attempts:
                seen.update({job.id: store.jobs.get(job.id, job) for job in attempt.jobs})
            jobs = list(seen.values())
        links = links_for(request)
        body = {
            "total_count": len(jobs),
            "jobs": [payloads.job(j, run, links) for j in page_of(jobs, per_page, page)],
        }
        return JSONResponse(body, headers=link_header(request, len(jobs), per_page, page))

    @app.get("/repos/{owner}/{repo}/actions/jobs/{job_id}")
    async def get_job(request: Request, owner: str, repo: str, job_id: int) -> Response:
        found = find.job(owner, repo, job_id)
        if found is None:
            return github_error(404, "Not Found")
        return JSONResponse(payloads.job(found[1], found[0], links_for(request)))

    @app.get("/repos/{owner}/{repo}/actions/jobs/{job_id}/logs")
    async def job_logs(request: Request, owner: str, repo: str, job_id: int) -> Response:
        found = find.job(owner, repo, job_id)
        if found is None or found[1].log is None:
            return github_error(404, "Not Found")
        expires = int(time.time()) + LOG_URL_TTL_SECONDS
        signature = sandbox.sign_log_url(job_id, expires)
        location = (
            f"{links_for(request).api}{CONTROL_PREFIX}/logs/{job_id}?expires={expires}&signature={signature}"
        )
        return Response(status_code=302, headers={"Location": location})


def _rerun_routes(app: FastAPI, sandbox: SandboxGitHub, find: _Lookups) -> None:
    @app.post("/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs", status_code=201)
    async def rerun_failed_jobs(request: Request, owner: str, repo: str, run_id: int) -> Response:
        return await _rerun(request, owner, repo, run_id, failed_only=True)

    @app.post("/repos/{owner}/{repo}/actions/runs/{run_id}/rerun", status_code=201)
    async def rerun(request: Request, owner: str, repo: str, run_id: int) -> Response:
        return await _rerun(request, owner, repo, run_id, failed_only=False)

    async def _rerun(request: Request, owner: str, repo: str, run_id: int, *, failed_only: bool) -> Response:
        run = find.run(owner, repo, run_id)
        if run is None:
            return github_error(404, "Not Found")
        if run.latest.status != "completed":
            return github_error(403, "This workflow run is not completed and cannot be re-run.")
        if failed_only and run.latest.conclusion == "success":
            return github_error(403, "This workflow run has no failed jobs to re-run.")
        sandbox.start_rerun(run, failed_only=failed_only, links=links_for(request))
        return JSONResponse({}, status_code=201)


def _cache_and_rate_routes(app: FastAPI, sandbox: SandboxGitHub, find: _Lookups) -> None:
    store = sandbox.store

    @app.delete("/repos/{owner}/{repo}/actions/caches")
    async def delete_caches(owner: str, repo: str, key: str, ref: str | None = None) -> Response:
        found = find.repository(owner, repo)
        deleted = [] if found is None else store.delete_caches(found, key, ref)
        if not deleted:
            return github_error(404, "Not Found")
        caches = [
            {
                "id": c.id,
                "ref": c.ref,
                "key": c.key,
                "version": hashlib.sha256(c.key.encode()).hexdigest(),
                "last_accessed_at": payloads.iso(c.created_at),
                "created_at": payloads.iso(c.created_at),
                "size_in_bytes": c.size_in_bytes,
            }
            for c in deleted
        ]
        return JSONResponse({"total_count": len(caches), "actions_caches": caches})

    @app.get("/rate_limit")
    async def rate_limit(request: Request) -> Response:
        _, token = parse_credential(request.headers.get("authorization"))
        window = sandbox.budget.window(token)
        core = {
            "limit": window.limit,
            "remaining": window.remaining,
            "reset": window.reset,
            "used": window.used,
        }
        other = {"limit": 30, "remaining": 30, "reset": int(time.time()) + 60, "used": 0}
        resources = {"core": core, "search": other, "graphql": core | {"used": 0, "remaining": window.limit}}
        return JSONResponse({"resources": resources, "rate": core})


async def _on_the_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A log's chunks made on the event loop: Starlette sends a plain iterator through a worker
    thread, a hop per chunk, for work that is this process's CPU either way."""
    for chunk in chunks:
        yield chunk


def _control_routes(app: FastAPI, sandbox: SandboxGitHub) -> None:
    @app.get(CONTROL_PREFIX + "/logs/{job_id}")
    async def download_log(job_id: int, expires: int, signature: str) -> Response:
        expected = sandbox.sign_log_url(job_id, expires)
        job = sandbox.store.jobs.get(job_id)
        if (
            not hmac.compare_digest(expected, signature)
            or expires < time.time()
            or job is None
            or job.log is None
        ):
            return Response("AuthenticationFailed: Server failed to authenticate the request.", 403)
        return StreamingResponse(_on_the_loop(job.log()), media_type="text/plain")

    @app.post(CONTROL_PREFIX + "/simulate")
    async def simulate(request: Request, spec: Annotated[dict[str, Any], Body()]) -> Response:
        failures = int(spec.get("failures", 1))
        repositories = spec.get("repositories") or None
        names = spec.get("scenarios") or None
        if failures < 0 or failures > 10_000:
            return github_error(422, "failures must be between 0 and 10000")
        try:
            created = sandbox.simulate(
                failures, repositories=repositories, scenarios=names, links=links_for(request)
            )
        except ValueError as exc:
            return github_error(422, str(exc))
        return JSONResponse({"failures": created})

    @app.post(CONTROL_PREFIX + "/modes")
    async def modes(spec: Annotated[dict[str, Any], Body()]) -> Response:
        sandbox.set_modes(spec)
        return JSONResponse(sandbox.describe_modes())

    @app.get(CONTROL_PREFIX + "/state")
    async def state() -> Response:
        return JSONResponse(sandbox.describe_state())
