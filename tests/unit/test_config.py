"""Settings: environment over file over defaults, per-repository policy, and clean refusals."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from medic.config import DEFAULT_AUTO_ACTIONS, ConfigError, load_settings
from medic.events import ActionKind

_AMBIENT = ("NATS_URL", "DATABASE_URL", "MEDIC_NATS_URL", "MEDIC_DATABASE_URL", "MEDIC_CONFIG")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test run itself may set NATS_URL or MEDIC_*; each test starts from none of them."""
    for name in list(os.environ):
        if name.startswith("MEDIC_") or name in _AMBIENT:
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "medic.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- precedence -------------------------------------------------------------------------


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load_settings(config_file=write(tmp_path, ""))
    assert settings.risk_threshold == 4
    assert settings.approval_timeout_hours == 24.0
    assert settings.protected_repositories == ()
    assert settings.nats_url is None


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, 'risk_threshold = 6\napproval_timeout_hours = 2.5\nmodel_name = "m"\n')
    settings = load_settings(config_file=path)
    assert (settings.risk_threshold, settings.approval_timeout_hours, settings.model_name) == (6, 2.5, "m")
    assert settings.max_auto_attempts == 2  # untouched keys keep their defaults


def test_medic_table_is_read_when_present(tmp_path: Path) -> None:
    path = write(tmp_path, "risk_threshold = 1\n[medic]\nrisk_threshold = 8\n")
    assert load_settings(config_file=path).risk_threshold == 8


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'risk_threshold = 6\nmodel_name = "from-file"\n')
    monkeypatch.setenv("MEDIC_RISK_THRESHOLD", "9")
    settings = load_settings(config_file=path)
    assert settings.risk_threshold == 9
    assert settings.model_name == "from-file"


def test_explicit_overrides_beat_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIC_RISK_THRESHOLD", "9")
    assert load_settings(config_file=write(tmp_path, ""), risk_threshold=2).risk_threshold == 2


def test_environ_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "risk_threshold = 3\n")
    assert load_settings(environ_config=str(path)).risk_threshold == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("octo-org/a,octo-org/b", ("octo-org/a", "octo-org/b")),
        (" octo-org/a , , octo-org/b ,", ("octo-org/a", "octo-org/b")),
        ('["octo-org/a", "octo-org/b"]', ("octo-org/a", "octo-org/b")),
        ("", ()),
    ],
)
def test_protected_repositories_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("MEDIC_PROTECTED_REPOSITORIES", raw)
    assert load_settings(config_file=write(tmp_path, "")).protected_repositories == expected


def test_protected_repositories_from_file_list(tmp_path: Path) -> None:
    path = write(tmp_path, 'protected_repositories = ["octo-org/a"]\n')
    assert load_settings(config_file=path).protected_repositories == ("octo-org/a",)


@pytest.mark.parametrize(("name", "field"), [("NATS_URL", "nats_url"), ("DATABASE_URL", "database_url")])
def test_unprefixed_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, field: str) -> None:
    monkeypatch.setenv(name, "scheme://plain")
    assert getattr(load_settings(config_file=write(tmp_path, "")), field) == "scheme://plain"


@pytest.mark.parametrize(("name", "field"), [("NATS_URL", "nats_url"), ("DATABASE_URL", "database_url")])
def test_prefixed_alias_wins_over_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, field: str
) -> None:
    monkeypatch.setenv(name, "scheme://plain")
    monkeypatch.setenv(f"MEDIC_{name}", "scheme://prefixed")
    assert getattr(load_settings(config_file=write(tmp_path, "")), field) == "scheme://prefixed"


def test_infrastructure_urls_by_field_name_in_file_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'nats_url = "nats://file:4222"\ndatabase_url = "postgresql://file/db"\n')
    settings = load_settings(config_file=path)
    assert settings.nats_url == "nats://file:4222"
    assert settings.database_url == "postgresql://file/db"
    monkeypatch.setenv("NATS_URL", "nats://env:4222")
    assert load_settings(config_file=path).nats_url == "nats://env:4222"
    assert load_settings(config_file=path, nats_url="nats://flag:1").nats_url == "nats://flag:1"


