"""The `medic` command: clear errors and exit codes for bad input, before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medic.services.cli import app

runner = CliRunner()
LOG = Path(__file__).resolve().parents[1] / "data" / "logs" / "runner"


def test_unknown_service_is_refused_with_the_known_names() -> None:
    result = runner.invoke(app, ["service", "nope"])
    assert result.exit_code == 2
    assert "safety-gate" in result.output


def test_a_single_service_needs_a_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.delenv("MEDIC_NATS_URL", raising=False)
    result = runner.invoke(app, ["service", "analyzer"])
    assert result.exit_code == 2
    assert "NATS_URL" in result.output


def test_a_bad_setting_stops_start_up_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIC_RISK_THRESHOLD", "eleven")
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")
    result = runner.invoke(app, ["service", "analyzer"])
    assert result.exit_code == 2
    assert "risk_threshold" in result.output


def test_a_config_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "medic.toml"
    bad.write_text("risk_threshold = [unclosed")
    result = runner.invoke(app, ["service", "analyzer", "--config", str(bad)])
    assert result.exit_code == 2
    assert "medic.toml" in result.output


def test_analyze_prints_one_json_object(tmp_path: Path) -> None:
    log = next(LOG.glob("*.log"))
    result = runner.invoke(app, ["analyze", str(log), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"category", "risk", "confidence", "action", "fingerprint", "method", "excerpt"}
    assert all({"line", "text"} <= set(line) for line in report["excerpt"])


def test_analyze_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(tmp_path / "missing.log")])
    assert result.exit_code == 2


def test_proto_check_passes_on_a_current_tree() -> None:
    result = runner.invoke(app, ["proto", "--check"])
    assert result.exit_code == 0, result.output


def test_simulate_against_nothing_says_where_it_looked() -> None:
    result = runner.invoke(app, ["simulate", "--failures", "1", "--url", "http://127.0.0.1:9/sandbox/github"])
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output


def _modules_loaded(code: str, *names: str, env: dict[str, str] | None = None) -> list[str]:
    """Which of ``names`` a fresh interpreter has imported after running ``code``: structural, so
    it holds on a loaded machine too, and fails as soon as someone adds an eager import."""
    return _in_fresh_interpreter(code, f"[m for m in {names!r} if m in sys.modules]", env=env)


def _in_fresh_interpreter(code: str, listing: str, *, env: dict[str, str] | None = None) -> list[str]:
    """The list of strings ``listing`` evaluates to after ``code`` ran in a new interpreter."""
    import os
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint(','.join({listing}))"
    loaded = (
        subprocess.run(  # noqa: S603 - our interpreter, a fixed probe
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )
        .stdout.strip()
        .splitlines()
    )
    return [name for name in loaded[-1].split(",") if name] if loaded else []


STARTUP_HEAVY = (
    "nats",
    "asyncpg",
    "openai",
    "githubkit",
    "httpx",
    "opentelemetry",
    "medic.bus",
    "medic.config",
)
"""What no command pays for unless it uses it: the bus, the database driver, the model and
GitHub clients, the HTTP client, telemetry, the settings (pydantic-settings)."""


def test_the_command_loads_without_the_bus_the_database_driver_or_the_model_client() -> None:
    """``medic --help`` pays only for what it shows: not even the services' wiring (asyncio)."""
    assert (
        _modules_loaded("import medic.services.cli", *STARTUP_HEAVY, "asyncio", "medic.services.composition")
        == []
    )


def test_help_is_plain_text_and_loads_no_rich() -> None:
    """Typer's rich help imports rich's markdown and traceback modules: twice the cost of the
    help itself. Plain help keeps ``medic --help`` inside its 0.3 s budget (issue 12)."""
    run = (
        "import contextlib, io\n"
        "from medic.services.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    app(['--help'])\n"
        "assert out.getvalue().startswith('Usage: '), out.getvalue()[:200]"
    )
    assert _modules_loaded(run, "rich") == []


@pytest.mark.parametrize("group", ["audit", "db", "policy", "config"])
def test_every_groups_help_is_plain_text_too(group: str) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    first_line = result.output.splitlines()[0]
    assert first_line.startswith("Usage: ") and first_line.endswith(
        f" {group} [OPTIONS] COMMAND [ARGS]..."
    ), first_line
    assert not set(result.output) & set("╭╮╰╯│─"), "rich's boxes: the group lost rich_markup_mode=None"


def test_analyze_json_loads_only_the_analyzer(tmp_path: Path) -> None:
    """``medic analyze --json`` runs in a fresh interpreter with a cold and then a warm rules cache;
    neither run imports the services' wiring, the settings, rich (no report is printed) or, once
    the parsed rules are cached, the YAML parser."""
    log = next(LOG.glob("*.log"))
    run = (
        "import contextlib, io\n"
        "from medic.services.cli import app\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f'    app(["analyze", {str(log)!r}, "--json"])'
    )
    heavy = (*STARTUP_HEAVY, "asyncio", "medic.services.composition", "rich", "yaml")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert _modules_loaded(run, *heavy, env=env) == ["yaml"]  # cold: the rule file is parsed once
    assert _modules_loaded(run, *heavy, "medic.services.analyzer.offline", env=env) == [
        "medic.services.analyzer.offline"
    ]


def test_analyze_builds_only_the_contracts_it_uses(tmp_path: Path) -> None:
    """The event contracts are built on first use: ``medic analyze`` validates an excerpt and an
    action, not the thirty envelopes and payloads of the bus."""
    log = next(LOG.glob("*.log"))
    run = (
        "import contextlib, io, pydantic\n"
        "from medic.services.cli import app\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f'    app(["analyze", {str(log)!r}, "--json"])\n'
        "import medic.events as events\n"
        "models = [v for v in vars(events).values()\n"
        "          if isinstance(v, type) and issubclass(v, pydantic.BaseModel)]"
    )
    built = "sorted(m.__name__ for m in models if m.__pydantic_complete__)"
    assert _in_fresh_interpreter(run, built, env={"XDG_CACHE_HOME": str(tmp_path)}) == [
        "ExcerptLine",
        "ProposedAction",
    ]


def test_the_help_texts_copied_into_the_cli_are_the_services_own() -> None:
    from medic.services import cli, composition

    assert cli.SERVICE_NAMES == composition.SERVICE_NAMES
    assert cli.SANDBOX_GITHUB_PREFIX == composition.SANDBOX_GITHUB_PREFIX


def test_lazy_commands_carry_their_functions_own_help() -> None:
    import importlib

    from medic.services.cli import LAZY_COMMANDS

    for name, (target, help_text) in LAZY_COMMANDS.items():
        module, attr = target.split(":")
        doc = getattr(importlib.import_module(module), attr).__doc__
        assert doc is not None and doc.strip().splitlines()[0] == help_text, name
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and help_text in " ".join(result.output.split()), name


def test_lazy_groups_carry_their_modules_own_help() -> None:
    import importlib

    from medic.services.cli import LAZY_GROUPS

    for name, (target, help_text) in LAZY_GROUPS.items():
        module, attr = target.split(":")
        sub_app = getattr(importlib.import_module(module), attr)
        assert sub_app.info.help == help_text, name
