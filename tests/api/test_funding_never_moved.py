"""An add-funds or cash-out that moves nothing is no part of the past the risk engine reads.

The rules and features read a person's assessed movements that went ahead: money in, then
straight out; the day's cash for a Currency Transaction Report; the model's windows. A request
refused for its source leaves no assessment; one scored and then refused (more than the wallet
holds, the card declined) or answered by a concurrent request's movement is stored as
declined later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.driver import Person, add_funds, cash_out

MakePerson = Callable[..., Awaitable[Any]]
ACCOUNT = "000987654321"


async def assessed(app: FastAPI, person: Person) -> list[tuple[Any, ...]]:
    """(kind, amount_minor, declined_later) of each of the person's assessments, oldest first."""
    await app.state.risk.log.flush()
    rows = await app.state.pool.fetch(
        """SELECT kind, amount_minor, declined_later FROM risk_assessments
            WHERE user_id = $1 ORDER BY id""",
        uuid.UUID(person.user_id),
    )
    return [tuple(row) for row in rows]


async def test_a_source_refused_before_scoring_leaves_no_assessment(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, link_bank: Any, add_card: Any
) -> None:
    """Another's bank account or card, an unknown one, or a bank account not verified yet: a
    clear error, and nothing stored, not even the request's assessment."""
    ada, eve = await make_person(), await make_person()
    bank = await link_bank(ada, ACCOUNT, verified=False)
    eves_card = await add_card(eve, "4242424242424242")
    answers = [
        await add_funds(client, ada, "20.00", bank_account_id=bank),
        await cash_out(client, ada, "20.00", bank),
        await add_funds(client, ada, "20.00", bank_account_id=str(uuid.uuid4())),
        await add_funds(client, ada, "20.00", card_id=eves_card),
    ]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [
        (422, "bank_account_not_verified"),
        (422, "bank_account_not_verified"),
        (404, "not_found"),
        (404, "not_found"),
    ]
    assert await assessed(app, ada) == []


async def test_a_cash_out_the_ledger_refuses_and_a_declined_card_are_no_history(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Any,
    add_card: Any,
) -> None:
    """Scored, then refused: more than the wallet holds, the card declined. Their assessments
    stay, for operators, as declined later; the movements made after them count as before."""
    ida = await make_person("10.00")
    bank = await link_bank(ida, ACCOUNT)
    refused = await cash_out(client, ida, "25.00", bank)
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds"
    declined_card = await add_card(ida, "4000000000000002")
    declined = await add_funds(client, ida, "30.00", card_id=declined_card)
    assert declined.status_code == 402 and declined.json()["code"] == "card_declined"
    made = await cash_out(client, ida, "4.00", bank)
    assert made.status_code == 202, made.text
    assert await assessed(app, ida) == [
        ("cash_out", 2_500, True),
        ("add_funds", 3_000, True),
        ("cash_out", 400, False),
    ]


async def test_of_concurrent_requests_with_one_key_one_movement_went_ahead(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Any,
) -> None:
    """Five add-funds with one key at once: one movement is made, the others answer with it,
    and of whatever assessments were stored for them, exactly one went ahead."""
    ola = await make_person()
    bank = await link_bank(ola, ACCOUNT)
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *(add_funds(client, ola, "12.00", key=key, bank_account_id=bank) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["transfer_id"] for a in answers}) == 1
    rows = await assessed(app, ola)
    assert [row for row in rows if not row[2]] == [("add_funds", 1_200, False)]


async def test_an_unscored_movement_then_refused_is_no_history(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Any,
    add_card: Any,
    stalled_scoring: Any,
) -> None:
    """Let through unscored (its scoring overran the budget), then refused: its assessment,
    `allow` for `risk_timeout`, is stored as declined later, as a scored one is."""
    uma = await make_person("10.00")
    bank = await link_bank(uma, ACCOUNT)
    declined_card = await add_card(uma, "4000000000000002")
    with stalled_scoring():
        refused = await cash_out(client, uma, "25.00", bank)
        declined = await add_funds(client, uma, "30.00", card_id=declined_card)
        made = await cash_out(client, uma, "4.00", bank)
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient_funds"
    assert declined.status_code == 402 and declined.json()["code"] == "card_declined"
    assert made.status_code == 202, made.text
    assert await assessed(app, uma) == [
        ("cash_out", 2_500, True),
        ("add_funds", 3_000, True),
        ("cash_out", 400, False),
    ]
    reasons = await app.state.pool.fetch(
        "SELECT reasons FROM risk_assessments WHERE user_id = $1", uuid.UUID(uma.user_id)
    )
    assert {tuple(row["reasons"]) for row in reasons} == {("risk_timeout",)}