# --- per-repository policy --------------------------------------------------------------

POLICY_FILE = """
risk_threshold = 4
protected_repositories = ["octo-org/billing-api"]
[slack_channels]
default = "#ci"
[repository_configs."octo-org/octo-repo"]
risk_threshold = 7
slack_channel = "#octo"
allowed_actions = ["rerun_workflow"]
[repository_configs."Octo-Org/Web-Frontend"]
auto_remediate = false
[repository_configs."octo-org/billing-api"]
risk_threshold = 2
[repository_configs."octo-org/sandbox"]
protected = false
"""


def test_policy_inherits_global_values(tmp_path: Path) -> None:
    policy = load_settings(config_file=write(tmp_path, POLICY_FILE)).policy_for("octo-org/other")
    assert policy.repository == "octo-org/other"
    assert policy.risk_threshold == 4
    assert policy.auto_remediate is True
    assert policy.protected is False
    assert policy.slack_channel == "#ci"
    assert policy.allowed_actions == DEFAULT_AUTO_ACTIONS


def test_policy_applies_repository_overrides(tmp_path: Path) -> None:
    policy = load_settings(config_file=write(tmp_path, POLICY_FILE)).policy_for("octo-org/octo-repo")
    assert policy.risk_threshold == 7
    assert policy.slack_channel == "#octo"
    assert policy.allowed_actions == (ActionKind.RERUN_WORKFLOW,)
    assert policy.auto_remediate is True


def test_protected_list_and_override_combine(tmp_path: Path) -> None:
    settings = load_settings(config_file=write(tmp_path, POLICY_FILE))
    billing = settings.policy_for("Octo-Org/Billing-API")
    assert billing.protected is True  # the protected list is case-insensitive
    assert billing.risk_threshold == 2  # and the override is found whatever the case


@pytest.mark.parametrize("name", ["Octo-Org/Web-Frontend", "octo-org/web-frontend", "OCTO-ORG/WEB-FRONTEND"])
def test_repository_override_lookup_ignores_case(tmp_path: Path, name: str) -> None:
    policy = load_settings(config_file=write(tmp_path, POLICY_FILE)).policy_for(name)
    assert policy.auto_remediate is False


def test_override_can_unprotect(tmp_path: Path) -> None:
    text = POLICY_FILE.replace('["octo-org/billing-api"]', '["octo-org/billing-api", "octo-org/sandbox"]')
    settings = load_settings(config_file=write(tmp_path, text))
    assert settings.policy_for("octo-org/sandbox").protected is False


def test_repository_configs_from_environment_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIC_REPOSITORY_CONFIGS", '{"o/r": {"risk_threshold": 9}}')
    assert load_settings(config_file=write(tmp_path, "")).policy_for("o/r").risk_threshold == 9


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("risk_threshold = 11\n", "risk_threshold"),
        ("risk_threshold = -1\n", "risk_threshold"),
        ('risk_threshold = "abc"\n', "risk_threshold"),
        ("approval_timeout_hours = -1\n", "approval_timeout_hours"),
        ("approval_timeout_hours = 0\n", "approval_timeout_hours"),
        ("bogus_key = 1\n", "bogus_key"),
        ('[repository_configs."o/r"]\nbogus = 1\n', "repository_configs.o/r.bogus"),
        ('[repository_configs."o/r"]\nrisk_threshold = 11\n', "repository_configs.o/r.risk_threshold"),
        (
            '[repository_configs."o/r"]\nallowed_actions = ["rm -rf"]\n',
            "repository_configs.o/r.allowed_actions",
        ),
        ('stream_name = "a.b"\n', "stream_name"),
        ("http_port = 70000\n", "http_port"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, text))
    assert key in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("MEDIC_RISK_THRESHOLD", "11", "risk_threshold"),
        ("MEDIC_RISK_THRESHOLD", "abc", "risk_threshold"),
        ("MEDIC_APPROVAL_TIMEOUT_HOURS", "-3", "approval_timeout_hours"),
        ("MEDIC_PROTECTED_REPOSITORIES", "[not json", "protected_repositories"),
        ("MEDIC_SLACK_CHANNELS", "not json", "slack_channels"),
        ("MEDIC_REPOSITORY_CONFIGS", '{"o/r": {"nope": 1}}', "repository_configs"),
    ],
)
def test_bad_environment_values_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, ""))
    assert key in str(caught.value)


