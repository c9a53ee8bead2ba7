"""How an add-funds or cash-out is shown to its user: one public form for every answer (the
movement's own endpoints, GET /transfers/{id}, a PIN's verification)."""

from __future__ import annotations

from typing import Any

from billfold.funding.movements import ADD_FUNDS
from billfold.funding.service import FundingTransfer
from billfold.platform.currency import format_amount

STATUSES = {
    "pending": "PENDING",
    "settled": "COMPLETED",
    "returned": "RETURNED",
    "declined": "DECLINED",
    "pending_verification": "PENDING_VERIFICATION",
    "pending_review": "PENDING_REVIEW",
}


def funding_view(ft: FundingTransfer) -> dict[str, Any]:
    """The public form of an add-funds or cash-out. `amount` is what reaches the wallet (an
    add-funds) or the bank account (a cash-out), `fee` what the movement costs on top, and
    `total` the two together: what the card or bank account pays, or what leaves the wallet."""
    status = STATUSES[ft.risk_status or ft.status]
    view: dict[str, Any] = {
        "transfer_id": str(ft.id),
        "type": ft.purpose,
        "rail": ft.rail,
        "status": status,
        "amount": format_amount(ft.amount_minor, ft.currency),
        "currency": ft.currency,
        "fee": format_amount(ft.fee_minor, ft.currency),
        "total": format_amount(ft.amount_minor + ft.fee_minor, ft.currency),
        "available_now": format_amount(available_now_minor(ft), ft.currency),
        "estimated_completion": ft.estimated_completion.isoformat()
        if ft.estimated_completion
        else None,
        "return_code": ft.return_code,
        "created_at": ft.created_at.isoformat(),
    }
    return view


def available_now_minor(ft: FundingTransfer) -> int:
    """How much of an add-funds the wallet may spend now: all of a card's once it is booked,
    all of an ACH's once settled and its advance before; nothing while the risk checks hold
    it, nor once declined or returned. A cash-out adds nothing."""
    if ft.purpose != ADD_FUNDS or ft.risk_status is not None:
        return 0
    if ft.status == "settled":
        return ft.amount_minor if ft.rail == "ach" or ft.posted_id is not None else 0
    return ft.advance_minor if ft.status == "pending" else 0
