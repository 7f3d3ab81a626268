"""Settings: environment (``MEDIC_*``) over a TOML file over defaults, validated at start-up.

One :class:`Settings` object is built by :func:`load_settings` in the composition root and
passed down; nothing reads the environment at import time. A bad value stops start-up with
:class:`ConfigError`, whose message names the key.
"""

from __future__ import annotations

import json
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from medic.access import AccessPolicy, PersonalToken, Scope
from medic.events import ActionKind

_T = TypeVar("_T")
_config_file: ContextVar[Path | None] = ContextVar("medic_config_file", default=None)


class ConfigError(ValueError):
    """Start-up refused: the message names every bad key and why."""


class PolicyOverrides(BaseModel):
    """Safety-policy values an organisation or a repository may override; ``None`` inherits.

    The repository's value beats its organisation's, which beats the global one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository_hourly_budget: int | None = Field(default=None, ge=0, le=100_000)
    breaker_threshold: int | None = Field(default=None, ge=1, le=1000)
    dry_run: bool | None = None
    incident_hold: bool | None = None
    protected_branches: tuple[str, ...] | None = None
    fix_allowed_paths: tuple[str, ...] | None = None
    fix_denied_paths: tuple[str, ...] | None = None
    allow_workflow_edits: bool | None = None


class OrganisationConfig(PolicyOverrides):
    """Per-organisation overrides (keyed by owner, e.g. ``octo-org``)."""

    organisation_hourly_budget: int | None = Field(default=None, ge=0, le=1_000_000)


class RepositoryConfig(PolicyOverrides):
    """Per-repository overrides; ``None`` means "inherit the global value"."""

    risk_threshold: int | None = Field(default=None, ge=0, le=10)
    auto_remediate: bool | None = None
    protected: bool | None = None
    slack_channel: str | None = None
    allowed_actions: tuple[ActionKind, ...] | None = None
    rules_file: Path | None = None
    """Extra analyzer rules for this repository, over the organisation's and the shipped ones."""
    approvers: tuple[str, ...] | None = None
    """Who may approve this repository's risky fixes (Slack user ids ``U…`` or user groups ``S…``)."""


class RepositoryPolicy(BaseModel):
    """The effective policy for one repository after overrides are applied."""

    model_config = ConfigDict(frozen=True)

    repository: str
    risk_threshold: int
    auto_remediate: bool
    protected: bool
    slack_channel: str
    allowed_actions: tuple[ActionKind, ...]
    approvers: tuple[str, ...] = ()


class GuardPolicy(BaseModel):
    """The effective safety policy for one repository: budgets, breaker, holds, branches, scope."""

    model_config = ConfigDict(frozen=True)

    repository: str
    organisation: str
    repository_hourly_budget: int
    organisation_hourly_budget: int
    breaker_threshold: int
    kill_switch: bool
    dry_run: bool
    incident_hold: bool
    incident_repositories: int
    incident_window_minutes: float
    incident_hold_minutes: float
    protected_branches: tuple[str, ...]
    fix_allowed_paths: tuple[str, ...]
    fix_denied_paths: tuple[str, ...]
    allow_workflow_edits: bool


