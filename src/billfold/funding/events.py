"""The events of a funding movement (funding.pending, funding.settled, funding.returned), for
the outbox, written in the transaction that changes the movement's status. No bank account or
card number is in them: the movement's and its source's ids only."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from billfold.events import outbox
from billfold.funding.service import FundingTransfer


def funding_event(status: str, ft: FundingTransfer) -> outbox.Event:
    """`funding.<status>` of a movement, keyed by its person (their events stay in order)."""
    source = ft.bank_account_id or ft.card_id
    return outbox.Event(
        f"funding.{status}",
        f"funding/{ft.id}",
        f"user/{ft.user_id}",
        datetime.now(UTC),
        {
            "funding_id": str(ft.id),
            "user_id": str(ft.user_id),
            "rail": ft.rail,
            "purpose": ft.purpose,
            "source_id": str(source) if source else None,
            "amount": outbox.amount(ft.amount_minor, ft.currency),
            "currency": ft.currency,
            "return_code": ft.return_code if status == "returned" else None,
        },
    )


async def tell(conn: asyncpg.Connection, status: str, ft: FundingTransfer) -> None:
    """Write the movement's event in the caller's transaction (the one changing its status)."""
    await outbox.write(conn, [funding_event(status, ft)])
