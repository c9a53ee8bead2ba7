"""Funding's reconciliation (funding.reconcile) names each movement whose status the ledger
disagrees with."""

from __future__ import annotations

import pytest

from billfold.funding.reconcile import check_funding
from tests.world import World

pytestmark = pytest.mark.usefixtures("reconciled")


async def test_funding_reconcile_names_a_status_the_ledger_disagrees_with(world: World) -> None:
    """A settled add-funds marked pending again, and a pending one marked settled, are both
    reported by name; put back, nothing is."""
    person = await world.person()
    bank = await world.bank(person, "000123456789")
    settled = await world.add_funds(person, "3.00", bank=bank)
    pending = await world.add_funds(person, "4.00", bank=bank)
    await world.partner(person, "ach.settled", settled)
    pool = world.state.pool
    flip = "UPDATE funding_transfers SET status = $2 WHERE id = $1"
    await pool.execute(flip, settled.id, "pending")
    await pool.execute(flip, pending.id, "settled")
    found = await check_funding(pool)
    assert f"funding transfer {settled.id}: pending, but its hold is resolved" in found
    assert f"funding transfer {pending.id}: settled, but its hold was not posted" in found
    await pool.execute(flip, settled.id, "settled")
    await pool.execute(flip, pending.id, "pending")
