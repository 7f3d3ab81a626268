"""The ``medic`` command."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:  # settings (pydantic-settings) load only for the commands that read them
    from rich.console import Console

    from medic.config import Settings


def _load_group(name: str, target: str) -> TyperGroup:
    module, attr = target.split(":")
    real = typer.main.get_group(getattr(importlib.import_module(module), attr))
    assert isinstance(real, TyperGroup)
    real.name = name
    return real


def _load_command(name: str, target: str) -> TyperCommand:
    module, attr = target.split(":")
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command(name=name)(getattr(importlib.import_module(module), attr))
    real = typer.main.get_command(single)
    assert isinstance(real, TyperCommand)
    return real


class _LazyGroup(TyperGroup):
    """A command group whose module is imported only when it is run or asked for its own help.

    ``medic --help`` lists it from the help text given here; ``medic audit verify`` imports
    the projector's commands (and with them the bus and the database driver) and hands over.
    """

    def __init__(self, name: str, target: str, help_text: str) -> None:
        super().__init__(name=name, help=help_text, short_help=help_text)
        self._target = target
        self._real: TyperGroup | None = None

    def _load(self) -> TyperGroup:
        if self._real is None:
            self._real = _load_group(str(self.name), self._target)
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self._load().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        return self._load().invoke(ctx)


class _LazyCommand(TyperCommand):
    """One command whose module is imported only when it is run or asked for its own help
    (``medic approve``: its module brings rich's console, which ``medic analyze --json`` and
    ``medic --help``'s listing do without)."""

    def __init__(self, name: str, target: str, help_text: str) -> None:
        super().__init__(name=name, callback=None, help=help_text, short_help=help_text)
        self._target = target
        self._real: TyperCommand | None = None

    def _load(self) -> TyperCommand:
        if self._real is None:
            self._real = _load_command(str(self.name), self._target)
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self._load().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        return self._load().invoke(ctx)


LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "approve": (
        "medic.services.approval.commands:approve",
        "Approve a pending fix (four-eyes approvals need a second, different person).",
    ),
    "reject": ("medic.services.approval.commands:reject", "Reject a pending fix."),
}
"""Commands imported on use, listed by ``medic --help`` from the help text here (a test checks
it is the first line of the function's own docstring)."""

LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "audit": (
        "medic.services.projector.commands:audit_app",
        "Audit trail: rebuild it from the event stream, prove it was not edited.",
    ),
    "db": ("medic.services.projector.commands:db_app", "The projector's PostgreSQL schema."),
    "policy": (
        "medic.services.safety_gate.commands:policy_app",
        "Safety policy: kill switch, dry-run, circuit breakers, incident holds.",
    ),
    "config": (
        "medic.services.config_commands:config_app",
        "Settings: validate a file, show the effective values and their sources.",
    ),
}
"""Command groups imported on use: ``medic --help`` must not load the bus, the database driver
and the model client (a test checks the help texts here are the groups' own)."""


class _Medic(TyperGroup):
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_COMMANDS, *LAZY_GROUPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_COMMANDS:
            return _LazyCommand(cmd_name, *LAZY_COMMANDS[cmd_name])
        if cmd_name in LAZY_GROUPS:
            target, help_text = LAZY_GROUPS[cmd_name]
            return _LazyGroup(cmd_name, target, help_text)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_Medic,
    help="ci-medic: watches GitHub Actions, explains failures, fixes the safe ones.",
    rich_markup_mode=None,
)
"""Help is click's plain text (``rich_markup_mode=None``): typer's rich help imports rich's
markdown and traceback modules, doubling what ``medic --help`` costs (0.24 -> 0.11 s here). Rich
stays for what it is good at: progress bars on long work and the reports."""

SERVICE_NAMES = (
    "monitor",
    "analyzer",
    "safety-gate",
    "executor",
    "approval",
    "notifier",
    "projector",
    "dashboard",
)
SANDBOX_GITHUB_PREFIX = "/sandbox/github"
"""Copies of :mod:`medic.services.composition`'s names for the help texts: importing it (asyncio,
the service wiring) would cost every command, ``--help`` too. A test checks they agree."""


@functools.cache
def _console() -> Console:
    """Errors go to stderr through rich, loaded when there is something to say."""
    from rich.console import Console

    return Console(stderr=True)


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (also MEDIC_CONFIG)", envvar="MEDIC_CONFIG"),
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    from medic.config import ConfigError, load_settings

    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        _console().print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _config_path(config: Path | None) -> Path | None:
    from medic.config import resolve_config_path

    return resolve_config_path(config)


@app.command()
def run(
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="HTTP port for every service (default 8080)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where embedded NATS/PostgreSQL keep data")] = None,
) -> None:
    """Start everything in one process: embedded servers and sandboxes unless configured otherwise."""
    from medic.services.launchers import run_everything

    settings = _settings(config, http_port=port, data_dir=data_dir)
    import asyncio

    asyncio.run(run_everything(settings, _console(), _config_path(config)))


@app.command()
def service(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICE_NAMES)}")],
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080)")] = None,
) -> None:
    """Run one service alone, as a Kubernetes pod does (needs NATS_URL; the projector DATABASE_URL)."""
    from medic.services.launchers import run_one

    if name not in SERVICE_NAMES:
        _console().print(f"[red]unknown service {name!r}[/red]; known: {', '.join(SERVICE_NAMES)}")
        raise typer.Exit(2)
    settings = _settings(config, http_port=port)
    if settings.nats_url is None:
        _console().print("[red]NATS_URL is not set[/red]: a single service joins an existing bus")
        raise typer.Exit(2)
    import asyncio

    asyncio.run(run_one(name, settings, _console(), _config_path(config)))


@app.command()
def simulate(
    failures: Annotated[int, typer.Option(min=1, max=10_000, help="How many failing runs to produce")] = 20,
    url: Annotated[
        str, typer.Option(help="The sandbox GitHub to drive")
    ] = f"http://127.0.0.1:8080{SANDBOX_GITHUB_PREFIX}",
    api: Annotated[
        str, typer.Option(help="ci-medic's API, asked how far each failure got")
    ] = "http://127.0.0.1:8080",
    wait: Annotated[
        float, typer.Option(min=0, max=3600, help="Seconds to wait for the failures to settle")
    ] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Every failure and its state, as JSON")] = False,
) -> None:
    """Make the sandbox GitHub produce failing runs of varied kinds, then show how far they got."""
    from medic.services.simulation_report import run_simulation

    raise typer.Exit(run_simulation(url, api, failures, wait=wait, as_json=json_output))


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

    raise typer.Exit(analyze_file(logfile, as_json=json_output, baseline=baseline))


@app.command()
def proto(
    check: Annotated[bool, typer.Option(help="Fail if proto/ is stale instead of writing")] = False,
) -> None:
    """Write the event contracts (JSON Schema + AsyncAPI) into proto/."""
    from medic.contracts import write_contracts
    from medic.services import composition

    stale = write_contracts(Path("proto"), composition.service_roles(), check=check)
    if check and stale:
        _console().print(f"[red]proto/ is stale:[/red] {', '.join(stale)}; run `make proto`")
        raise typer.Exit(1)
