"""The Grafana dashboard only queries metrics the code exports, under their exported names."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ci-medic.json"
INSTRUMENTED = (
    "medic.telemetry",
    "medic.llm.client",
    "medic.github.ratelimit",
    "medic.services.monitor.service",
    "medic.services.analyzer.service",
    "medic.services.safety_gate.service",
    "medic.services.executor.service",
    "medic.services.approval.service",
    "medic.services.projector.instruments",
)
METRIC = re.compile(r"\bmedic_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}


def exported_names(families: Iterable[Metric]) -> set[str]:
    """Series names as Prometheus scrapes them (a counter ``x`` is scraped as ``x_total``)."""
    return {f.name + suffix for f in families for suffix in SUFFIXES.get(f.type, ("",))}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", []) if "expr" in t]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    for module in INSTRUMENTED:
        importlib.import_module(module)
    known = exported_names(REGISTRY.collect())
    queried = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    assert queried, "the dashboard queries nothing"
    assert queried <= known, f"not exported by the code: {sorted(queried - known)}"


def test_the_named_metrics_all_have_a_panel(dashboard: dict[str, Any]) -> None:
    queried = {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}
    wanted = {
        "medic_failures_detected_total", "medic_webhooks_total", "medic_analyses_total",
        "medic_gate_decisions_total", "medic_remediations_total", "medic_approvals_total",
        "medic_approval_wait_seconds_bucket", "medic_consumer_pending", "medic_handler_seconds_bucket",
        "medic_events_handled_total", "medic_dead_letters_total", "medic_github_ratelimit_remaining",
        "medic_model_tokens_total", "medic_projection_lag_events",
    }  # fmt: skip
    assert wanted <= queried, sorted(wanted - queried)


def test_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    """What Grafana needs to import it as is: a uid, unique panel ids, the datasource variable."""
    assert dashboard["uid"] == "ci-medic"
    ids = [p["id"] for p in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in panels(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
