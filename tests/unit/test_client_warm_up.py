"""Clients load their lazily imported request paths when a service starts, not on first use.

In a child process each: the test process has long imported everything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(script: str) -> list[str]:
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.split()


def test_the_model_client_loads_openais_chat_resources_when_warmed() -> None:
    assert _run(
        """
        import sys
        from medic.llm.client import ModelClient
        client = ModelClient(base_url="http://127.0.0.1:9/v1", api_key="sandbox", model="m")
        name = "openai.resources.chat.completions.completions"
        before = name in sys.modules
        client.warm()
        print(before, name in sys.modules)
        """
    ) == ["False", "True"]


def test_the_github_client_loads_the_rest_namespaces_the_executor_writes_through() -> None:
    assert _run(
        """
        import sys
        from medic.github.client import WRITE_NAMESPACES, GitHubClient
        client = GitHubClient(base_url="http://127.0.0.1:9", token="t")
        loaded = lambda: [n for n in WRITE_NAMESPACES if any(m.endswith(f".rest.{n}") for m in sys.modules)]
        before = loaded()
        client.warm()
        print(len(before), len(loaded()) == len(WRITE_NAMESPACES))
        """
    ) == ["0", "True"]
