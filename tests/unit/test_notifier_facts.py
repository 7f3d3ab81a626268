"""The parent's facts are a merge: the same events in any order give the same message."""

from __future__ import annotations

import itertools

from medic.events import GateOutcome
from medic.services.notifier.blocks import parent, reply
from medic.services.notifier.facts import Facts, Stage
from tests.slack_events import story


def test_any_order_of_a_failures_events_gives_the_same_facts() -> None:
    events = story(run_id=9, outcome=GateOutcome.AUTO_REMEDIATE)
    seen = set()
    for order in itertools.permutations(events):
        facts = Facts(failure_id=events[0].failure_id)
        for event in order:
            facts = facts.merge(event)
        seen.add(facts)
    (facts,) = seen
    assert facts.stage is Stage.FIXED and facts.risk == 5 and facts.branch == "feature/x"


def test_a_late_event_never_moves_the_stage_back() -> None:
    detected, analysed, gate = story(run_id=10, outcome=GateOutcome.NO_ACTION)
    facts = Facts(failure_id=detected.failure_id).merge(gate).merge(detected).merge(analysed)
    assert facts.stage is Stage.NO_ACTION
    text, blocks = parent(facts, dashboard_url="https://medic.example")
    assert "no automatic fix" in text
    assert any(b["type"] == "header" for b in blocks)
    told = reply(gate, facts)
    assert told is not None and "No automatic fix" in told[1][0]["text"]["text"]
    assert told[1][0]["block_id"] == f"ev:{gate.event_id}"
