"""Every NATS message a burst of failures costs, by kind, counted by a wiretap on the server.

A second connection subscribes to ``>`` and counts each message it sees while the sandbox's
mix of failures goes through all the services in this process (``tests.pipeline``): events
published and delivered, acks, pull requests, key-value reads and writes by bucket, and the
replies. The wiretap's own interest makes the server publish its advisories (``system``), which
are not the pipeline's. Per failure, including the few seconds after the last one settled.

    python -m tests.bench.message_count [FAILURES]
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import nats
from nats.aio.msg import Msg

from medic.bus import Topology
from medic.embedded import EmbeddedNats, EmbeddedPostgres
from medic.telemetry import configure
from tests.pipeline import running_pipeline


def kind(subject: str, reply: str) -> str:
    """What a message is, from its subject (and, for events, whether it was delivered)."""
    if ".events." in subject or ".intake." in subject or ".verify." in subject:
        base = ".".join(subject.split(".")[1:3])
        return ("delivered: " if reply.startswith("$JS.ACK") else "published: ") + base
    if subject.startswith("$JS.ACK"):
        return "ack, nak or progress"
    if subject.startswith("$JS.API.CONSUMER.MSG.NEXT"):
        return "pull request"
    if subject.startswith("$JS.API.STREAM.MSG.GET"):
        return "key-value read " + subject.rsplit(".", 1)[-1]
    if api := re.match(r"\$JS\.API\.([A-Z_]+\.[A-Z_]+)", subject):
        return "JetStream API " + api.group(1)
    if subject.startswith("$KV."):
        return "key-value write " + subject.split(".")[1]
    if subject.startswith("_INBOX"):
        return "reply"
    return "system"


async def count(failures: int) -> collections.Counter[str]:
    workdir = Path(tempfile.mkdtemp(prefix="medic-count-"))
    server = EmbeddedNats.start(workdir / "nats")
    database = EmbeddedPostgres.start(workdir / "pg", delete_on_stop=True)
    counts: collections.Counter[str] = collections.Counter()
    try:
        token = uuid.uuid4().hex[:8]
        topology = Topology(stream=f"COUNT_{token}", prefix=f"count{token}")
        async with running_pipeline(
            nats_url=server.url, database_url=database.url, topology=topology, db_schema=f"count_{token}"
        ) as pipeline:
            assert pipeline.sandbox is not None
            await asyncio.sleep(1.0)  # the services' start-up requests are not the failures'
            tap = await nats.connect(server.url)

            async def seen(msg: Msg) -> None:
                counts[kind(msg.subject, msg.reply)] += 1

            await tap.subscribe(">", cb=seen)
            await tap.flush()
            pipeline.sandbox.simulate(failures)
            await pipeline.wait_settled(failures, within=120)
            await asyncio.sleep(3.0)  # the waits' last looks and the projector's last batch
            await tap.close()
    finally:
        database.stop()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return counts


def main() -> None:
    failures = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    configure("message-count", level="WARNING")  # the counts on stdout, not every stage's log line
    counts = asyncio.run(count(failures))
    total = sum(counts.values())
    print(f"{failures} failures: {total} messages, {total / failures:.1f} a failure")
    for name, n in counts.most_common():
        print(f"{n / failures:8.2f}  {name}")


if __name__ == "__main__":
    main()
