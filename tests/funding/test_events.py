"""A funding movement's changes are told once each, in the transaction that makes them
(funding.events): a cash-out as cashout.*, a card add-funds settled at once and its chargeback
as card.chargeback, an operator's decision on a held movement as review.decided. No bank
account or card number is in any of them. Read straight from the outbox."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
import pytest

from billfold.funding import actions, risk_holds, webhooks
from billfold.platform.errors import ValidationFailed
from billfold.risk.gate import Origin
from billfold.wallet.users import grant_admin
from tests.events.told import about, commit_refused, told_to
from tests.world import World

pytestmark = pytest.mark.usefixtures("reconciled")
ACCOUNT = "000987654321"
CARD = "4242424242424242"


async def test_a_cash_out_is_told_requested_then_paid_or_returned(world: World) -> None:
    """cashout.requested, then cashout.paid or cashout.returned (with its code), keyed by the
    person, naming the bank account by its id: never told as funding.* as well."""
    person, bank = await world.person_with_bank(ACCOUNT)
    paid = await world.cash_out(person, "10.00", bank)
    await world.partner(person, "ach.settled", paid)
    back = await world.cash_out(person, "5.00", bank)
    await world.partner(person, "ach.returned", back, return_code="R01")
    pool = world.state.pool
    assert await about(pool, f"funding/{paid.id}") == ["cashout.requested", "cashout.paid"]
    assert await about(pool, f"funding/{back.id}") == ["cashout.requested", "cashout.returned"]
    told = await told_to(pool, person.id)
    assert all(t.ordering_key == f"user/{person.id}" for t in told)
    assert told[-1].data == {
        "funding_id": str(back.id),
        "user_id": str(person.id),
        "rail": "ach",
        "destination_id": bank,
        "amount": "5.00",
        "currency": "USD",
        "return_code": "R01",
    }
    assert all(ACCOUNT not in orjson.dumps(t.data).decode() for t in told)


async def test_a_cash_out_refused_at_commit_is_neither_recorded_nor_told(world: World) -> None:
    """The cash-out's transaction refused at its commit: no movement, no cashout.requested; the
    same request again records and tells it once (its ledger hold found again)."""
    person, bank = await world.person_with_bank(ACCOUNT)
    key = uuid.uuid4().hex
    pool = world.state.pool
    async with commit_refused(pool, person.id, "cashout.requested"):
        with pytest.raises(asyncpg.PostgresError):
            await world.cash_out(person, "7.00", bank, key=key)
    assert not await pool.fetchval(
        "SELECT count(*) FROM funding_transfers WHERE user_id = $1 AND purpose = 'cash_out'",
        person.id,
    )
    assert await told_to(pool, person.id, "cashout.requested") == []
    made = await world.cash_out(person, "7.00", bank, key=key)
    assert await about(pool, f"funding/{made.id}") == ["cashout.requested"]


async def test_a_card_add_funds_is_told_settled_and_its_chargeback_once(world: World) -> None:
    """A card add-funds settles at once (funding.settled); its chargeback is card.chargeback,
    with the processor's reason and the card's id, not funding.returned as well."""
    person = await world.person()
    card = await world.card(person, CARD)
    ft = await world.add_funds(person, "20.00", card=card)
    charged_back = await world.partner(person, "card.chargeback", ft, reason="fraudulent")
    assert charged_back.status == "applied", charged_back
    pool = world.state.pool
    assert await about(pool, f"funding/{ft.id}") == ["funding.settled", "card.chargeback"]
    told = await told_to(pool, person.id, "card.chargeback")
    assert told[0].data == {
        "funding_id": str(ft.id),
        "user_id": str(person.id),
        "card_id": card,
        "amount": "20.00",
        "currency": "USD",
        "reason": "fraudulent",
    }
    assert all(
        CARD[-8:] not in orjson.dumps(t.data).decode() for t in await told_to(pool, person.id)
    )


def test_a_chargeback_reason_is_short_printable_text() -> None:
    """The reason goes to the person: anything but 1 to 64 printable ASCII characters is
    refused before the delivery is stored."""
    event = {"type": "card.chargeback", "data": {"transfer_id": str(uuid.uuid4())}}
    for reason in ("", "x" * 65, "fraud\n", "fraudé", 42):
        with pytest.raises(ValidationFailed):
            webhooks.check_event({**event, "data": {**event["data"], "reason": reason}})
    assert webhooks.check_event({**event, "data": {**event["data"], "reason": "10.4"}})


async def test_an_operators_decision_on_a_held_movement_is_told(world: World) -> None:
    """An add-funds from a phone three other new accounts act from waits for review; the
    operator's approval is review.decided, in the decision's transaction."""
    person, bank = await world.person_with_bank(ACCOUNT)
    analyst, farm = await world.person(), f"farm-{uuid.uuid4().hex[:8]}"
    s = world.state
    await grant_admin(s.pool, analyst.username)
    for _ in range(3):
        other = await world.person()
        await s.pool.execute(
            "INSERT INTO user_devices (user_id, device_id) VALUES ($1, $2)", other.id, farm
        )
    request = actions.MovementRequest(str(person.id), "15.00", bank, None, uuid.uuid4().hex)
    origin = Origin(farm, None, "127.0.0.1")
    ft, _ = await actions.add_funds(s.funding, s.cards, world.gate(), person, request, origin)
    assert ft.risk_status == risk_holds.REVIEW
    await risk_holds.decide_movement(
        s.funding, s.cards, analyst.id, str(ft.id), approve=True, reason="looked fine"
    )
    assert await about(s.pool, f"funding/{ft.id}") == ["funding.pending", "review.decided"]
    decided = await told_to(s.pool, person.id, "review.decided")
    assert decided[0].data == {
        "funding_id": str(ft.id),
        "user_id": str(person.id),
        "decision": "approved",
        "amount": "15.00",
        "currency": "USD",
    }
