"""The sandbox bank's micro-deposits, as the web app shows them: only the person's own
accounts still awaiting verification."""

from __future__ import annotations

from billfold.funding.sandbox import micro_deposit_amounts
from tests.world import World


async def test_micro_deposit_amounts_name_only_own_unverified_accounts(world: World) -> None:
    """Each pending account's two amounts, as stored; verified accounts and others' absent."""
    pool = world.state.pool
    person, other = await world.person(), await world.person()
    pending = await world.bank(person, "111122223333", verified=False)
    await world.bank(person, "444455556666")
    await world.bank(other, "777788889999", verified=False)
    shown = await micro_deposit_amounts(pool, person.id)
    assert list(shown) == [pending]
    stored = await pool.fetchval(
        "SELECT micro_amounts FROM bank_accounts WHERE id = $1::uuid", pending
    )
    assert shown[pending] == list(stored) and all(1 <= a <= 99 for a in stored)
