"""The sandbox bank partner (BILLFOLD_SANDBOX; on by default when embedded): what the real bank
would report about a user's ACH transfer or card add-funds, on request or after a while.

The partner's events travel the same path as the real partner's: a Standard Webhooks delivery
signed with the partner secret, verified and applied by funding.webhooks.receive. (The sandbox
card processor is funding.cards.SandboxProcessor.)
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from billfold.funding import rails, webhooks
from billfold.funding.service import Funding
from billfold.platform import leases
from billfold.platform.errors import NotFound
from billfold.platform.logging import get_logger
from billfold.platform.tasks import raise_if_cancelling

log = get_logger("billfold.sandbox")
# The events a user may have the sandbox partner send about a movement of theirs, by the rail
# the movement must be on.
RAILS = {"ach.settled": "ach", "ach.returned": "ach", "card.chargeback": "card"}


async def deliver_event(
    funding: Funding,
    user_id: uuid.UUID,
    event_type: str,
    funding_id: str,
    **data: Any,
) -> webhooks.Delivery:
    """The partner reports `event_type` about a movement of the user's on the event's rail
    (404 for any other); what applying it did. Takes no lock of its own: the webhook's inbox
    and the ledger's keys apply an event once (funding.webhooks)."""
    ft = await rails.load(funding.pool, funding_id)
    if ft is None or ft.user_id != user_id or ft.rail != RAILS[event_type]:
        raise NotFound(f"transfer '{funding_id[:40]}' does not exist", transfer_id=funding_id[:40])
    return await _deliver(funding, event_type, {"transfer_id": funding_id, **data})


async def auto_settle(funding: Funding, after_s: float) -> None:
    """Settle every pending ACH transfer `after_s` seconds after it started, as a bank would
    some days later; one the risk engine holds was never sent, so it waits until released.
    Runs in each process, one round at a time across the fleet; the inbox and the ledger keys
    would make two at once safe too."""
    while True:
        await asyncio.sleep(min(after_s, 5.0))
        try:
            await _settle_due(funding, after_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise_if_cancelling()
            log.warning("sandbox auto-settle failed", error=str(error))


async def _settle_due(funding: Funding, after_s: float) -> None:
    """One round of auto_settle, by one node of the fleet at a time (platform.leases)."""
    async with leases.lease(funding.pool, leases.SANDBOX_SETTLE) as held:
        if not held:
            return
        rows = await funding.pool.fetch(
            """SELECT id FROM funding_transfers
                WHERE rail = 'ach' AND status = 'pending' AND risk_status IS NULL
                  AND created_at < now() - make_interval(secs => $1)
                ORDER BY created_at LIMIT 500""",
            after_s,
        )
        for row in rows:
            await _deliver(funding, "ach.settled", {"transfer_id": str(row["id"])})


async def _deliver(funding: Funding, event_type: str, data: dict[str, Any]) -> webhooks.Delivery:
    headers, body = webhooks.sign(
        webhooks.webhook_secret(funding.settings), {"type": event_type, "data": data}
    )
    return await webhooks.receive(funding, headers, body)


async def micro_deposit_amounts(pool: asyncpg.Pool, user_id: uuid.UUID) -> dict[str, list[int]]:
    """The micro-deposits (in minor units) the sandbox bank sent to each of the user's accounts
    still awaiting verification, by account id: what the person would read on their bank's
    statement. For the sandbox only (the web app shows them as a sandbox aid); a real bank's
    amounts are read at the bank."""
    rows = await pool.fetch(
        """SELECT id, micro_amounts FROM bank_accounts
            WHERE user_id = $1 AND status = 'pending_verification'
            ORDER BY created_at LIMIT 100""",
        user_id,
    )
    return {str(row["id"]): list(row["micro_amounts"]) for row in rows}
