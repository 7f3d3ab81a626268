"""Names shared by the message that shows a button and the service that handles its click.

The notifier draws the approval card, the approval service handles the click: they agree on
these names here, in the kernel, never by importing each other.
"""

from __future__ import annotations

APPROVE_ACTION = "medic_approve"
REJECT_ACTION = "medic_reject"
REJECT_MODAL = "medic_reject_reason"
"""``callback_id`` of the modal that asks a rejecting approver why."""
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
