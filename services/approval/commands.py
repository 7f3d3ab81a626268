"""``medic approve`` / ``medic reject``: decide from a terminal, through the approval HTTP API.

The command goes through the API, never straight to the store, so a decision from a terminal
obeys exactly the rules a Slack click or the dashboard does (approvers, four-eyes, expiry)
and ends in the same events. Exit codes: 0 done, 1 refused (unknown, decided, not an
approver, bad token), 2 cannot reach the API.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()
DEFAULT_URL = "http://127.0.0.1:8080"

ApprovalArg = Annotated[str, typer.Argument(help="The approval id (see GET /api/approvals?status=pending)")]
AsOption = Annotated[str | None, typer.Option("--as", help="Who decides (default: your login)")]
UrlOption = Annotated[str, typer.Option(help="Where ci-medic serves its API", envvar="MEDIC_URL")]
TokenOption = Annotated[
    str | None, typer.Option(help="API token", envvar="MEDIC_API_TOKEN", show_default=False)
]


def decide(verb: str, approval_id: str, body: dict[str, Any], url: str, token: str | None) -> None:
    if not approval_id.strip() or "/" in approval_id or len(approval_id) > 100:
        console.print(f"[red]not an approval id:[/red] {approval_id!r}")
        raise typer.Exit(1)
    import httpx  # here, not at the top: `medic --help` must not pay for the HTTP client

    headers = {"x-medic-via": "cli"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/api/approvals/{approval_id}/{verb}", json=body, headers=headers, timeout=10
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach ci-medic at {url}:[/red] {exc}")
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        console.print(f"[red]refused ({response.status_code}):[/red] {detail}")
        raise typer.Exit(1)
    record = response.json()
    status = record.get("status")
    if status == "pending":
        more = int(record.get("approvals_needed", 2)) - len(record.get("approvals", []))
        out.print(f"approval {approval_id}: recorded; {more} more approver(s) needed")
    else:
        out.print(f"approval {approval_id}: {status} by {record.get('decided_by')}")


def approve(
    approval_id: ApprovalArg,
    as_: AsOption = None,
    comment: Annotated[str, typer.Option(help="A note for the audit trail")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Approve a pending fix (four-eyes approvals need a second, different person)."""
    decide("approve", approval_id, {"approver": as_ or getpass.getuser(), "comment": comment}, url, token)


def reject(
    approval_id: ApprovalArg,
    as_: AsOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the thread and the audit trail")] = "",
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Reject a pending fix."""
    decide("reject", approval_id, {"approver": as_ or getpass.getuser(), "comment": reason}, url, token)