def test_every_bad_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, "risk_threshold = 11\nmax_deliver = 0\n"))
    assert "risk_threshold" in str(caught.value) and "max_deliver" in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_settings(config_file=path)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_settings(config_file=tmp_path)  # a directory cannot be read as a file


@pytest.mark.parametrize(
    "text",
    [
        "risk_threshold = \n",
        "[medic\n",
        "a = 1\na = 2\n",
        b"risk_threshold = '\xff\xfe'\n",
    ],
)
def test_invalid_toml_is_named(tmp_path: Path, text: str | bytes) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(config_file=path)
    assert str(path) in str(caught.value)


def test_medic_must_be_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "medic = 5\n")
    with pytest.raises(ConfigError, match=r"\[medic\] must be a table"):
        load_settings(config_file=path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('risk_threshold = "' + "9" * 1_000_000 + '"\n', "risk_threshold"),
        ('model_name = "ok"\nstream_name = "' + "x;" * 500_000 + '"\n', "stream_name"),
        ("risk_threshold = {a = {b = [1, {c = [[[2]]]}]}}\n", "risk_threshold"),
        (
            '[repository_configs."o/r"]\nrisk_threshold = [[{x = 1}]]\n',
            "repository_configs.o/r.risk_threshold",
        ),
        ('slack_channels = [1, "two", {three = 3}]\n', "slack_channels"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
        ("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", "not valid TOML"),
    ],
)
def test_hostile_file_gives_a_short_clean_error(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, text))
    message = str(caught.value)
    assert key in message
    assert len(message) < 2000, "the error must not echo the hostile value"


# --- Slack ------------------------------------------------------------------------------


def test_slack_settings_and_approvers_global_with_a_repository_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        'critical_risk = 8\n[repository_configs."o/payments"]\napprovers = ["S0PAYLEADS"]\n'
        'slack_channel = "#payments"\n',
    )
    monkeypatch.setenv("MEDIC_APPROVERS", "U0ALICE001, U0BOB00002")
    monkeypatch.setenv("MEDIC_SLACK_BOT_TOKEN", "xoxb-1")
    settings = load_settings(config_file=path)
    assert settings.approvers == ("U0ALICE001", "U0BOB00002")
    assert settings.policy_for("o/other").approvers == ("U0ALICE001", "U0BOB00002")
    assert settings.policy_for("O/Payments").approvers == ("S0PAYLEADS",)
    assert settings.policy_for("o/payments").slack_channel == "#payments"
    assert settings.critical_risk == 8
    assert settings.slack_bot_token is not None and "xoxb-1" not in repr(settings)
    assert settings.slack_channels["critical"] == "#ci-medic-critical"
    assert settings.dashboard_url() == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("key", "value"), [("critical_risk", "11"), ("slack_messages_per_second", "0"), ("approvers", "[1")]
)
def test_bad_slack_settings_name_the_key(monkeypatch: pytest.MonkeyPatch, key: str, value: str) -> None:
    monkeypatch.setenv(f"MEDIC_{key.upper()}", value)
    with pytest.raises(ConfigError, match=key):
        load_settings()
