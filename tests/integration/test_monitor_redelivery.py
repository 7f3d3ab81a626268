"""GitHub redelivers and reorders webhooks: each failed run attempt is still reported once."""

from __future__ import annotations

from medic.bus import Bus
from medic.sandbox.github_payloads import Links
from tests.integration.monitor_support import (
    all_detected,
    attempts,
    intake_settled,
    monitor_world,
    wait_for_detected,
)


async def test_duplicate_and_shuffled_webhooks_give_one_failure_each(bus: Bus) -> None:
    async with monitor_world(bus) as world:
        url = await world.serve(await world.monitor())
        world.sandbox.webhooks.url = f"{url}/webhooks/github"
        world.sandbox.set_modes({"webhook_duplicates": True, "webhook_shuffle": True})
        created = world.sandbox.simulate(10, links=Links(api=world.github_url))
        await world.sandbox.drain()
        await wait_for_detected(bus, 10)
        await intake_settled(bus)  # every delivery, duplicates included, has been inspected
        events = await all_detected(bus)

    deliveries = [r for r in world.sandbox.webhooks.history if r.action == "completed"]
    assert len(deliveries) == 20, "every delivery was sent twice"
    assert attempts(events) == sorted((c["repository"], c["run_id"], 1) for c in created)
