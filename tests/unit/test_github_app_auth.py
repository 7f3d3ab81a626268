"""GitHub App auth against the sandbox over real HTTP: JWT, installation tokens, caching, expiry."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from medic.config import load_settings
from medic.github.auth import GitHubAppAuth, owner_of
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError, NotFound
from medic.runtime import HttpServer
from medic.sandbox.github import SandboxGitHub, create_sandbox_github

APP_ID = 424242
REPO = "acme/api"


def pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return pem_pair()


@pytest.fixture
async def sandbox(keys: tuple[str, str]) -> AsyncIterator[tuple[SandboxGitHub, str]]:
    github = create_sandbox_github(webhook_url=None, webhook_secret="s")
    github.apps.register(APP_ID, keys[1], token_ttl_seconds=3600)
    github.apps.install("acme")
    server = HttpServer(github.app)
    await server.start()
    yield github, server.url
    await server.stop()


def test_the_app_jwt_is_rs256_backdated_and_short_lived(keys: tuple[str, str]) -> None:
    auth = GitHubAppAuth(app_id=APP_ID, private_key=keys[0])
    before = int(time.time())
    claims = jwt.decode(auth.app_jwt(), keys[1], algorithms=["RS256"])
    after = time.time()
    assert claims["iss"] == str(APP_ID)
    # backdated by a minute against clock drift; measured around the call, whole seconds
    assert before - 60 <= claims["iat"] <= after - 59
    assert claims["exp"] - claims["iat"] <= 600 and claims["exp"] > after


def test_owner_of_paths() -> None:
    assert owner_of("/repos/acme/api/actions/runs") == "acme"
    assert owner_of("/sandbox/github/orgs/acme/repos", "/sandbox/github") == "acme"
    assert owner_of("/rate_limit") is None


async def test_installation_tokens_are_cached_per_organisation(
    sandbox: tuple[SandboxGitHub, str], keys: tuple[str, str]
) -> None:
    github, url = sandbox
    run = github.add_failed_run(REPO, "flaky_test")
    app = GitHubAppAuth(app_id=APP_ID, private_key=keys[0], base_url=url)
    async with GitHubClient(base_url=url, token="ignored-when-an-app-is-set", app=app) as client:
        assert (await client.get_run(REPO, run.id)).id == run.id
        [job] = await client.list_failed_jobs(REPO, run.id)
        log = await client.fetch_job_log(REPO, job.id)
        assert log.text and log.unavailable_reason is None
        assert await client.list_org_repositories("acme") == [REPO]
    assert github.apps.tokens_issued == 1 and app.tokens_issued == 1
    assert all(token.startswith("ghs_") for token in github.budget.windows if token.startswith("ghs_"))
    assert "ignored-when-an-app-is-set" not in github.budget.windows


async def test_a_token_is_renewed_before_it_expires_and_after_a_refusal(
    sandbox: tuple[SandboxGitHub, str], keys: tuple[str, str]
) -> None:
    github, url = sandbox
    github.apps.token_ttl_seconds = 2.0
    run = github.add_failed_run(REPO, "flaky_test")
    ahead = [0.0]  # the client's clock runs ahead by this much: no sleeping, no race with the TTL
    app = GitHubAppAuth(
        app_id=APP_ID,
        private_key=keys[0],
        base_url=url,
        refresh_margin_seconds=1.0,
        clock=lambda: time.time() + ahead[0],
    )
    async with GitHubClient(base_url=url, app=app) as client:
        await client.get_run(REPO, run.id)
        await client.get_run(REPO, run.id)
        assert github.apps.tokens_issued == 1
        ahead[0] = 1.5  # within the margin of expiry: renew rather than risk it
        await client.get_run(REPO, run.id)
        assert github.apps.tokens_issued == 2
        github.apps.tokens.clear()  # GitHub revoked every token: a 401, then a fresh token
        await client.get_run(REPO, run.id)
        assert github.apps.tokens_issued == 3


async def test_a_forged_jwt_or_a_missing_installation_is_refused(
    sandbox: tuple[SandboxGitHub, str], keys: tuple[str, str]
) -> None:
    github, url = sandbox
    github.add_failed_run("elsewhere/api", "flaky_test")
    forger = GitHubAppAuth(app_id=APP_ID, private_key=pem_pair()[0], base_url=url)
    async with GitHubClient(base_url=url, app=forger) as client:
        with pytest.raises(GitHubError) as refused:
            await client.list_org_repositories("acme")
        assert refused.value.status == 401
    honest = GitHubAppAuth(app_id=APP_ID, private_key=keys[0], base_url=url)
    async with GitHubClient(base_url=url, app=honest) as client:
        with pytest.raises(NotFound):
            await client.list_org_repositories("elsewhere")
    assert github.apps.tokens_issued == 0


def test_settings_choose_the_app_when_configured(keys: tuple[str, str], tmp_path: object) -> None:
    from pathlib import Path

    key_file = Path(str(tmp_path)) / "app.pem"
    key_file.write_text(keys[0])
    settings = load_settings(github_app_id=APP_ID, github_app_private_key_file=key_file, github_token="t")
    app = GitHubAppAuth.from_settings(settings)
    assert app is not None and app.app_id == APP_ID
    assert GitHubAppAuth.from_settings(load_settings(github_token="t")) is None
