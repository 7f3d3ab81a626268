"""Where each effective setting came from, and a file checked on its own.

``medic config show`` answers "why is the threshold 3?": every key with its value (secrets
masked) and its source, one of ``default``, ``file``, ``environment`` or, for a repository's
own values, ``repository override``. ``medic config check FILE`` validates a file alone (the
environment of the shell running the check is not the pods'), naming every bad key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from medic.config import ConfigError, Settings, _config_file, _TomlFileSource, load_settings

MASK = "********"


@dataclass(frozen=True)
class SettingRow:
    key: str
    value: str
    source: str


def env_names(name: str) -> tuple[str, ...]:
    """The environment variables that can set field ``name`` (``MEDIC_X`` and any alias)."""
    field = Settings.model_fields[name]
    names = [f"MEDIC_{name.upper()}"]
    if isinstance(field.validation_alias, AliasChoices):
        names += [c for c in field.validation_alias.choices if isinstance(c, str)]
    return tuple(dict.fromkeys(names))


def _file_keys(path: Path | None) -> set[str]:
    if path is None:
        return set()
    with _scoped(path):
        raw = _TomlFileSource(Settings)()
    aliases = {alias: name for name in Settings.model_fields for alias in env_names(name)}
    return {aliases.get(key, key) for key in raw}


class _scoped:
    """Point the file source at ``path`` for the duration of a ``with`` block."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.token = _config_file.set(self.path)

    def __exit__(self, *exc: object) -> None:
        _config_file.reset(self.token)


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def mask_url_password(url: str) -> str:
    """``postgresql://medic:s3cret@db/medic`` -> ``postgresql://medic:********@db/medic``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", url)


def render(value: Any) -> str:
    """A value as shown to an operator; a secret, or a password inside a URL, is masked."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        value = mask_url_password(value)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, default=str, sort_keys=True)


def describe(
    settings: Settings, path: Path | None, environ: Mapping[str, str] | None = None
) -> list[SettingRow]:
    """Every key with its value and source; repository overrides one row per overridden value."""
    environ = os.environ if environ is None else environ
    from_file = _file_keys(path)
    rows: list[SettingRow] = []
    for name in Settings.model_fields:
        if name == "repository_configs":
            continue
        if any(env in environ for env in env_names(name)):
            source = "environment"
        elif name in from_file:
            source = "file"
        else:
            source = "default"
        rows.append(SettingRow(name, render(getattr(settings, name)), source))
    origin = "environment" if any(e in environ for e in env_names("repository_configs")) else "file"
    for repository, override in sorted(settings.repository_configs.items()):
        for key, value in override.model_dump(exclude_none=True).items():
            rows.append(
                SettingRow(
                    f"repository_configs.{repository}.{key}",
                    render(value),
                    f"repository override ({origin})",
                )
            )
    return rows


def effective(config_file: Path | None) -> tuple[Settings, list[SettingRow]]:
    settings = load_settings(config_file)
    return settings, describe(settings, config_file)


class _FileOnlySettings(Settings):
    """The settings model reading the file and nothing else (no environment, no ``.env``)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _TomlFileSource(settings_cls))


def check_file(path: Path) -> list[str]:
    """Problems in ``path`` alone, each naming its key; empty when the file is good."""
    try:
        with _scoped(path):
            _FileOnlySettings()
    except ConfigError as exc:
        return [str(exc)]
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()]
    return []
