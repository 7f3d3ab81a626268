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


def test_the_command_loads_without_the_bus_the_database_driver_or_the_model_client() -> None:
    """``medic --help`` pays only for what it shows: a fresh interpreter imports the CLI and lists
    the modules it brought in (structural, so it holds on a loaded machine too)."""
    import subprocess
    import sys

    heavy = ("nats", "asyncpg", "openai", "githubkit", "httpx", "medic.bus", "medic.config")
    probe = f"import sys, medic.services.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(  # noqa: S603 - our interpreter, a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == ""


def test_lazy_groups_carry_their_modules_own_help() -> None:
    import importlib

    from medic.services.cli import LAZY_GROUPS

    for name, (target, help_text) in LAZY_GROUPS.items():
        module, attr = target.split(":")
        sub_app = getattr(importlib.import_module(module), attr)
        assert sub_app.info.help == help_text, name
