"""The recovery sweep (funding.recovery) books a movement its process recorded but died before
booking, once."""

from __future__ import annotations

import pytest

from billfold.funding.reconcile import check_funding
from billfold.funding.recovery import book_unbooked
from tests.world import World

pytestmark = pytest.mark.usefixtures("reconciled")


async def test_a_movement_recorded_but_never_booked_is_booked_by_recovery(world: World) -> None:
    """An add-funds whose hold was never made (its process died) shows up in reconcile, and the
    recovery sweep books it once: the money is pending as if nothing had happened."""
    person = await world.person()
    bank = await world.bank(person, "000123456789")
    pool = world.state.pool
    funding_id = await pool.fetchval(
        """INSERT INTO funding_transfers (user_id, rail, purpose, bank_account_id, amount_minor,
               currency, trace_number, idempotency_key, created_at)
           VALUES ($1, 'ach', 'add_funds', $2, 700, 'USD', '091000019999999', 'crashed',
                   now() - interval '5 minutes')
           RETURNING id""",
        person.id,
        bank,
    )
    assert any(str(funding_id) in line for line in await check_funding(pool))
    assert await book_unbooked(world.state.funding) >= 1
    assert await book_unbooked(world.state.funding) == 0
    assert (await world.wallet(person))["pending_balance"] == "7.00"