DEFAULT_AUTO_ACTIONS = (ActionKind.RERUN_FAILED_JOBS, ActionKind.RERUN_WORKFLOW, ActionKind.CLEAR_CACHE)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEDIC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # --- policy (the seed's keys) ---
    risk_threshold: int = Field(default=4, ge=0, le=10)
    """Auto-remediation is allowed only for risk at or below this value."""
    protected_repositories: Annotated[tuple[str, ...], NoDecode] = ()
    """``a/b,c/d`` or a JSON list; NoDecode lets the comma form reach the validator."""
    slack_channels: dict[str, str] = Field(
        default_factory=lambda: {
            "default": "#ci-medic",
            "approvals": "#ci-medic-approvals",
            "critical": "#ci-medic-critical",
        }
    )
    approval_timeout_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    polling_interval_minutes: float = Field(default=5.0, gt=0, le=24 * 60)
    repository_configs: dict[str, RepositoryConfig] = Field(default_factory=dict)
    max_auto_attempts: int = Field(default=2, ge=1, le=10)
    """A run already re-run this many times is not re-run again without a human."""

    # --- safety policy (global values; organisation_configs and repository_configs override) ---
    kill_switch: bool = False
    """Stops every automatic action at once (also switchable at run time: API and CLI)."""
    dry_run: bool = False
    """Decide and record as usual, execute nothing."""
    repository_hourly_budget: int = Field(default=10, ge=0, le=100_000)
    """At most this many automatic remediations per repository per hour; beyond, a person decides."""
    organisation_hourly_budget: int = Field(default=50, ge=0, le=1_000_000)
    breaker_threshold: int = Field(default=3, ge=1, le=1000)
    """After this many automatic remediations in a row that left CI red, a person must reset."""
    incident_hold: bool = True
    incident_repositories: int = Field(default=3, ge=2, le=1000)
    """Same infrastructure fingerprint in this many repositories within the window: hold re-runs."""
    incident_window_minutes: float = Field(default=10.0, gt=0, le=24 * 60)
    incident_hold_minutes: float = Field(default=30.0, gt=0, le=7 * 24 * 60)
    protected_branches: Annotated[tuple[str, ...], NoDecode] = ()
    """Branch globs (``main``, ``release/*``) whose failures always need a person."""
    fix_allowed_paths: Annotated[tuple[str, ...], NoDecode] = ("**",)
    fix_denied_paths: Annotated[tuple[str, ...], NoDecode] = ()
    allow_workflow_edits: bool = False
    """``.github/workflows/**`` reaches secrets: a fix may touch it only where this is allowed."""
    organisation_configs: dict[str, OrganisationConfig] = Field(default_factory=dict)

    # --- infrastructure ---
    nats_url: str | None = Field(default=None, validation_alias=AliasChoices("MEDIC_NATS_URL", "NATS_URL"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MEDIC_DATABASE_URL", "DATABASE_URL")
    )
    data_dir: Path = Path(".medic")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    stream_name: str = Field(default="MEDIC_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")
    subject_prefix: str = Field(default="medic", pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    db_schema: str = Field(default="medic", pattern=r"^[a-z_][a-z0-9_]*$")
    max_deliver: int = Field(default=5, ge=1, le=100)
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """Copies of the event stream JetStream keeps: 3 on a NATS cluster, 1 on a single server."""

    # --- outside world ---
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    github_max_wait_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long one GitHub call may wait (retries, a rate-limit reset) before the whole event is
    deferred until the reset instead."""
    github_max_in_flight: int = Field(default=8, ge=1, le=100)
    """GitHub requests one service process has on the wire at once (GitHub asks for few
    concurrent requests per token; a small pool also costs less CPU per request)."""
    github_webhook_secret: SecretStr | None = None
    """Comma-separated: several secrets are accepted while one is being rotated."""
    log_tail_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    verify_timeout_seconds: float = Field(default=600.0, gt=0)
    """How long the executor waits for the re-run to finish before calling it failed."""
    model_base_url: str | None = None
    model_api_key: SecretStr | None = None
    model_name: str = "gpt-4o-mini"
    rules_file: Path | None = None
    """The organisation's analyzer rules (YAML), over the shipped knowledge base."""
    analyzer_engine: Literal["auto", "hyperscan", "re2"] = "auto"
    """Multi-pattern engine for the rules; ``auto`` prefers hyperscan and falls back to RE2."""
    api_token: SecretStr | None = None
    """A shared token with the ``read`` scope only (dashboards, scripts): it names nobody, so it
    never approves. Setting it (or any identity source below) closes the API to anonymous reads."""
    api_tokens: dict[str, PersonalToken] = Field(default_factory=dict)
    """One token per person: ``name -> {sha256 = "<hex sha256 of the token>", scopes = [...]}``
    (scopes ``read``, ``approve``; both by default). The approver is recorded as ``token:<name>``."""
    proxy_identity_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    """A header an authenticating proxy sets to the signed-in user (``X-Forwarded-Email``),
    believed only from ``trusted_proxies``; recorded as ``proxy:<value>``."""
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    """Addresses or networks (``10.0.0.0/8``) whose ``proxy_identity_header`` is believed."""
    proxy_scopes: frozenset[Scope] = frozenset({Scope.READ, Scope.APPROVE})
    dashboard_api_url: str | None = None
    """Where the dashboard reads the query and approval APIs when it runs alone (``medic service
    dashboard``); unset: the host it runs in (``medic run``)."""

    # --- Slack ---
    slack_bot_token: SecretStr | None = None
    """``xoxb-…``; unset under ``medic run`` means the sandbox Slack."""
    slack_signing_secret: SecretStr | None = None
    """Verifies that requests to ``/slack/events`` come from Slack (HTTP mode)."""
    slack_app_token: SecretStr | None = None
    """``xapp-…``: Socket Mode instead of a public request URL."""
    slack_api_url: str = "https://slack.com/api/"
    slack_messages_per_second: float = Field(default=1.0, gt=0, le=50)
    """Per channel: Slack allows about one message a second in a channel."""
    critical_risk: int = Field(default=9, ge=0, le=10)
    """At or above this risk a failure is also told in the ``critical`` channel and needs two approvers."""
    approvers: Annotated[tuple[str, ...], NoDecode] = ()
    """Who may approve (Slack user ids ``U…``/``W…`` or user groups ``S…``); per repository in
    ``repository_configs.<repo>.approvers``. Empty everywhere: anyone may (the web API's token
    is then the only gate)."""
    notify_webhook_urls: Annotated[tuple[str, ...], NoDecode] = ()
    """Also send every stage as signed JSON here (Teams, PagerDuty-style receivers); env: comma-separated."""
    notify_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key of ``X-Medic-Signature-256``; required with ``notify_webhook_urls``."""
    public_url: str | None = None
    """Where people reach the dashboard (links in Slack); default ``http://<http_host>:<http_port>``."""

    # --- monitor: which repositories, how they are polled ---
    allowed_repositories: Annotated[tuple[str, ...], NoDecode] = ()
    """``owner/name`` or ``owner/*`` entries; webhooks for any other repository are ignored. Empty: all."""
    poll_repositories: Annotated[tuple[str, ...], NoDecode] = ()
    """Repositories polled every ``polling_interval_minutes`` (a safety net under lost webhooks)."""
    poll_organisations: Annotated[tuple[str, ...], NoDecode] = ()
    """Organisations whose every (non-archived) repository is polled."""
    poll_lookback_minutes: float = Field(default=60.0, ge=0, le=7 * 24 * 60)
    """On the first poll of a repository (no cursor yet), failures this recent are reported."""
    catch_up_polling: bool = True
    """Every repository that has sent a webhook is also polled, on start and every interval,
    so deliveries lost while the monitor was down are recovered (idle ones answer 304, free)."""
    github_app_id: int | None = Field(default=None, ge=1)
    """With a private key, the monitor and executor act as this GitHub App (wins over the token)."""
    github_app_private_key: SecretStr | None = None
    """The App's PEM private key, inline; or see ``github_app_private_key_file``."""
    github_app_private_key_file: Path | None = None

    @field_validator(
        "allowed_repositories",
        "poll_repositories",
        "poll_organisations",
        "approvers",
        "trusted_proxies",
        "notify_webhook_urls",
        mode="before",
    )
    @classmethod
    def _split_monitor_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("notify_webhook_urls")
    @classmethod
    def _webhook_urls_are_http(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not re.fullmatch(r"https?://[^\s]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> Settings:
        if self.notify_webhook_urls and self.notify_webhook_secret is None:
            raise ValueError(
                "notify_webhook_urls needs notify_webhook_secret (receivers verify the signature)"
            )
        return self

    @field_validator("protected_branches", "fix_allowed_paths", "fix_denied_paths", mode="before")
    @classmethod
    def _split_globs(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("protected_repositories", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)  # a JSONDecodeError becomes a validation error naming the key
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    def access_policy(self) -> AccessPolicy:
        """Who may read and who may approve over HTTP (see :mod:`medic.access`)."""
        return AccessPolicy(
            personal=self.api_tokens,
            shared_token=self.api_token,
            proxy_header=self.proxy_identity_header,
            trusted_proxies=self.trusted_proxies,
            proxy_scopes=self.proxy_scopes,
        )

    def webhook_secrets(self) -> tuple[str, ...]:
        if self.github_webhook_secret is None:
            return ()
        raw = self.github_webhook_secret.get_secret_value()
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def policy_for(self, repository: str) -> RepositoryPolicy:
        wanted = repository.lower()  # GitHub names are case-insensitive, like protected_repositories
        override = self.repository_configs.get(repository) or next(
            (config for name, config in self.repository_configs.items() if name.lower() == wanted),
            RepositoryConfig(),
        )
        protected = repository.lower() in {r.lower() for r in self.protected_repositories}
        return RepositoryPolicy(
            repository=repository,
            risk_threshold=_first(override.risk_threshold, self.risk_threshold),
            auto_remediate=_first(override.auto_remediate, True),
            protected=_first(override.protected, protected),
            slack_channel=_first(override.slack_channel, self.slack_channels.get("default", "#ci-medic")),
            allowed_actions=_first(override.allowed_actions, DEFAULT_AUTO_ACTIONS),
            approvers=_first(override.approvers, self.approvers),
        )

    def dashboard_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def guard_for(self, repository: str) -> GuardPolicy:
        """The safety policy of one repository: repository override > organisation > global."""
        owner = repository.split("/", 1)[0]
        repo = _lookup(self.repository_configs, repository) or RepositoryConfig()
        org = _lookup(self.organisation_configs, owner) or OrganisationConfig()

        def pick(name: str) -> Any:
            for layer in (repo, org):
                value = getattr(layer, name)
                if value is not None:
                    return value
            return getattr(self, name)

        return GuardPolicy(
            repository=repository,
            organisation=owner,
            repository_hourly_budget=pick("repository_hourly_budget"),
            organisation_hourly_budget=_first(
                org.organisation_hourly_budget, self.organisation_hourly_budget
            ),
            breaker_threshold=pick("breaker_threshold"),
            kill_switch=self.kill_switch,
            dry_run=pick("dry_run"),
            incident_hold=pick("incident_hold"),
            incident_repositories=self.incident_repositories,
            incident_window_minutes=self.incident_window_minutes,
            incident_hold_minutes=self.incident_hold_minutes,
            protected_branches=pick("protected_branches"),
            fix_allowed_paths=pick("fix_allowed_paths"),
            fix_denied_paths=pick("fix_denied_paths"),
            allow_workflow_edits=pick("allow_workflow_edits"),
        )


_C = TypeVar("_C")


def _lookup(configs: dict[str, _C], name: str) -> _C | None:
    """GitHub names are case-insensitive: an exact key first, then any casing."""
    if name in configs:
        return configs[name]
    wanted = name.lower()
    return next((config for key, config in configs.items() if key.lower() == wanted), None)


def _first(value: _T | None, default: _T) -> _T:
    return default if value is None else value


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by ``--config`` / ``MEDIC_CONFIG`` (``medic.toml`` if present)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is used instead

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        except RecursionError:
            raise ConfigError(f"config file {path} is not valid TOML: nested too deeply") from None
        section = data.get("medic", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: [medic] must be a table")
        keys = _aliased_keys(self.settings_cls)
        return {keys.get(key) or key: value for key, value in section.items()}


def _aliased_keys(settings_cls: type[BaseSettings]) -> dict[str, str]:
    """``nats_url`` / ``NATS_URL`` -> ``MEDIC_NATS_URL``: the key the environment source uses.

    The file names fields as written (``nats_url``); merged under another key than the
    environment's, it would be refused as unknown, or beat the environment.
    """
    keys: dict[str, str] = {}
    for name, field in settings_cls.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            choices = [c for c in field.validation_alias.choices if isinstance(c, str)]
            for key in (name, *choices):
                keys[key] = choices[0]
    return keys


def resolve_config_path(config_file: Path | None = None, environ_config: str | None = None) -> Path | None:
    """The file :func:`load_settings` reads: ``--config``, else ``MEDIC_CONFIG``, else ``./medic.toml``."""
    path = config_file or (Path(environ_config) if environ_config else None)
    if path is None and Path("medic.toml").is_file():
        path = Path("medic.toml")
    return path


def load_settings(
    config_file: Path | None = None, environ_config: str | None = None, **overrides: Any
) -> Settings:
    """Build the settings: explicit overrides > environment > config file > defaults.

    ``config_file`` is the ``--config`` flag; ``environ_config`` is ``MEDIC_CONFIG``.
    Without either, ``./medic.toml`` is read when it exists.
    """
    path = config_file or (Path(environ_config) if environ_config else None)
    if path is None and Path("medic.toml").is_file():
        path = Path("medic.toml")
    token = _config_file.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:  # an environment value that is not the JSON its field needs
        raise ConfigError(f"invalid configuration: {exc}") from None
    finally:
        _config_file.reset(token)
