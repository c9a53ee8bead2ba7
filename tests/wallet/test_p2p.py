"""The P2P write path (wallet.p2p): a transfer the ledger refuses, allowed or held by the risk
checks, is no part of the past the risk engine reads."""

from __future__ import annotations

import pytest

from billfold.ledger.errors import InsufficientFunds
from tests.world import World


async def assessed(world: World, user_id: object) -> list[tuple[object, ...]]:
    """(amount_minor, action, declined_later) of the user's assessments, oldest first."""
    await world.state.risk.log.flush()
    rows = await world.state.pool.fetch(
        """SELECT amount_minor, action, declined_later FROM risk_assessments
            WHERE user_id = $1 ORDER BY created_at""",
        user_id,
    )
    return [tuple(r) for r in rows]


async def test_a_transfer_the_ledger_refuses_is_no_history(world: World) -> None:
    """Allowed by the risk checks, refused by the ledger (more than the wallet holds): the
    assessment is stored with the refusal, as declined later, so that the features of the next
    movement do not count money that never moved."""
    ned, ola = await world.person(10_00), await world.person()
    home = world.origin(ned, country="US")
    with pytest.raises(InsufficientFunds):
        await world.send(ned, ola, "25.00", origin=home)
    assert (await world.send(ned, ola, "4.00", origin=home))["status"] == "COMPLETED"
    assert await assessed(world, ned.id) == [(2_500, "allow", True), (400, "allow", False)]


async def test_a_hold_the_ledger_refuses_is_no_history(world: World) -> None:
    """Held by the risk checks (a new device), refused by the ledger (more than the wallet
    holds): the held verdict's assessment, stored before the hold was tried, is declined later,
    as an allowed transfer's is when the ledger refuses it."""
    ned, ola = await world.person(10_00), await world.person()
    await world.send(ned, ola, "1.00", origin=world.origin(ned, country="US"))
    with pytest.raises(InsufficientFunds):
        await world.send(ned, ola, "9.50", origin=world.origin(ned, "tablet", "US"))
    assert await assessed(world, ned.id) == [(100, "allow", False), (950, "step_up", True)]
