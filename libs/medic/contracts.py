"""Event contracts for other teams: JSON Schema per event and an AsyncAPI document, in proto/.

Generated from the models in :mod:`medic.events`; ``medic proto --check`` (and a test)
fail when proto/ no longer matches the code. ``proto/published/`` keeps each released
version's schema; a test refuses a change that removes or retypes a published field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medic.bus import Topology
from medic.events import EVENT_TYPES, subject_token


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def event_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for model in EVENT_TYPES:
        name = model.model_fields["event_type"].default
        version = model.model_fields["schema_version"].default
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://ci-medic.dev/events/{name}.v{version}.json"
        schemas[f"{name}.v{version}"] = schema
    return schemas


@dataclass(frozen=True)
class ServiceRole:
    """What one service consumes and produces, by event type name (from its declarations)."""

    consumes: tuple[str, ...]
    produces: tuple[str, ...]


def asyncapi(roles: Mapping[str, ServiceRole], topology: Topology | None = None) -> dict[str, Any]:
    """The AsyncAPI document: channels per event type, operations per service (who sends, who reads)."""
    t = topology or Topology()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in EVENT_TYPES:
        name = model.model_fields["event_type"].default
        version = model.model_fields["schema_version"].default
        token = subject_token(name)
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {"type": "string", "description": "= event_id; JetStream drops repeats"},
                    "Medic-Event-Type": {"type": "string", "const": name},
                    "traceparent": {"type": "string", "description": "W3C trace context"},
                },
            },
            "payload": {"$ref": f"./events/{name}.v{version}.json"},
        }
        channels[token] = {
            "address": t.subject(name),
            "description": f"{name} events, stream {t.stream}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        for service, role in sorted(roles.items()):
            for action, names in (("send", role.produces), ("receive", role.consumes)):
                if name in names:
                    operations[f"{service.replace('-', '_')}_{action}_{token}"] = {
                        "action": action,
                        "channel": {"$ref": f"#/channels/{token}"},
                        "x-service": service,
                    }
    channels["dead_letters"] = {
        "address": f"{t.prefix}.dlq.{{service}}",
        "description": f"Events a service could not handle (stream {t.dlq_stream}); headers Medic-Error, "
        "Medic-Service, Medic-Stream-Seq, Medic-Num-Delivered",
        "parameters": {"service": {"description": "the consuming service"}},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ci-medic events",
            "version": "1",
            "description": f"Every fact ci-medic records, on JetStream stream {t.stream}.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered(roles: Mapping[str, ServiceRole]) -> dict[str, str]:
    files = {f"events/{key}.json": _dump(schema) for key, schema in event_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi(roles))
    return files


def write_contracts(root: Path, roles: Mapping[str, ServiceRole], *, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) proto/; return the stale file names."""
    stale: list[str] = []
    for name, text in rendered(roles).items():
        path = root / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    published = root / "published"
    if not check:
        published.mkdir(parents=True, exist_ok=True)
        for key, schema in event_schemas().items():
            target = published / f"{key}.json"
            if not target.exists():  # a published version is frozen: never overwritten
                target.write_text(_dump(schema))
    return stale
