"""Organisations and GitHub Apps in the sandbox: ``/orgs/{org}/repos`` and the App token dance.

An App proves itself with an RS256 JWT signed by its private key; the sandbox checks that
signature against the public key a test registered, the issuer, and GitHub's limits on
``iat``/``exp`` (at most ten minutes apart, not expired). The installation tokens it hands
out expire (an hour by default, shorter in tests) and are refused afterwards, like GitHub's.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import jwt
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medic.sandbox import github_payloads as payloads
from medic.sandbox.github_http import github_error, link_header, links_for, page_of
from medic.sandbox.github_store import stable_id

if TYPE_CHECKING:
    from medic.sandbox.github import SandboxGitHub

MAX_JWT_SPAN_SECONDS = 600
CLOCK_SKEW_SECONDS = 60


@dataclass
class IssuedToken:
    installation_id: int
    expires_at: float


@dataclass
class SandboxApps:
    """One registered App (tests register it with their key), its installations and tokens."""

    app_id: int | None = None
    public_key_pem: str | None = None
    installations: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    token_ttl_seconds: float = 3600.0
    tokens_issued: int = 0

    def register(self, app_id: int, public_key_pem: str, *, token_ttl_seconds: float = 3600.0) -> None:
        self.app_id, self.public_key_pem, self.token_ttl_seconds = app_id, public_key_pem, token_ttl_seconds

    def install(self, organisation: str) -> int:
        key = organisation.lower()
        self.installations.setdefault(key, stable_id(f"installation:{key}", digits=8))
        return self.installations[key]

    def jwt_problem(self, authorization: str | None) -> str | None:
        """Why the ``Authorization`` header is not a valid JWT of the registered App, or None."""
        if self.app_id is None or self.public_key_pem is None:
            return "no GitHub App is registered"
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"]},
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.PyJWTError as exc:
            return f"A JSON web token could not be decoded: {exc}"
        if str(claims["iss"]) != str(self.app_id):
            return "'Issuer' claim ('iss') must be the App's id"
        if int(claims["exp"]) - int(claims["iat"]) > MAX_JWT_SPAN_SECONDS:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def issue(self, installation_id: int) -> tuple[str, float]:
        token = "ghs_" + secrets.token_urlsafe(27)
        expires_at = time.time() + self.token_ttl_seconds
        self.tokens[token] = IssuedToken(installation_id, expires_at)
        self.tokens_issued += 1
        return token, expires_at

    def token_valid(self, token: str) -> bool:
        """Installation tokens (``ghs_``) must be ours and alive; other tokens are plain PATs."""
        if not token.startswith("ghs_"):
            return True
        issued = self.tokens.get(token)
        return issued is not None and issued.expires_at > time.time()


def beyond_contract_app(sandbox: SandboxGitHub) -> FastAPI:
    """The organisation and App routes, which the contract's OpenAPI subset does not (yet) hold.

    Served as a sub-application mounted after every contract route, so the contract test
    keeps certifying exactly the subset; the parent's middleware (budget, credentials) still
    runs first. Fold these in once the subset gains the three operations.
    """

    app = FastAPI(title="sandbox GitHub extras", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return github_error(exc.status_code, "Not Found" if exc.status_code == 404 else str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return github_error(422, "Validation Failed")

    _org_routes(app, sandbox)
    return app


def _org_routes(app: FastAPI, sandbox: SandboxGitHub) -> None:

    apps = sandbox.apps

    @app.get("/orgs/{org}/repos")
    async def list_org_repos(
        request: Request,
        org: str,
        per_page: Annotated[int, Query(ge=1, le=100)] = 30,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> Response:
        repos = sorted(
            (r for r in sandbox.store.repositories.values() if r.owner.lower() == org.lower()),
            key=lambda r: r.full_name.lower(),
        )
        if not repos:
            return github_error(404, "Not Found")
        links = links_for(request)
        body = [
            payloads.minimal_repository(r, links) | {"archived": False, "disabled": False}
            for r in page_of(repos, per_page, page)
        ]
        return JSONResponse(body, headers=link_header(request, len(repos), per_page, page))

    @app.get("/orgs/{org}/installation")
    async def org_installation(request: Request, org: str) -> Response:
        if (problem := apps.jwt_problem(request.headers.get("authorization"))) is not None:
            return github_error(401, problem)
        installation = apps.installations.get(org.lower())
        if installation is None:
            return github_error(404, "Not Found")
        return JSONResponse(
            {
                "id": installation,
                "app_id": apps.app_id,
                "target_type": "Organization",
                "account": payloads.user(org, links_for(request), kind="Organization"),
                "permissions": {"actions": "write", "contents": "write", "pull_requests": "write"},
                "repository_selection": "all",
            }
        )

    @app.post("/app/installations/{installation_id}/access_tokens", status_code=201)
    async def access_token(request: Request, installation_id: int) -> Response:
        if (problem := apps.jwt_problem(request.headers.get("authorization"))) is not None:
            return github_error(401, problem)
        if installation_id not in apps.installations.values():
            return github_error(404, "Not Found")
        token, expires_at = apps.issue(installation_id)
        stamp = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"token": token, "expires_at": stamp, "repository_selection": "all"}
        return JSONResponse(body, status_code=201)
