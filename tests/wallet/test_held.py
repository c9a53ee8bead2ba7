"""Transfers the risk checks hold (wallet.held): confirmed with the sender's PIN, declined by
the third wrong one, or decided by an operator, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from billfold.funding.risk_holds import REVIEW_PAGE
from billfold.risk import held as risk_held
from billfold.wallet import held
from billfold.wallet.pins import WrongPin
from billfold.wallet.users import grant_admin
from tests.world import World


async def test_three_wrong_pins_decline_and_release_the_money(world: World) -> None:
    """The third wrong PIN declines the transfer and the reserved money is spendable again."""
    carol, dave = await world.person(50_00), await world.person()
    await world.set_pin(carol, "1111")
    await world.send(carol, dave, "1.00", origin=world.origin(carol, country="US"))
    stolen = world.origin(carol, "stolen", "US")
    transfer_id = (await world.send(carol, dave, "30.00", origin=stolen))["transfer_id"]
    s = world.state
    answers = []
    for _ in range(3):
        with pytest.raises(WrongPin) as wrong:
            await held.verify_transfer(s.pool, s.ledger, carol, transfer_id, "9999")
        answers.append(wrong.value.fields)
    assert [a["attempts_left"] for a in answers] == [2, 1, 0]
    assert answers[-1]["transfer_status"] == "DECLINED"
    money = [await world.wallet(p) for p in (carol, dave)]
    assert [(m["balance"], m["available_balance"]) for m in money] == [
        ("49.00", "49.00"),
        ("1.00", "1.00"),
    ]


async def test_review_approve_and_reject_race_and_exactly_one_wins(world: World) -> None:
    """Paying a flagged user is held for review; the queue shows score and reasons; approve and
    reject at once: one wins, the other is refused, and the money is where the winner said."""
    erin, mule, analyst = await world.person(80_00), await world.person(), await world.person()
    s = world.state
    await grant_admin(s.pool, analyst.username)
    await s.pool.execute("UPDATE users SET flagged = true WHERE id = $1", mule.id)
    sent = await world.send(erin, mule, "25.00", origin=world.origin(erin, country="US"))
    assert sent["status"] == "PENDING_REVIEW"
    review_id = sent["transfer_id"]
    queue = await risk_held.review_queue(s.pool, REVIEW_PAGE)
    mine = next(r for r in queue if r["review_id"] == review_id)
    assert mine["reasons"] == ["the recipient is flagged"]
    assert mine["recent_activity"][0]["action"] == "review"
    decisions = await asyncio.gather(
        *(
            held.decide_held_transfer(
                s.pool, s.ledger, analyst.id, review_id, approve=approve, reason="analyst says"
            )
            for approve in (True, False)
        ),
        return_exceptions=True,
    )
    refused = [d for d in decisions if isinstance(d, Exception)]
    assert [type(r) for r in refused] == [risk_held.NotPending] and refused[0].status == 409
    winner = next(d for d in decisions if isinstance(d, str))
    expected = {"COMPLETED": ("55.00", "25.00"), "DECLINED": ("80.00", "0.00")}[winner]
    assert tuple([(await world.wallet(p))["balance"] for p in (erin, mule)]) == expected
    trail = await s.pool.fetchval(
        "SELECT count(*) FROM operator_actions WHERE subject = $1", f"transfer:{review_id}"
    )
    assert trail == 1


async def test_a_transfers_page_names_the_other_person_on_each_side(world: World) -> None:
    """show_transfer_named: the sender sees the recipient, the recipient the sender (a held
    transfer too, by its hold's id); money in from the bank names nobody."""
    gil, hal = await world.person(40_00), await world.person()
    s = world.state
    sent = await world.send(gil, hal, "5.00", origin=world.origin(gil, country="US"))
    mine = await held.show_transfer_named(s.pool, s.ledger, gil, sent["transfer_id"])
    theirs = await held.show_transfer_named(s.pool, s.ledger, hal, sent["transfer_id"])
    assert (mine["counterparty"], mine["counterparty_kind"]) == (hal.username, "person")
    assert (theirs["counterparty"], theirs["counterparty_kind"]) == (gil.username, "person")
    assert {k: v for k, v in mine.items() if not k.startswith("counterparty")} == (
        await held.show_transfer(s.pool, s.ledger, gil, sent["transfer_id"])
    )
    await world.set_pin(gil, "1357")
    stolen = world.origin(gil, "stolen", "US")
    waiting = await world.send(gil, hal, "6.00", origin=stolen)
    assert waiting["status"] == "PENDING_VERIFICATION"
    shown = await held.show_transfer_named(s.pool, s.ledger, hal, waiting["transfer_id"])
    assert (shown["status"], shown["counterparty"]) == ("PENDING_VERIFICATION", gil.username)
    funded = await s.pool.fetchval(
        "SELECT transfer_id FROM entries WHERE account_id = $1 ORDER BY account_seq LIMIT 1",
        gil.account_id,
    )
    came_in = await held.show_transfer_named(s.pool, s.ledger, gil, str(funded))
    assert (came_in["counterparty"], came_in["counterparty_kind"]) == (None, None)
