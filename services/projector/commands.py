"""``medic audit replay|verify`` and ``medic db migrate``: the operator's side of the projector.

Mounted by the composition root (``services/cli.py``)::

    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")

Exit codes: 0 fine, 1 the check failed (views differ, chain broken), 2 cannot run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medic.bus import Bus, Topology
from medic.config import ConfigError, Settings, load_settings
from medic.db import DatabaseError, connect_pool, quote_schema
from medic.embedded import EmbeddedStartError
from medic.local_servers import embedded_bus, embedded_database
from medic.services.projector.chain import VerifyResult, verify_chain
from medic.services.projector.migrations import MigrationError, migrate
from medic.services.projector.replay import ReplayError, ReplayReport, replay

audit_app = typer.Typer(
    help="Audit trail: rebuild it from the event stream, prove it was not edited.", rich_markup_mode=None
)
db_app = typer.Typer(help="The projector's PostgreSQL schema.", rich_markup_mode=None)
console = Console()


@db_app.callback()
def _db_group() -> None:
    """A group even with one command, so ``medic db migrate`` reads the same when mounted or not."""


@audit_app.callback()
def _audit_group() -> None:
    """Commands on the audit trail."""


ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML config file (else MEDIC_CONFIG)")]


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Without DATABASE_URL/NATS_URL: the embedded servers' directory of `medic run` (default .medic)",
    ),
]


def _settings(config: Path | None, data_dir: Path | None = None) -> Settings:
    try:
        settings = load_settings(config, os.environ.get("MEDIC_CONFIG"), data_dir=data_dir)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return settings


@contextlib.contextmanager
def _servers(settings: Settings, *, bus: bool = False) -> Iterator[Settings]:
    """The settings with a database (and a bus) to use: the configured ones, else the embedded
    servers of the data directory, shared with a running ``medic run`` or started for the command."""
    with contextlib.ExitStack() as stack:
        updates: dict[str, str] = {}
        try:
            if not settings.database_url:
                updates["database_url"] = stack.enter_context(embedded_database(settings.data_dir))
            if bus and not settings.nats_url:
                updates["nats_url"] = stack.enter_context(embedded_bus(settings.data_dir))
        except (EmbeddedStartError, OSError) as exc:
            console.print(f"[red]cannot start the embedded servers in {settings.data_dir}:[/red] {exc}")
            raise typer.Exit(2) from None
        if updates:
            console.print(f"using the embedded servers in {settings.data_dir.resolve()}", style="dim")
        yield settings.model_copy(update=updates)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Apply the schema migrations that are missing (safe to run from several replicas)."""
    with _servers(_settings(config, data_dir)) as settings:
        _migrate(settings)


def _migrate(settings: Settings) -> None:

    async def run() -> list[str]:
        pool = await connect_pool(str(settings.database_url), settings.db_schema, max_size=1)
        try:
            return await migrate(pool)
        finally:
            await pool.close()

    try:
        applied = asyncio.run(run())
    except (MigrationError, DatabaseError) as exc:
        raise _fail(exc) from None
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Walk the hash chain; name the first altered, inserted or deleted audit row."""
    with _servers(_settings(config, data_dir)) as settings:
        _verify(settings)


def _verify(settings: Settings) -> None:

    async def run() -> VerifyResult:
        pool = await connect_pool(str(settings.database_url), settings.db_schema, max_size=1)
        try:
            return await verify_chain(pool)
        finally:
            await pool.close()

    try:
        result = asyncio.run(run())
    except DatabaseError as exc:
        raise _fail(exc) from None
    _print_unapplied(result)
    if result.ok:
        console.print(f"[green]audit chain intact[/green] ({result.rows_checked} rows)")
        return
    console.print(f"[red]audit chain broken[/red]: row {result.row_id} {result.problem} — {result.detail}")
    raise typer.Exit(1)


def _print_unapplied(result: VerifyResult) -> None:
    """Events the projector recorded instead of applying: the views lack them, an operator must look."""
    if not result.unapplied:
        return
    console.print(f"[yellow]{len(result.unapplied)} event(s) recorded as unapplied[/yellow] (in the chain):")
    for row in result.unapplied:
        line = f"  row {row.row_id}  {row.event_id}  {row.event_type}: {row.reason[:300]}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _parse_until(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use ISO 8601, e.g. 2025-03-01T12:00:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@audit_app.command("replay")
def audit_replay(
    until: Annotated[
        str | None, typer.Option(help="only events with occurred_at <= this time (ISO 8601)")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="schema to rebuild into (default <schema>_replay)")
    ] = None,
    replace: Annotated[bool, typer.Option(help="drop the target schema first if it exists")] = False,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Rebuild every view from stream sequence 1 into a fresh schema and compare it with the live one."""
    with _servers(_settings(config, data_dir), bus=True) as settings:
        _replay_command(settings, until, target, replace=replace)


def _replay_command(settings: Settings, until: str | None, target: str | None, *, replace: bool) -> None:
    until_at = _parse_until(until)
    target_schema = target or f"{settings.db_schema}_replay"
    if target_schema == settings.db_schema:
        raise typer.BadParameter("the target must differ from the live schema")
    try:
        report = asyncio.run(_replay(settings, target_schema, until_at, replace=replace))
    except (ReplayError, MigrationError, DatabaseError, OSError) as exc:
        raise _fail(exc) from None
    _print_report(report)
    if report.equal is False:
        raise typer.Exit(1)


async def _replay(settings: Settings, target: str, until: datetime | None, *, replace: bool) -> ReplayReport:
    database_url = str(settings.database_url)
    if replace:
        pool = await connect_pool(database_url, target, max_size=1)
        try:
            await pool.execute(f"DROP SCHEMA IF EXISTS {quote_schema(target)} CASCADE")
        finally:
            await pool.close()
    if not settings.nats_url:
        raise ReplayError("NATS_URL is not set: the event stream is unknown")
    bus = await Bus.connect(settings.nats_url, Topology.from_settings(settings))
    try:
        live = settings.db_schema if until is None else None  # a cut-off history cannot equal the live views
        return await replay(bus, database_url, target, until=until, live_schema=live)
    finally:
        await bus.close()


def _print_report(report: ReplayReport) -> None:
    console.print(
        f"replayed {report.events_read} events (applied {report.events_applied},"
        f" last seq {report.last_stream_seq}) into {report.target_schema}"
        f" in {report.seconds:.1f}s ({report.events_per_second:,.0f} events/s)"
    )
    table = Table("view", "rebuilt", "live", "equal")
    for name, digest in report.digests.items():
        live = (report.live_digests or {}).get(name)
        equal = "-" if live is None else ("yes" if live == digest else "[red]NO[/red]")
        table.add_row(name, digest[:24], (live or "-")[:24], equal)
    console.print(table)
