"""`medic config check` names bad keys; `medic config show` tells sources and masks secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medic.services.cli import app

runner = CliRunner()
TOKEN = "tok-show-91c2"
DB_PASSWORD = "pg-pass-55e1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MEDIC_") or name in {"NATS_URL", "DATABASE_URL"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./medic.toml from the checkout


def test_check_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "medic.toml"
    path.write_text(
        'risk_threshold = 3\n[repository_configs."acme/web"]\nallowed_actions = ["clear_cache"]\n'
    )
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("risk_threshold = 13\n", "risk_threshold"),
        ("risk_treshold = 3\n", "risk_treshold"),
        ('[repository_configs."acme/web"]\nrisk_thresold = 6\n', "repository_configs.acme/web.risk_thresold"),
        ("risk_threshold = \n", "not valid TOML"),
        ("protected_repositories = 7\n", "protected_repositories"),
    ],
)
def test_check_names_each_bad_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert named in result.output


def test_check_judges_the_file_not_the_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad variable in the operator's shell is not a problem of the file being checked."""
    monkeypatch.setenv("MEDIC_RISK_THRESHOLD", "99")
    path = tmp_path / "medic.toml"
    path.write_text("risk_threshold = 3\n")
    assert runner.invoke(app, ["config", "check", str(path)]).exit_code == 0


def test_check_of_a_missing_file_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_show_gives_each_source_and_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "medic.toml"
    path.write_text(
        f'risk_threshold = 3\nmax_auto_attempts = 3\napi_token = "{TOKEN}"\n'
        '[repository_configs."acme/web"]\nrisk_threshold = 6\n'
    )
    monkeypatch.setenv("MEDIC_MAX_AUTO_ATTEMPTS", "1")
    monkeypatch.setenv("DATABASE_URL", f"postgresql://medic:{DB_PASSWORD}@db:5432/medic")
    result = runner.invoke(app, ["config", "show", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["risk_threshold"] == {"value": "3", "source": "file"}
    assert shown["max_auto_attempts"] == {"value": "1", "source": "environment"}
    assert shown["approval_timeout_hours"]["source"] == "default"
    assert shown["repository_configs.acme/web.risk_threshold"] == {
        "value": "6",
        "source": "repository override (file)",
    }
    assert shown["api_token"] == {"value": "********", "source": "file"}
    assert TOKEN not in result.output and DB_PASSWORD not in result.output
    assert "medic:********@db" in shown["database_url"]["value"]


def test_show_refuses_bad_settings_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "medic.toml"
    path.write_text("risk_threshold = 13\n")
    result = runner.invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2
    assert "risk_threshold" in result.output


def test_show_as_a_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "risk_threshold" in result.output and "default" in result.output
