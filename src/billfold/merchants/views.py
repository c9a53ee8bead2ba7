"""What a payment looks like to whom: its payer sees the price; its merchant (its key, or its
owner's token) also sees the fee and what it was paid. Anyone else finds nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from billfold.merchants.events import PaymentFacts
from billfold.merchants.profiles import Merchant, parse_id
from billfold.platform.currency import format_amount
from billfold.platform.errors import NotFound
from billfold.wallet.users import User

PAYMENT_SELECT = """
SELECT p.id, p.merchant_id, p.payer_id, p.session_id, p.transfer_id, p.amount_minor,
       p.fee_minor, p.currency, p.status, p.note, p.created_at, m.name AS merchant_name,
       m.owner_id
  FROM merchant_payments p JOIN merchants m ON m.id = p.merchant_id
"""


def facts_of(row: Any) -> PaymentFacts:
    """A stored payment's facts (a PAYMENT_SELECT row)."""
    return PaymentFacts(
        row["id"],
        row["merchant_id"],
        row["merchant_name"],
        row["owner_id"],
        row["payer_id"],
        row["amount_minor"],
        row["currency"],
        row["session_id"],
    )


def payment_view(row: Any, *, payer_side: bool) -> dict[str, Any]:
    """A payment as the payer sees it (the price, never the fee) or as its merchant does (the
    fee, and what the merchant was paid, too)."""
    currency = row["currency"]
    view = {
        "payment_id": str(row["id"]),
        "status": row["status"],
        "merchant_id": str(row["merchant_id"]),
        "merchant_name": row["merchant_name"],
        "amount": format_amount(row["amount_minor"], currency),
        "currency": currency,
        "session_id": str(row["session_id"]) if row["session_id"] else None,
        "transfer_id": str(row["transfer_id"]),
        "note": row["note"],
        "created_at": row["created_at"].isoformat(),
    }
    if not payer_side:
        view["fee"] = format_amount(row["fee_minor"], currency)
        view["net_amount"] = format_amount(row["amount_minor"] - row["fee_minor"], currency)
    return view


async def show_payment(
    pool: asyncpg.Pool, caller: User | Merchant, payment_id: str
) -> dict[str, Any]:
    """A payment, to its payer (a person's token) or its merchant (its key, or its owner's
    token); to anyone else a 404, as for a payment that does not exist."""
    found = parse_id(payment_id, "payment", "payment_id")
    row = await pool.fetchrow(PAYMENT_SELECT + " WHERE p.id = $1", found)
    missing = NotFound(f"payment '{payment_id[:40]}' does not exist", payment_id=payment_id[:40])
    if row is None:
        raise missing
    if isinstance(caller, Merchant):
        if row["merchant_id"] != caller.id:
            raise missing
        return payment_view(row, payer_side=False)
    if row["payer_id"] == caller.id:
        return payment_view(row, payer_side=True)
    if row["owner_id"] == caller.id:
        return payment_view(row, payer_side=False)
    raise missing
