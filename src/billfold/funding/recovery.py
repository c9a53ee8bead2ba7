"""Finish what a process that died left half done: movements recorded but never booked in the
ledger, and bank webhooks claimed but never applied.

An ACH add-funds is recorded, then held in the ledger; a card add-funds is charged and recorded,
then credited. A crash between the two leaves a row the ledger knows nothing of. Every booking
step is idempotent (ledger keys derived from the movement), so finishing it is running it again.
A cash-out can't be left this way: its hold comes before its row. An add-funds the risk engine
held is finished from its release on (funding.risk_holds): booked, or its card charged (with the
key of the request that made it, so never twice) and then credited.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from billfold.funding.cards import CardProcessor, CardProcessorUnavailable
from billfold.funding.movements import book_add_funds, book_card_funding
from billfold.funding.risk_holds import finish_release
from billfold.funding.service import FUNDING_COLUMNS, CardDeclined, Funding, FundingTransfer
from billfold.funding.webhooks import reapply_stale
from billfold.platform import leases
from billfold.platform.logging import get_logger
from billfold.platform.tasks import raise_if_cancelling
from billfold.wallet.users import get_user

log = get_logger("billfold.funding.recovery")
# Younger rows may still be being booked by the request that made them.
GRACE_S = 60
BATCH = 200
INTERVAL_S = 30.0

# Held movements wait for their release; a card pending once released is not charged yet ($3:
# whether a processor is at hand to charge it).
_UNBOOKED = f"""
SELECT {FUNDING_COLUMNS} FROM funding_transfers
 WHERE purpose = 'add_funds' AND risk_status IS NULL
   AND coalesce(risk_decided_at, created_at) < now() - make_interval(secs => $1)
   AND ((rail = 'ach' AND status = 'pending' AND hold_id IS NULL
         AND amount_minor > advance_minor)
        OR (rail = 'card' AND posted_id IS NULL AND status <> 'declined'
            AND ($3 OR status <> 'pending')))
 ORDER BY created_at
 LIMIT $2
"""


async def book_unbooked(
    funding: Funding, grace_s: float = GRACE_S, processor: CardProcessor | None = None
) -> int:
    """Book up to BATCH movements the ledger has not seen (charging released cards, given a
    processor); return how many."""
    rows = await funding.pool.fetch(_UNBOOKED, grace_s, BATCH, processor is not None)
    for row in rows:
        ft = FundingTransfer.from_row(row)
        user = await get_user(funding.pool, ft.user_id)
        if ft.rail == "ach":
            await book_add_funds(funding, user.account_id, ft)
        elif ft.status == "pending" and processor is not None:
            # A card declined now declines the movement: nothing to book.
            with contextlib.suppress(CardDeclined):
                await finish_release(funding, processor, ft)
        else:
            await book_card_funding(funding, user, ft)
    return len(rows)


async def keep_booking(funding: Funding, processor: CardProcessor | None = None) -> None:
    """Run book_unbooked every INTERVAL_S for as long as the process serves."""
    while True:
        await asyncio.sleep(INTERVAL_S)
        try:
            # One node of the fleet recovers at a time (platform.leases).
            async with leases.lease(funding.pool, leases.FUNDING_RECOVERY) as held:
                if not held:
                    continue
                booked = await book_unbooked(funding, processor=processor)
                reapplied = await reapply_stale(funding)
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            CardProcessorUnavailable,
        ) as error:
            raise_if_cancelling()
            log.warning("funding recovery failed", error=str(error))
            continue
        if booked or reapplied:
            log.warning("funding recovered", booked=booked, webhooks_reapplied=reapplied)
