"""``medic run`` tells where everything listens, and never prints a secret the user set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from medic.config import load_settings
from medic.embedded import free_port
from medic.services import composition
from medic.services.launchers import _print_banner

USER_SECRET = "user-set-webhook-secret-4d1e"
DB_PASSWORD = "pg-secret-9b2f"


def test_medic_run_does_not_print_the_webhook_secret_the_user_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_") and k not in {"NATS_URL"}}
    env.pop("DATABASE_URL", None)
    env["MEDIC_GITHUB_WEBHOOK_SECRET"] = USER_SECRET
    proc = subprocess.Popen(  # noqa: S603 - our own command
        [str(Path(sys.executable).parent / "medic"), "run", "--port", str(free_port()), "--data-dir", "d"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 150
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert "ci-medic is running" in output, output
    assert "webhook secret   set by you (not shown)" in output
    assert USER_SECRET not in output
    assert not (tmp_path / "d" / "webhook-secret").exists()  # nor written to disk


def test_the_banner_shows_a_generated_sandbox_secret_and_masks_url_passwords() -> None:
    console = Console(record=True, width=200)
    infra = composition.Infrastructure(
        "nats://127.0.0.1:4222", f"postgresql://medic:{DB_PASSWORD}@db:5432/medic"
    )
    settings = load_settings(github_api_url="http://127.0.0.1:8080/sandbox/github")
    _print_banner(console, settings, infra, "http://127.0.0.1:8080", "generated-abc", sandboxed=True)
    text = console.export_text()
    assert "webhook secret   generated-abc" in text
    assert DB_PASSWORD not in text and "medic:********@db" in text
