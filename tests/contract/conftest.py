"""Schema loading for the contract tests: GitHub's OpenAPI subset and octokit's webhook schemas.

OpenAPI 3.0 marks nullability with ``nullable: true`` instead of a ``null`` type, so schemas are
converted to plain JSON Schema before validation; ``$ref``s resolve inside the same file.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.contracts_dir import CONTRACTS as CONTRACTS_ROOT

CONTRACTS = CONTRACTS_ROOT / "github"
OPENAPI_FILE = CONTRACTS / "rest-api.openapi-subset.json"
WEBHOOK_SCHEMAS = CONTRACTS / "webhooks" / "schemas"


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes a ``null`` alternative."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in converted:
            kinds = converted["type"] if isinstance(converted["type"], list) else [converted["type"]]
            converted["type"] = [*kinds, "null"]
            if "enum" in converted and None not in converted["enum"]:
                converted["enum"] = [*converted["enum"], None]
        else:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


class OpenApi:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.converted = to_json_schema(document)

    def operation(self, template: str, method: str) -> dict[str, Any] | None:
        item = self.document["paths"].get(template)
        return None if item is None else item.get(method.lower())

    def response_validator(
        self, template: str, method: str, status: int
    ) -> jsonschema.Draft7Validator | None:
        operation = self.converted["paths"][template][method.lower()]
        response = operation["responses"][str(status)]
        if "$ref" in response:
            response = self._resolve(response["$ref"])
        content = response.get("content", {}).get("application/json")
        if content is None:
            return None
        schema = {"components": self.converted["components"], **content["schema"]}
        return jsonschema.Draft7Validator(schema)

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.converted
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return dict(node)


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    return OpenApi(json.loads(OPENAPI_FILE.read_text()))


def _webhook_registry() -> Registry[Any]:
    resources = []
    for path in WEBHOOK_SCHEMAS.rglob("*.schema.json"):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT7)))
    return Registry().with_resources(resources)


@pytest.fixture(scope="session")
def webhook_validator() -> Any:
    registry = _webhook_registry()

    def validator(event_schema: str) -> jsonschema.Draft7Validator:
        schema = json.loads((WEBHOOK_SCHEMAS / event_schema).read_text())
        return jsonschema.Draft7Validator(schema, registry=registry)

    return validator
