"""The chart's ``nats.streamReplicas`` reaches the stream JetStream creates."""

from __future__ import annotations

import pytest

from medic.bus import Bus, Topology, work_stream_config
from medic.config import ConfigError, load_settings


def test_environment_sets_the_stream_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIC_STREAM_REPLICAS", "3")
    assert Topology.from_settings(load_settings()).replicas == 3


@pytest.mark.parametrize("bad", ["0", "6", "three"])
def test_impossible_replica_counts_are_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("MEDIC_STREAM_REPLICAS", bad)
    with pytest.raises(ConfigError, match="stream_replicas"):
        load_settings()


async def test_the_stream_is_created_with_the_configured_replicas(nats_url: str, topology: Topology) -> None:
    """One server can hold one replica; the stream's config says what was asked for."""
    bus = await Bus.connect(nats_url, topology)
    try:
        info = await bus.js.stream_info(topology.stream)
        assert info.config.num_replicas == topology.replicas == 1
    finally:
        await bus.close()


def test_work_streams_are_replicated_like_the_event_log() -> None:
    """The monitor's intake and the executor's wait hold work a lost node must not take with it."""
    topology = Topology(stream="MEDIC", prefix="medic", replicas=3)
    config = work_stream_config(topology, "MEDIC_INTAKE", ["medic.intake.github"])
    assert config.num_replicas == 3
    assert config.retention is not None and config.retention.value == "workqueue"
