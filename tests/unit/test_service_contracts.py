"""Each service declares what it consumes and produces; the chain and the AsyncAPI document agree.

The runtime half (a service publishes only what it declares) is checked on a real pipeline run
in ``tests/e2e/test_pipeline.py`` with :func:`undeclared_publications`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from medic.events import EVENT_TYPE_NAMES
from medic.reload import RELOAD_ACTOR
from medic.runtime import EVERY_EVENT, event_type_name
from medic.services.composition import HOST_ROLE, SERVICE_NAMES, service_classes, service_roles

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployable_service_has_a_class_with_its_name() -> None:
    classes = service_classes()
    assert tuple(classes) == SERVICE_NAMES
    assert all(cls.name == name for name, cls in classes.items())


def test_every_event_type_has_exactly_one_producing_service() -> None:
    producers: dict[str, list[str]] = {name: [] for name in EVENT_TYPE_NAMES}
    for service, role in service_roles().items():
        for produced in role.produces:
            producers[produced].append(service)
    assert {name: owners for name, owners in producers.items() if len(owners) != 1} == {}


def test_every_consumed_event_is_produced_by_another_service() -> None:
    roles = service_roles()
    produced = {name for role in roles.values() for name in role.produces}
    for service, role in roles.items():
        missing = set(role.consumes) - produced
        assert not missing, f"{service} waits for events nobody produces: {missing}"
        assert not set(role.consumes) & set(role.produces) or service in {"notifier", "projector"}


def test_the_chain_from_detection_to_remediation_reads_from_the_declarations() -> None:
    """Follow the first declared consumer of each product: the flow of DESIGN.md, from code."""
    classes = service_classes()
    readers = {
        event_type_name(t): name
        for name, cls in classes.items()
        if cls.consumes is not None and set(cls.consumes) != set(EVERY_EVENT)
        for t in cls.consumes
    }
    assert readers["FailureDetected"] == "analyzer"
    assert readers["AnalysisCompleted"] == "safety-gate"
    assert readers["ApprovalGranted"] == "executor"
    everything = {
        name for name, cls in classes.items() if cls.consumes and set(cls.consumes) == set(EVERY_EVENT)
    }
    assert everything == {"notifier", "projector"}


def test_asyncapi_operations_are_the_declarations() -> None:
    document = json.loads((ROOT / "proto" / "asyncapi.json").read_text())
    found: dict[tuple[str, str], set[str]] = {}
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        event = document["channels"][channel]["messages"]
        (name,) = event
        found.setdefault((operation["x-service"], operation["action"]), set()).add(name)
    for service, role in service_roles().items():
        assert found.get((service, "send"), set()) == set(role.produces), service
        assert found.get((service, "receive"), set()) == set(role.consumes), service


def undeclared_publications(events: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(actor, event_type)`` pairs that no declaration allows. A person's decision (an actor that
    is not a service) is published by the approval service, so it must be one of approval's."""
    roles = service_roles()
    roles[RELOAD_ACTOR] = roles[HOST_ROLE]
    wrong = []
    for actor, event_type in events:
        role = roles.get(actor, roles["approval"])
        if event_type not in role.produces:
            wrong.append((actor, event_type))
    return wrong


def test_undeclared_publications_are_found() -> None:
    assert undeclared_publications([("analyzer", "AnalysisCompleted"), ("alice", "ApprovalGranted")]) == []
    assert undeclared_publications([("analyzer", "GateDecided"), ("alice", "RemediationStarted")]) == [
        ("analyzer", "GateDecided"),
        ("alice", "RemediationStarted"),
    ]
