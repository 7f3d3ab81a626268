"""The running system for the attack suite: ``medic run`` as a real process on real NATS/PostgreSQL.

Every HTTP surface of one deployment answers on one port (the services' routes, the sign-in,
the sandbox GitHub and model under ``/sandbox``), exactly as an attacker who reaches the port
would meet it. Its stream, subjects and schema are fresh, so it shares nothing with other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from medic.embedded import free_port

MEDIC = str(Path(sys.executable).parent / "medic")
PERSON_TOKEN = "attack-suite-person-token"
READ_TOKEN = "attack-suite-read-token"


@dataclass(frozen=True)
class RunningSystem:
    url: str
    schema: str
    stream: str
    log: Path

    @property
    def person(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {PERSON_TOKEN}"}


@contextlib.contextmanager
def medic_run(nats_url: str, database_url: str, data_dir: Path, **settings: str) -> Iterator[RunningSystem]:
    token = uuid.uuid4().hex[:10]
    port = free_port()
    env = os.environ | {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "MEDIC_STREAM_NAME": f"A_{token}",
        "MEDIC_SUBJECT_PREFIX": f"a{token}",
        "MEDIC_DB_SCHEMA": f"a_{token}",
        "MEDIC_API_TOKEN": READ_TOKEN,
        "MEDIC_API_TOKENS": json.dumps({"attacker-in-chief": {"token": PERSON_TOKEN}}),
        "MEDIC_APPROVAL_TIMEOUT_HOURS": "1",
        **{f"MEDIC_{k.upper()}": v for k, v in settings.items()},
    }
    log = data_dir / "medic-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [MEDIC, "run", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield RunningSystem(url=url, schema=f"a_{token}", stream=f"A_{token}", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, within: float = 240.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"medic run exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"medic run not ready within {within}s:\n{log.read_text()[-3000:]}")
