"""The ``medic`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medic.config import ConfigError, Settings, load_settings, resolve_config_path
from medic.services import composition

app = typer.Typer(help="ci-medic: watches GitHub Actions, explains failures, fixes the safe ones.")
console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (also MEDIC_CONFIG)", envvar="MEDIC_CONFIG"),
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="HTTP port for every service (default 8080)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded NATS/PostgreSQL keep data")] = None,
) -> None:
    """Start everything in one process: embedded servers and sandboxes unless configured otherwise."""
    from medic.services.launchers import run_everything

    settings = _settings(config, http_port=port, data_dir=data_dir)
    asyncio.run(run_everything(settings, console, resolve_config_path(config)))


@app.command()
def service(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(composition.SERVICE_NAMES)}")],
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080)")] = None,
) -> None:
    """Run one service alone, as a Kubernetes pod does (needs NATS_URL; the projector DATABASE_URL)."""
    from medic.services.launchers import run_one

    if name not in composition.SERVICE_NAMES:
        console.print(f"[red]unknown service {name!r}[/red]; known: {', '.join(composition.SERVICE_NAMES)}")
        raise typer.Exit(2)
    settings = _settings(config, http_port=port)
    if settings.nats_url is None:
        console.print("[red]NATS_URL is not set[/red]: a single service joins an existing bus")
        raise typer.Exit(2)
    asyncio.run(run_one(name, settings, console, resolve_config_path(config)))


@app.command()
def simulate(
    failures: Annotated[int, typer.Option(min=1, max=10_000, help="How many failing runs to produce")] = 20,
    url: Annotated[
        str, typer.Option(help="The sandbox GitHub to drive")
    ] = f"http://127.0.0.1:8080{composition.SANDBOX_GITHUB_PREFIX}",
) -> None:
    """Make the sandbox GitHub produce failing runs of varied kinds and deliver their webhooks."""
    import httpx

    from medic.sandbox.simulate import simulate as drive

    try:
        result = asyncio.run(drive(url, failures))
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach the sandbox at {url}:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print_json(data=result)


@app.command()
def analyze(
    logfile: Annotated[Path, typer.Argument(help="A saved GitHub Actions job log")],
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="The last green log of the same job, to compare with")
    ] = None,
) -> None:
    """Analyse a saved log offline: category, risk, action, fingerprint and the explaining lines."""
    from medic.services.analyzer.offline import analyze_file

    raise typer.Exit(analyze_file(logfile, as_json=json_output, console=Console(), baseline=baseline))


@app.command()
def proto(
    check: Annotated[bool, typer.Option(help="Fail if proto/ is stale instead of writing")] = False,
) -> None:
    """Write the event contracts (JSON Schema + AsyncAPI) into proto/."""
    from medic.contracts import write_contracts

    stale = write_contracts(Path("proto"), composition.service_roles(), check=check)
    if check and stale:
        console.print(f"[red]proto/ is stale:[/red] {', '.join(stale)}; run `make proto`")
        raise typer.Exit(1)


def _mount_projector_commands() -> None:
    from medic.services.projector.commands import audit_app, db_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")


def _mount_policy_commands() -> None:
    from medic.services.safety_gate.commands import policy_app

    app.add_typer(policy_app, name="policy")


def _mount_config_commands() -> None:
    from medic.services.config_commands import config_app

    app.add_typer(config_app, name="config")


def _mount_approval_commands() -> None:
    from medic.services.approval.commands import approve, reject

    app.command()(approve)
    app.command()(reject)


_mount_projector_commands()
_mount_policy_commands()
_mount_approval_commands()
_mount_config_commands()
