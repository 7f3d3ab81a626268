"""GitHub App authentication: an app JWT, traded for one installation token per organisation.

An installation token is what a GitHub App acts with: its rate limit is per installation
(at least 5,000 requests/hour, more on large organisations) rather than one person's, and it
is revoked with the app. Tokens live an hour; we keep each until five minutes before it
expires, so a request never leaves with a token about to die on the way. Every request to
``/repos/{owner}/...`` or ``/orgs/{owner}/...`` is signed with the token of ``owner``'s
installation, found once with ``GET /orgs/{owner}/installation``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from githubkit.auth.base import BaseAuthStrategy

from medic.github.errors import GitHubError, GitHubUnavailable, NotFound

if TYPE_CHECKING:
    from githubkit import GitHubCore

    from medic.config import Settings

JWT_BACKDATE_SECONDS = 60
"""GitHub's advice: issue the JWT a minute in the past, against clock drift."""
JWT_LIFETIME_SECONDS = 540
"""``exp - iat`` is 10 minutes, GitHub's maximum, counted from the back-dated ``iat``."""
REFRESH_MARGIN_SECONDS = 300.0


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: float
    """Epoch seconds."""


class GitHubAppAuth:
    """Signs app JWTs and keeps one installation token per organisation, refreshed before expiry."""

    def __init__(
        self,
        *,
        app_id: int,
        private_key: str,
        base_url: str = "https://api.github.com",
        timeout: float = 10.0,
        refresh_margin_seconds: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app_id = app_id
        self._private_key = private_key
        self._base_url = base_url.rstrip("/")
        self._margin = refresh_margin_seconds
        self._clock = clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": "ci-medic", "X-GitHub-Api-Version": "2022-11-28"},
        )
        self._installations: dict[str, int] = {}
        self._tokens: dict[str, InstallationToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.tokens_issued = 0
        """How many installation tokens were fetched: caching is visible, not assumed."""

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubAppAuth | None:
        """None unless ``github_app_id`` and a private key (inline or file) are configured."""
        if settings.github_app_id is None:
            return None
        if settings.github_app_private_key is not None:
            key = settings.github_app_private_key.get_secret_value()
        elif settings.github_app_private_key_file is not None:
            key = Path(settings.github_app_private_key_file).read_text()
        else:
            return None
        return cls(app_id=settings.github_app_id, private_key=key, base_url=settings.github_api_url)

    async def aclose(self) -> None:
        await self._http.aclose()

    def app_jwt(self) -> str:
        """RS256 JWT identifying the app itself; good only for the ``/app`` endpoints."""
        now = int(self._clock())
        claims = {
            "iat": now - JWT_BACKDATE_SECONDS,
            "exp": now + JWT_LIFETIME_SECONDS,
            "iss": str(self.app_id),
        }
        return jwt.encode(claims, self._private_key, algorithm="RS256")

    async def token_for(self, owner: str) -> str:
        """A live installation token for ``owner``'s installation, fetched at most once per lifetime."""
        key = owner.lower()
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at - self._margin > self._clock():
            return cached.token
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at - self._margin > self._clock():
                return cached.token
            installation = await self._installation_id(key)
            body = await self._app_request("POST", f"/app/installations/{installation}/access_tokens")
            fresh = InstallationToken(str(body["token"]), _epoch(str(body["expires_at"])))
            self._tokens[key] = fresh
            self.tokens_issued += 1
            return fresh.token

    def forget(self, owner: str) -> None:
        """Drop a token GitHub refused (revoked, or expired early); the next call fetches anew."""
        self._tokens.pop(owner.lower(), None)

    async def _installation_id(self, owner: str) -> int:
        if owner not in self._installations:
            body = await self._app_request("GET", f"/orgs/{owner}/installation")
            self._installations[owner] = int(body["id"])
        return self._installations[owner]

    async def _app_request(self, method: str, path: str) -> dict[str, Any]:
        route = f"{method} {path}"
        headers = {"Authorization": f"Bearer {self.app_jwt()}", "Accept": "application/vnd.github+json"}
        try:
            response = await self._http.request(method, self._base_url + path, headers=headers)
        except httpx.HTTPError as exc:
            raise GitHubUnavailable(f"{route} failed: {exc!r}", route=route) from exc
        if response.status_code == 404:
            raise NotFound(f"{route}: the app is not installed there", status=404, route=route)
        if response.status_code >= 500:
            raise GitHubUnavailable(f"{route} answered {response.status_code}", status=response.status_code)
        if response.status_code >= 400:
            raise GitHubError(f"{route} answered {response.status_code}", status=response.status_code)
        body = response.json()
        if not isinstance(body, dict):
            raise GitHubError(f"{route}: not a JSON object", status=response.status_code, route=route)
        return body


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def owner_of(path: str, base_path: str = "") -> str | None:
    """The account a REST path acts on: ``/repos/{owner}/...`` or ``/orgs/{owner}/...``."""
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] in {"repos", "orgs"} and parts[1]:
        return parts[1]
    return None


class InstallationAuth(httpx.Auth):
    """Adds the owner's installation token; one retry with a fresh token after a 401."""

    def __init__(self, app: GitHubAppAuth, base_url: str) -> None:
        self._app = app
        self._base_path = httpx.URL(base_url).path.rstrip("/")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        owner = owner_of(request.url.path, self._base_path)
        if owner is None:
            yield request
            return
        request.headers["Authorization"] = f"token {await self._app.token_for(owner)}"
        response = yield request
        if response.status_code == 401:
            self._app.forget(owner)
            request.headers["Authorization"] = f"token {await self._app.token_for(owner)}"
            yield request


class InstallationAuthStrategy(BaseAuthStrategy):
    """githubkit's hook for :class:`InstallationAuth`."""

    def __init__(self, auth: InstallationAuth) -> None:
        self._auth = auth

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return self._auth
