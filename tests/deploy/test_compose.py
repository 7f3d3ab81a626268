"""``docker-compose.yml`` against the Compose specification's schema, and the system it describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from medic.config import Settings
from medic.services.composition import SERVICE_NAMES

from .tools import ROOT, run, tool

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_meets_the_compose_specification() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_compose_file(tmp_path: Path) -> None:
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(
        "services:\n  web:\n    image: x\n    depends_on:\n      db: {condition: when_it_feels_like_it}\n"
        "    restart: sometimes\n"
    )
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", bad)
    assert result.returncode == 1
    assert "when_it_feels_like_it" in result.stdout or "condition" in result.stdout


def test_every_service_runs_in_its_own_container_after_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICE_NAMES:
        svc = services[name]
        assert svc["command"] == ["service", name]
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert svc["depends_on"]["nats"] == {"condition": "service_healthy"}
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert svc["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://jaeger:4318")
        assert svc.get("read_only") is True
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_infrastructure_keeps_its_data_and_jaeger_takes_otlp(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nats = services["nats"]
    assert "--jetstream" in nats["command"] or "-js" in nats["command"]
    assert any(v.startswith("nats-data:") for v in nats["volumes"])
    assert any(v.startswith("postgres-data:") for v in services["postgres"]["volumes"])
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert set(compose["volumes"]) >= {"nats-data", "postgres-data"}
    for svc in services.values():  # every image pinned to a tag, none floating
        if "image" in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest")


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    """Credentials come from ``.env`` by interpolation; a literal one would be committed."""
    secretish = re.compile(r"(?i)token|secret|password|api_key|private_key|database_url")
    checked = 0
    for svc in compose["services"].values():
        for name, value in (svc.get("environment") or {}).items():
            if secretish.search(name):
                checked += 1
                assert "${" in str(value), f"{name} is written literally"
    assert checked >= 2  # postgres' password and the services' DATABASE_URL at least


def test_env_example_names_only_real_settings() -> None:
    """A typo in ``.env.example`` would be copied into every user's ``.env`` and refused at start-up."""
    fields = {f"MEDIC_{name.upper()}" for name in Settings.model_fields}
    names = [
        match.group(1)
        for match in re.finditer(r"(?m)^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text())
    ]
    medic_names = [n for n in names if n.startswith("MEDIC_")]
    assert medic_names, "the example documents the MEDIC_* settings"
    assert set(medic_names) <= fields, set(medic_names) - fields
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(names)
