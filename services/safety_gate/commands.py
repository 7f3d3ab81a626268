"""``medic policy ...``: the operator's side of the safety policy, over the gate's HTTP API.

The CLI goes through the API (not straight to the key-value store) so a change from a terminal
is recorded exactly as one from the dashboard: the same checks, the same PolicyChanged event.
Exit codes: 0 done, 1 refused (unknown breaker or hold, bad token), 2 cannot reach the API.
"""

from __future__ import annotations

import getpass
import re
from enum import StrEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

policy_app = typer.Typer(
    help="Safety policy: kill switch, dry-run, circuit breakers, incident holds.", rich_markup_mode=None
)
console = Console(stderr=True)
out = Console()
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


UrlOption = Annotated[str, typer.Option(help="Where ci-medic serves its API", envvar="MEDIC_URL")]
TokenOption = Annotated[
    str | None, typer.Option(help="API token", envvar="MEDIC_API_TOKEN", show_default=False)
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who is changing the policy (default: your login)")
]
ReasonOption = Annotated[str, typer.Option(help="Why, for the audit trail")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _call(method: str, url: str, path: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach ci-medic at {url}:[/red] {exc}")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text) if _is_json(response) else response.text
        console.print(f"[red]refused ({response.status_code}):[/red] {detail}")
        raise typer.Exit(1)
    return response.json()


def _is_json(response: httpx.Response) -> bool:
    return bool(response.headers.get("content-type", "").startswith("application/json"))


def _who(by: str | None) -> str:
    return by or getpass.getuser()


def _recorded(event: dict[str, Any]) -> None:
    payload = event["payload"]
    out.print(
        f"{payload['change']} for {payload['scope']} by {payload['changed_by']} (event {event['event_id']})"
    )


@policy_app.command()
def status(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Show the switches, the open circuit breakers and the incident holds."""
    out.print_json(data=_call("GET", url, "/api/policy", token))


def _switch(name: str, state: Switch, url: str, token: str | None, by: str | None, reason: str) -> None:
    body = {"on": state is Switch.ON, "by": _who(by), "reason": reason}
    _recorded(_call("POST", url, f"/api/policy/{name}", token, body))


@policy_app.command()
def kill(
    state: Annotated[Switch, typer.Argument(help="on: stop every automatic action; off: resume")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    by: ByOption = None,
    reason: ReasonOption = "",
) -> None:
    """The kill switch: one switch stops every automatic action at once."""
    _switch("kill-switch", state, url, token, by, reason)


@policy_app.command("dry-run")
def dry_run(
    state: Annotated[Switch, typer.Argument(help="on: decide and record, execute nothing; off: act again")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    by: ByOption = None,
    reason: ReasonOption = "",
) -> None:
    """Dry-run: every decision is made and recorded as usual, nothing is executed."""
    _switch("dry-run", state, url, token, by, reason)


@policy_app.command()
def reset(
    repository: Annotated[str, typer.Argument(help="owner/name whose circuit breaker to close")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    by: ByOption = None,
    reason: ReasonOption = "",
) -> None:
    """Close a repository's circuit breaker: automatic remediation resumes there."""
    if not _REPOSITORY.fullmatch(repository):
        console.print(f"[red]not a repository:[/red] {repository!r} (owner/name)")
        raise typer.Exit(2)
    _recorded(
        _call(
            "POST", url, f"/api/policy/breakers/{repository}/reset", token, {"by": _who(by), "reason": reason}
        )
    )


@policy_app.command()
def lift(
    fingerprint: Annotated[
        str, typer.Argument(help="The held failure's fingerprint (see `medic policy status`)")
    ],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    by: ByOption = None,
    reason: ReasonOption = "",
) -> None:
    """Lift an incident hold before it lifts by itself."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", fingerprint):
        console.print(f"[red]not a fingerprint:[/red] {fingerprint!r}")
        raise typer.Exit(2)
    _recorded(
        _call("POST", url, f"/api/policy/holds/{fingerprint}/lift", token, {"by": _who(by), "reason": reason})
    )
