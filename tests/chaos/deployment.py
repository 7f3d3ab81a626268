"""A deployment as Kubernetes runs it, on one machine: every service its own ``medic service``
process, over a nats-server and a PostgreSQL this suite owns (so it may kill and restart them),
with the sandbox GitHub and model served from the test process over real HTTP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from medic.embedded import EmbeddedNats, EmbeddedPostgres, free_port

MEDIC = str(Path(sys.executable).parent / "medic")
SERVICES = ("monitor", "analyzer", "safety-gate", "executor", "approval", "notifier", "projector")
WEBHOOK_SECRET = "chaos-webhook-secret"


@dataclass
class ServiceProcess:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    root: Path
    nats_port: int
    env: dict[str, str]
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    # --- infrastructure ---------------------------------------------------------------

    def start_nats(self) -> str:
        self.nats = EmbeddedNats.start(self.root / "nats", port=self.nats_port)
        return self.nats.url

    def stop_nats(self) -> None:
        if self.nats is not None:
            self.nats.stop()
            self.nats = None

    def start_postgres(self) -> str:
        self.postgres = EmbeddedPostgres.start(self.root / "pg" / "data")
        return self.postgres.url

    def stop_postgres(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    # --- services ---------------------------------------------------------------------

    def start(self, name: str) -> ServiceProcess:
        service = self.services.get(name) or ServiceProcess(name, free_port(), self.root / f"{name}.log")
        out = service.log.open("ab")
        service.process = subprocess.Popen(  # noqa: S603 - our own command line
            [MEDIC, "service", name, "--port", str(service.port)],
            env=os.environ | self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.services[name] = service
        return service

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no goodbye; in-flight work is left to redelivery."""
        process = self.services[name].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def stop(self, name: str) -> int | None:
        """SIGTERM and wait: the clean stop."""
        process = self.services[name].process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def wait_ready(self, name: str, within: float = 90.0) -> None:
        service = self.services[name]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert service.process is not None
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited {service.process.returncode}:\n{service.log.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready within {within}s:\n{service.log.read_text()[-3000:]}")

    def stop_all(self) -> dict[str, int | None]:
        return {name: self.stop(name) for name in list(self.services)}
