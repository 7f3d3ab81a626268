"""The Helm chart, checked by the real tools: helm v4 lints and renders it, kubernetes-validate
checks every rendered object against Kubernetes 1.35's schemas, and the chart's own
``values.schema.json`` refuses bad values at install time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from medic.config import load_settings
from medic.services.composition import SERVICE_NAMES

from .tools import CHART, KUBERNETES_VERSION, PRODUCTION_VALUES, run, tool

SECRET_ENV = {
    "DATABASE_URL",
    "MEDIC_GITHUB_TOKEN",
    "MEDIC_GITHUB_WEBHOOK_SECRET",
    "MEDIC_GITHUB_APP_PRIVATE_KEY",
    "MEDIC_MODEL_API_KEY",
    "MEDIC_API_TOKEN",
}


def template(tmp_path: Path, *args: str) -> tuple[Path, list[dict[str, Any]]]:
    result = run(tool("helm"), "template", "medic", CHART, "--namespace", "ci", *args)
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(result.stdout)
    return rendered, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def test_helm_lint_strict_passes() -> None:
    for extra in ((), ("--values", str(PRODUCTION_VALUES))):
        result = run(tool("helm"), "lint", "--strict", CHART, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", ["defaults", "production"])
def test_rendered_manifests_are_valid_kubernetes(tmp_path: Path, values: str) -> None:
    args = ("--values", str(PRODUCTION_VALUES)) if values == "production" else ()
    rendered, docs = template(tmp_path, *args)
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(docs)  # every object was checked, none merely skipped


def test_kubernetes_validate_catches_a_wrong_manifest(tmp_path: Path) -> None:
    """The check above can fail: a misspelt field and a string replica count are refused."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i, imagePullPolicie: Always}]}\n"
    )
    result = run(tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, bad)
    assert result.returncode != 0


def test_one_hardened_deployment_per_service_with_probes(tmp_path: Path) -> None:
    _, docs = template(tmp_path)
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"medic-ci-medic-{name}" for name in SERVICE_NAMES}
    for name in SERVICE_NAMES:
        pod = deployments[f"medic-ci-medic-{name}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["service", name]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"]
        policy_volume = next(v for v in pod["volumes"] if v["name"] == "policy")
        assert policy_volume["configMap"]["name"] == "medic-ci-medic-policy"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "policy")
        assert "subPath" not in mount  # a subPath mount never sees a ConfigMap edit
    assert set(by_kind(docs, "Service")) == set(deployments)
    assert by_kind(docs, "ServiceAccount") and by_kind(docs, "NetworkPolicy")


def test_secrets_are_referenced_never_inlined(tmp_path: Path) -> None:
    _, docs = template(tmp_path, "--values", str(PRODUCTION_VALUES))
    assert not by_kind(docs, "Secret")
    for doc in by_kind(docs, "Deployment").values():
        env = {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}
        for name in SECRET_ENV & env.keys():
            assert "value" not in env[name]
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "ci-medic"


def test_migration_job_runs_before_install_and_upgrade(tmp_path: Path) -> None:
    _, docs = template(tmp_path)
    (job,) = by_kind(docs, "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]


def test_production_values_scale_ingress_and_replicate_the_stream(tmp_path: Path) -> None:
    _, docs = template(tmp_path, "--values", str(PRODUCTION_VALUES))
    assert set(by_kind(docs, "HorizontalPodAutoscaler")) == {
        "medic-ci-medic-analyzer",
        "medic-ci-medic-projector",
    }
    assert "replicas" not in by_kind(docs, "Deployment")["medic-ci-medic-analyzer"]["spec"]
    assert len(by_kind(docs, "PodDisruptionBudget")) == len(SERVICE_NAMES)
    (ingress,) = by_kind(docs, "Ingress").values()
    backends = {
        p["path"]: p["backend"]["service"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert backends == {
        "/webhooks": "medic-ci-medic-monitor",
        "/api/approvals": "medic-ci-medic-approval",
        "/api": "medic-ci-medic-projector",
        "/api/dashboard": "medic-ci-medic-dashboard",
        "/": "medic-ci-medic-dashboard",
    }
    dashboard_env = {e["name"]: e.get("value") for e in docs_env(docs, "medic-ci-medic-dashboard")}
    assert dashboard_env["MEDIC_DASHBOARD_API_URL"] == "https://ci-medic.acme.example"
    env = {e["name"]: e.get("value") for e in docs_env(docs, "medic-ci-medic-executor")}
    assert env["MEDIC_STREAM_REPLICAS"] == "3"


def docs_env(docs: list[dict[str, Any]], deployment: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = by_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    return env


def test_rendered_policy_file_is_accepted_by_the_services(tmp_path: Path) -> None:
    """The ConfigMap's medic.toml is what ``medic service`` loads: it must pass the same validation."""
    _, docs = template(tmp_path, "--values", str(PRODUCTION_VALUES))
    toml_text = by_kind(docs, "ConfigMap")["medic-ci-medic-policy"]["data"]["medic.toml"]
    tomllib.loads(toml_text)
    path = tmp_path / "medic.toml"
    path.write_text(toml_text)
    settings = load_settings(path)
    assert settings.risk_threshold == 3
    assert settings.protected_repositories == ("acme/payments", "acme/infra")
    assert settings.policy_for("acme/website").risk_threshold == 5
    assert settings.policy_for("acme/payments").auto_remediate is False


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("services.monitor.replicas=-1", "/services/monitor/replicas"),
        ("services.analyzer.replicas=two", "/services/analyzer/replicas"),
        ("nats.streamReplicas=2", "/nats/streamReplicas"),
        ("replicaCount=3", "replicaCount"),
        ("services.executor.replica=2", "replica"),
        ("services.dispatcher.enabled=true", "dispatcher"),
        ("policy.risk_threshold=11", "/policy/risk_threshold"),
        ("policy.risk_treshold=3", "risk_treshold"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("env.MEDIC_GITHUB_TOKEN=ghp_inline", "/env"),
        ("services.monitor.podDisruptionBudget.minAvailable=-1", "minAvailable"),
    ],
)
def test_bad_values_are_refused_by_the_schema(setting: str, complaint: str) -> None:
    result = run(tool("helm"), "template", "medic", CHART, "--set", setting)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_notes_tell_what_to_do_next() -> None:
    result = run(tool("helm"), "install", "medic", CHART, "--dry-run=client", "--namespace", "ci")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n ci create secret generic ci-medic" in notes
    assert "/webhooks/github" in notes
