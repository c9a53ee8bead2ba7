"""The write paths of add-funds and cash-out (funding.actions), driven through their functions:
what a cash-out holds and what its settlement or return does, parallel cash-outs, and a
movement that moves nothing being no part of the past the risk engine reads.

The rules and features read a person's assessed movements that went ahead: money in, then
straight out; the day's cash for a Currency Transaction Report; the model's windows. A request
refused for its source leaves no assessment; one scored and then refused (more than the wallet
holds, the card declined) or answered by a concurrent request's movement is stored as
declined later."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from billfold.ledger.errors import InsufficientFunds
from tests.world import World, refused

pytestmark = pytest.mark.usefixtures("reconciled")
ACCOUNT = "000987654321"


async def test_cash_out_holds_at_once_then_settles_or_comes_back(world: World) -> None:
    """The amount leaves available at once; settled, it is posted; returned after settling,
    it is back; returned while pending, the hold is released."""
    person = await world.person(100_00)
    bank = await world.bank(person, ACCOUNT)
    out = await world.cash_out(person, "30.00", bank)
    assert out.status == "pending"
    assert (await world.wallet(person))["available_balance"] == "70.00"
    await world.partner(person, "ach.settled", out)
    assert (await world.wallet(person))["balance"] == "70.00"
    await world.partner(person, "ach.returned", out, return_code="R01")
    assert (await world.wallet(person))["balance"] == "100.00"
    pending = await world.cash_out(person, "20.00", bank)
    await world.partner(person, "ach.returned", pending, return_code="R01")
    money = await world.wallet(person)
    assert (money["balance"], money["available_balance"]) == ("100.00", "100.00")
    with pytest.raises(InsufficientFunds):
        await world.cash_out(person, "100.01", bank)


async def test_parallel_cash_outs_of_one_user_hold_exactly_what_the_wallet_has(
    world: World,
) -> None:
    """Twelve $10 cash-outs at once from $100: ten are held, two are refused for funds, none
    fails otherwise, and the available balance is zero."""
    person = await world.person(100_00)
    bank = await world.bank(person, ACCOUNT)
    answers = await asyncio.gather(
        *(world.cash_out(person, "10.00", bank) for _ in range(12)), return_exceptions=True
    )
    outcomes = sorted(getattr(a, "code", getattr(a, "status", repr(a))) for a in answers)
    assert outcomes == ["insufficient_funds"] * 2 + ["pending"] * 10
    assert (await world.wallet(person))["available_balance"] == "0.00"


async def test_a_source_refused_before_scoring_leaves_no_assessment(world: World) -> None:
    """Another's bank account or card, an unknown one, or a bank account not verified yet: a
    clear error, and nothing stored, not even the request's assessment."""
    ada, eve = await world.person(), await world.person()
    bank = await world.bank(ada, ACCOUNT, verified=False)
    eves_card = await world.card(eve, "4242424242424242")
    answers = [
        await refused(world.add_funds(ada, "20.00", bank=bank)),
        await refused(world.cash_out(ada, "20.00", bank)),
        await refused(world.add_funds(ada, "20.00", bank=str(uuid.uuid4()))),
        await refused(world.add_funds(ada, "20.00", card=eves_card)),
    ]
    assert answers == [
        (422, "bank_account_not_verified"),
        (422, "bank_account_not_verified"),
        (404, "not_found"),
        (404, "not_found"),
    ]
    assert await world.assessed(ada) == []


async def test_a_cash_out_the_ledger_refuses_and_a_declined_card_are_no_history(
    world: World,
) -> None:
    """Scored, then refused: more than the wallet holds, the card declined. Their assessments
    stay, for operators, as declined later; the movements made after them count as before."""
    ida = await world.person(10_00)
    bank = await world.bank(ida, ACCOUNT)
    assert await refused(world.cash_out(ida, "25.00", bank)) == (422, "insufficient_funds")
    declined_card = await world.card(ida, "4000000000000002")
    assert await refused(world.add_funds(ida, "30.00", card=declined_card)) == (
        402,
        "card_declined",
    )
    assert (await world.cash_out(ida, "4.00", bank)).status == "pending"
    assert await world.assessed(ida) == [
        ("cash_out", 2_500, True),
        ("add_funds", 3_000, True),
        ("cash_out", 400, False),
    ]


async def test_of_concurrent_requests_with_one_key_one_movement_went_ahead(world: World) -> None:
    """Five add-funds with one key at once: one movement is made, the others answer with it,
    and of whatever assessments were stored for them, exactly one went ahead."""
    ola = await world.person()
    bank = await world.bank(ola, ACCOUNT)
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *(world.add_funds(ola, "12.00", bank=bank, key=key) for _ in range(5))
    )
    assert {a.status for a in answers} == {"pending"}
    assert len({a.id for a in answers}) == 1
    rows = await world.assessed(ola)
    assert [row for row in rows if not row[2]] == [("add_funds", 1_200, False)]


async def test_an_unscored_movement_then_refused_is_no_history(world: World) -> None:
    """Let through unscored (its scoring overran the budget), then refused: its assessment,
    `allow` for `risk_timeout`, is stored as declined later, as a scored one is."""
    uma = await world.person(10_00)
    bank = await world.bank(uma, ACCOUNT)
    declined_card = await world.card(uma, "4000000000000002")
    with world.stalled_scoring():
        cash_out_refused = await refused(world.cash_out(uma, "25.00", bank))
        declined = await refused(world.add_funds(uma, "30.00", card=declined_card))
        made = await world.cash_out(uma, "4.00", bank)
    assert cash_out_refused == (422, "insufficient_funds")
    assert declined == (402, "card_declined")
    assert made.status == "pending"
    assert await world.assessed(uma) == [
        ("cash_out", 2_500, True),
        ("add_funds", 3_000, True),
        ("cash_out", 400, False),
    ]
    reasons = await world.state.pool.fetch(
        "SELECT reasons FROM risk_assessments WHERE user_id = $1", uma.id
    )
    assert {tuple(row["reasons"]) for row in reasons} == {("risk_timeout",)}
