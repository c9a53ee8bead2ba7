"""The shipped model deciding beside the shipped rules, over HTTP, for users with a past.

The past is written through the risk engine itself, at earlier times (demo.past, as the demo
does): two months of ordinary transfers among friends, each from one phone at home (the owner
then sends a device token of it). Then
the owner pays as usual and passes, while an account takeover is stopped, and the model on its
own scores the takeover above its step-up band.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold import demo
from billfold.config import Settings
from billfold.demo.past import give_ordinary_past
from tests.api.driver import send

MakePerson = Callable[..., Awaitable[Any]]
HOME = "US"
TEST_CLIENT_ADDRESS = "127.0.0.1"  # what the ASGI test transport reports as the peer


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """Rules and model as shipped, a generous time budget."""
    async with running() as app:
        yield app


async def _scored(app: FastAPI, user_id: str) -> list[tuple[str, float]]:
    await app.state.risk.log.flush()
    rows = await app.state.pool.fetch(
        """SELECT action, score FROM risk_assessments
            WHERE user_id = $1 AND ref NOT LIKE 'past-%' ORDER BY id""",
        uuid.UUID(user_id),
    )
    return [(row["action"], row["score"]) for row in rows]


async def test_the_owner_pays_as_usual_while_a_takeover_is_stopped(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, ann, ben = (
        await make_person("2000.00"),
        await make_person(),
        await make_person(),
    )
    people = [owner.user_id, ann.user_id, ben.user_id]
    phones = await give_ordinary_past(
        app.state.pool, app.state.risk, people, address=TEST_CLIENT_ADDRESS
    )
    phone = owner.device(phones[owner.user_id], own=False)  # a device token of the home phone
    bands = app.state.risk.rules
    usual = await send(client, owner, ann, "35.00", phone, country=HOME)
    assert usual.status_code == 201 and usual.json()["status"] == "COMPLETED", usual.text
    again = await send(client, owner, ben, "48.00", phone, country=HOME)
    assert again.json()["status"] == "COMPLETED", again.text
    assert [action for action, _ in await _scored(app, owner.user_id)] == ["allow", "allow"]
    assert all(score < bands.step_up_score for _, score in await _scored(app, owner.user_id))

    mule = await make_person()
    # The attacker's phone claims a device id of its own choosing: no token of the owner's.
    taken = await send(client, owner, mule, "1500.00", "attacker-phone", country="RO")
    assert taken.status_code == 403 and taken.json()["code"] == "declined_by_risk"
    action, score = (await _scored(app, owner.user_id))[-1]
    assert action == "decline"
    # The model, on its own, would have stopped it too.
    assert score >= bands.step_up_score
    frozen = await send(client, owner, ann, "10.00", phone, country=HOME)
    assert frozen.status_code == 403 and frozen.json()["code"] == "wallet_frozen"


async def test_the_demo_users_first_transfer_goes_through(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """`billfold demo`'s curl example (no device, no country) passes the shipped rules and
    model, and seeding twice gives the demo users their past once."""
    await demo.seed(app.state.pool, settings)
    await demo.seed(app.state.pool, settings)
    alice = await app.state.pool.fetchval("SELECT id::text FROM users WHERE username = 'alice'")
    assert (
        await app.state.pool.fetchval(
            "SELECT count(*) FROM risk_assessments WHERE user_id = $1::uuid AND ref = 'past-3-0'",
            alice,
        )
        == 1
    )
    token = await client.post(
        "/api/v1/auth/token", data={"username": "alice", "password": demo.DEMO_PASSWORD}
    )
    sent = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice, "recipient": "@bob", "amount": "12.50"},
        headers={
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Idempotency-Key": "demo-1",
        },
    )
    assert sent.status_code == 201 and sent.json()["status"] == "COMPLETED", sent.text
