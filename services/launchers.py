"""``medic run`` and ``medic service``: start, print where everything listens, stop on Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from medic.config import Settings
from medic.config_sources import mask_url_password
from medic.reload import watching
from medic.services import composition
from medic.telemetry import configure


async def run_everything(settings: Settings, console: Console, config_path: Path | None = None) -> None:
    configure("ci-medic")
    data_dir = settings.data_dir
    infra = composition.start_infrastructure(settings, data_dir)
    try:
        base = f"http://{settings.http_host}:{settings.http_port}"
        updates: dict[str, Any] = {"nats_url": infra.nats_url, "database_url": infra.database_url}
        mounts: dict[str, Any] = {}
        secret = composition.webhook_secret(settings, data_dir)
        generated = not settings.webhook_secrets()  # a secret the user set is never printed
        if settings.github_token is None:
            from medic.sandbox.github import create_sandbox_github

            sandbox = create_sandbox_github(webhook_url=f"{base}/webhooks/github", webhook_secret=secret)
            mounts[composition.SANDBOX_GITHUB_PREFIX] = sandbox.app
            updates["github_api_url"] = base + composition.SANDBOX_GITHUB_PREFIX
        if settings.model_base_url is None:
            from medic.sandbox.openai import create_sandbox_model

            mounts[composition.SANDBOX_MODEL_PREFIX] = create_sandbox_model().app
            updates["model_base_url"] = base + composition.SANDBOX_MODEL_PREFIX + "/v1"
            updates["model_api_key"] = SecretStr("sandbox")
        if settings.slack_bot_token is None:
            from medic.sandbox.slack import create_sandbox_slack

            slack = create_sandbox_slack(events_url=f"{base}/slack/events")
            mounts[composition.SANDBOX_SLACK_PREFIX] = slack.app
            updates["slack_api_url"] = base + composition.SANDBOX_SLACK_PREFIX + "/api/"
            updates["slack_bot_token"] = SecretStr(slack.token)
            updates["slack_signing_secret"] = SecretStr(slack.signing_secret)
        updates["github_webhook_secret"] = SecretStr(secret)
        settings = settings.model_copy(update=updates)
        async with composition.open_parts(settings) as parts:
            host = composition.build_host(settings, parts, composition.SERVICE_NAMES, mounts)

            def banner() -> None:
                shown = secret if generated else None
                _print_banner(console, settings, infra, base, shown, sandboxed=bool(mounts))

            async with watching(settings, config_path, [host, *host.services], parts.bus.publish):
                await host.serve(host=settings.http_host, port=settings.http_port, ready=banner)
    finally:
        infra.stop()
        console.print("ci-medic stopped; data kept in", str(data_dir.resolve()))


async def run_one(name: str, settings: Settings, console: Console, config_path: Path | None = None) -> None:
    configure(f"ci-medic-{name}")
    async with composition.open_parts(settings) as parts:
        host = composition.build_host(settings, parts, (name,), {})
        where = f"{name} listening on http://{settings.http_host}:{settings.http_port}"
        async with watching(settings, config_path, [host, *host.services], parts.bus.publish):
            await host.serve(
                host=settings.http_host, port=settings.http_port, ready=lambda: console.print(where)
            )


def _print_banner(
    console: Console,
    settings: Settings,
    infra: composition.Infrastructure,
    base: str,
    generated_secret: str | None,
    *,
    sandboxed: bool,
) -> None:
    """Where everything listens. Only a secret generated for the sandbox is shown; one the user
    set (``MEDIC_GITHUB_WEBHOOK_SECRET``) stays out of the terminal and its scrollback."""
    console.print("[bold]ci-medic is running[/bold]")
    console.print(f"  NATS JetStream   {mask_url_password(infra.nats_url)}")
    console.print(f"  PostgreSQL       {mask_url_password(infra.database_url)}")
    console.print(f"  dashboard / API  {base}/  (OpenAPI: {base}/docs)")
    console.print(f"  GitHub webhooks  {base}/webhooks/github")
    console.print(f"  metrics          {base}/metrics   health {base}/healthz {base}/readyz")
    if sandboxed:
        console.print(f"  sandbox GitHub   {settings.github_api_url}")
        console.print(f"  sandbox model    {settings.model_base_url}")
        console.print(f"  sandbox Slack    {base}{composition.SANDBOX_SLACK_PREFIX}/_sandbox/channels")
        if generated_secret is not None:
            console.print(
                f"  webhook secret   {generated_secret}   (generated for the sandbox;"
                " set MEDIC_GITHUB_WEBHOOK_SECRET for real)"
            )
        else:
            console.print("  webhook secret   set by you (not shown)")
        console.print("  try: medic simulate --failures 20")
    console.print("Ctrl-C stops everything.")
