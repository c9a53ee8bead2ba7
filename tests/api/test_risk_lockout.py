"""Repeated declines freeze the user's outgoing money, over HTTP, and put the user in the
operators' review queue until one decides."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.risk.rules import RiskRules
from billfold.wallet.users import grant_admin
from tests.api.driver import decide, send

MakePerson = Callable[..., Awaitable[Any]]


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """The model declines every movement here (its decline band starts at 0): a card tester's
    stream of declines, without the two strong signals that freeze at once."""
    rules = RiskRules(max_per_minute=1000, max_per_hour=1000, decline_score=0.0)
    async with running(risk_rules=rules) as app:
        yield app


async def queue(client: httpx.AsyncClient, operator: Any) -> list[dict[str, Any]]:
    reviews = await client.get("/api/v1/admin/reviews", headers=operator.auth)
    assert reviews.status_code == 200, reviews.text
    return [r for r in reviews.json() if r["type"] == "frozen_user"]


async def test_five_declines_in_a_row_freeze_the_user_and_the_sixth_is_refused_as_frozen(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Five declined transfers one after the other (the declined assessments still being
    written in their batch): the fifth freezes the user, audited as the engine's with its
    reason; the sixth attempt is refused because the wallet is frozen, and operators see
    the user in the review queue and the five declines in the listing."""
    tester, victim, operator = await make_person("50.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    codes = [(await send(client, tester, victim)).json()["code"] for _ in range(5)]
    assert codes == ["declined_by_risk"] * 5
    sixth = await send(client, tester, victim)
    assert sixth.status_code == 403 and sixth.json()["code"] == "wallet_frozen"
    trail = await client.get(f"/api/v1/admin/users/{tester.user_id}/audit", headers=operator.auth)
    assert [(a["operator_id"], a["action"], a["reason"]) for a in trail.json()] == [
        ("risk-engine", "freeze", "risk engine: 5 declines in 10 minutes")
    ]
    assert trail.json()[0]["detail"] == {
        "declines": 5,
        "window_s": 600.0,
        "before": "active",
        "after": "frozen",
    }
    await app.state.risk.log.flush()  # the declines' assessments, written in a batch
    mine = [r for r in await queue(client, operator) if r["sender_id"] == tester.user_id]
    assert [(r["review_id"], r["reasons"]) for r in mine] == [
        (f"user:{tester.user_id}", ["risk engine: 5 declines in 10 minutes"])
    ]
    assert [a["action"] for a in mine[0]["recent_activity"]] == ["decline"] * 5
    listed = await client.get(
        "/api/v1/admin/assessments",
        params={"user_id": tester.user_id, "verdict": "decline"},
        headers=operator.auth,
    )
    assert len(listed.json()["assessments"]) == 5  # the sixth was not scored: frozen
    balance = await client.get(f"/api/v1/wallet/{tester.user_id}", headers=tester.auth)
    assert balance.json()["balance"] == "50.00"


async def test_a_card_tester_locked_out_charges_no_more_cards(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    add_card: Callable[[Any, str], Awaitable[str]],
) -> None:
    """Five declined card top-ups in a row freeze the tester; the sixth card is not charged
    (403 wallet_frozen, nothing charged, no assessment), as a card tester would go on."""
    tester = await make_person()
    card_id = await add_card(tester, "4242424242424242")

    async def top_up() -> httpx.Response:
        return await client.post(
            "/api/v1/wallet/add-funds",
            json={"user_id": tester.user_id, "amount": "3.17", "card_id": card_id},
            headers={**tester.auth, "Idempotency-Key": uuid.uuid4().hex},
        )

    codes = [(await top_up()).json()["code"] for _ in range(5)]
    assert codes == ["declined_by_risk"] * 5
    sixth = await top_up()
    assert sixth.status_code == 403 and sixth.json()["code"] == "wallet_frozen"
    charged = await app.state.pool.fetchval(
        "SELECT count(*) FROM sandbox_card_charges WHERE idempotency_key LIKE $1",
        f"{tester.user_id}:%",
    )
    assert charged == 0  # declined or frozen: no card was charged
    await app.state.risk.log.flush()
    scored = await app.state.pool.fetchval(
        "SELECT count(*) FROM risk_assessments WHERE user_id = $1", uuid.UUID(tester.user_id)
    )
    assert scored == 5


async def test_four_declines_do_not_freeze(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Four declines leave the user active, unaudited and out of the queue."""
    tester, victim, operator = await make_person("50.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    codes = [(await send(client, tester, victim)).json()["code"] for _ in range(4)]
    assert codes == ["declined_by_risk"] * 4
    status = await app.state.pool.fetchval(
        "SELECT status FROM users WHERE id = $1", uuid.UUID(tester.user_id)
    )
    assert status == "active"
    trail = await client.get(f"/api/v1/admin/users/{tester.user_id}/audit", headers=operator.auth)
    assert trail.json() == []
    assert tester.user_id not in {r["sender_id"] for r in await queue(client, operator)}


async def test_an_operator_decides_on_a_frozen_user_once(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Approve and reject sent at once for a user the engine froze: one wins, the other gets
    409; the user leaves the queue either way, and approve unfreezes while reject keeps the
    freeze, each audited as the operator's."""
    tester, victim, operator = await make_person("50.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    for _ in range(5):
        await send(client, tester, victim)
    review_id = f"user:{tester.user_id}"
    decisions = await asyncio.gather(
        *(decide(client, operator, review_id, verb) for verb in ("approve", "reject"))
    )
    assert sorted(d.status_code for d in decisions) == [200, 409]
    loser = next(d for d in decisions if d.status_code == 409)
    assert loser.json()["code"] == "review_not_pending"
    winner = next(d.json()["status"] for d in decisions if d.status_code == 200)
    status = await app.state.pool.fetchval(
        "SELECT status FROM users WHERE id = $1", uuid.UUID(tester.user_id)
    )
    assert (winner, status) in {("ACTIVE", "active"), ("FROZEN", "frozen")}
    assert tester.user_id not in {r["sender_id"] for r in await queue(client, operator)}
    trail = await client.get(f"/api/v1/admin/users/{tester.user_id}/audit", headers=operator.auth)
    assert trail.json()[0]["operator_id"] == operator.user_id
