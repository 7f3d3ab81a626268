"""``medic config check FILE`` and ``medic config show``: the operator's view of settings.

Exit codes: 0 fine, 1 the file has problems, 2 the settings cannot be built at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medic.config import ConfigError, resolve_config_path
from medic.config_sources import check_file, effective

config_app = typer.Typer(
    help="Settings: validate a file, show the effective values and their sources.", rich_markup_mode=None
)
console = Console()
errors = Console(stderr=True)


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="A TOML settings file (e.g. the ConfigMap's medic.toml)")],
) -> None:
    """Validate a settings file on its own; every bad key is named."""
    problems = check_file(file)
    if problems:
        for problem in problems:
            errors.print(f"[red]{file}:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{file}: ok")


@config_app.command("show")
def config_show(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML settings file (also MEDIC_CONFIG)", envvar="MEDIC_CONFIG"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """The effective settings and where each came from (default, file, environment, repository override)."""
    path = resolve_config_path(config)
    try:
        _, rows = effective(path)
    except ConfigError as exc:
        errors.print(f"[red]configuration error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if json_output:
        import json

        typer.echo(json.dumps({r.key: {"value": r.value, "source": r.source} for r in rows}, indent=2))
        return
    table = Table("key", "value", "source", title=f"config file: {path or 'none'}")
    for row in rows:
        table.add_row(row.key, row.value, row.source)
    console.print(table)
