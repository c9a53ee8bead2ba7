"""Money a returned deposit leaves owed is clawed back, blocks outgoing money and is repaid by
the next money in (wallet.debts), driven through funding's and wallet's functions."""

from __future__ import annotations

import pytest

from billfold.ledger.errors import DebtOutstanding
from tests.world import World

pytestmark = pytest.mark.usefixtures("reconciled")


async def test_a_late_return_of_spent_money_leaves_a_debt_repaid_by_the_next_deposit(
    world: World,
) -> None:
    """Settled, spent, returned 40 days later (R10): the claw-back takes what the wallet holds,
    the rest is owed, outgoing money is blocked, and the next deposit repays it first."""
    person, friend = await world.person(), await world.person()
    bank = await world.bank(person, "000123456789")
    first = await world.add_funds(person, "100.00", bank=bank)
    await world.partner(person, "ach.settled", first)
    assert (await world.send(person, friend, "70.00"))["status"] == "COMPLETED"
    await world.state.pool.execute(
        "UPDATE funding_transfers SET settled_at = now() - interval '40 days' WHERE id = $1",
        first.id,
    )
    # A second bank account: the first is unlinked by the unauthorised return.
    other_bank = await world.bank(person, "55554444")
    returned = await world.partner(person, "ach.returned", first, return_code="R10")
    assert returned.status == "applied", returned
    assert returned.detail.endswith("; 70.00 USD owed"), returned  # not raw cents
    assert (await world.wallet(person))["balance"] == "0.00"
    with pytest.raises(DebtOutstanding) as blocked:
        await world.cash_out(person, "1.00", other_bank)
    assert blocked.value.fields["amount_owed"] == "70.00"
    assert (await world.send(friend, person, "5.00"))["status"] == "COMPLETED"
    with pytest.raises(DebtOutstanding) as p2p:
        await world.send(person, friend, "1.00")
    assert p2p.value.fields["amount_owed"] == "65.00"
    second = await world.add_funds(person, "100.00", bank=other_bank)
    await world.partner(person, "ach.settled", second)
    assert (await world.wallet(person))["balance"] == "35.00"
    assert (await world.cash_out(person, "10.00", other_bank)).status == "pending"
