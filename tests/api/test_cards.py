"""Card tokens are sealed at rest (migration 0014): a token charges the card, so the database
holds it only encrypted and bound to its row; rows from before are sealed when the service
starts; a key rotation re-wraps them (tests/funding/test_keys.py, whose rotation test
rotates every sealed value of the test database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from billfold.funding.cards import card_token, seal_plaintext_tokens
from tests.api.driver import add_funds, tokenize

MakePerson = Callable[..., Awaitable[Any]]


async def test_a_token_is_stored_sealed_and_never_repeated(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    person = await make_person()
    token = await tokenize(client, person, "4242424242424242")
    stored = await client.post("/api/v1/cards", json={"token": token}, headers=person.auth)
    assert stored.status_code == 201 and token not in stored.text
    card_id = uuid.UUID(stored.json()["card_id"])
    row = await app.state.pool.fetchrow("SELECT * FROM cards WHERE id = $1", card_id)
    assert row["token"] is None
    assert token.encode() not in row["token_enc"] and token.encode() not in row["token_dek"]
    assert card_token(app.state.funding.keys, row) == token
    again = await client.post("/api/v1/cards", json={"token": token}, headers=person.auth)
    assert (again.status_code, again.json()["field"]) == (422, "token")
    assert token not in again.text
    unknown = await client.post(
        "/api/v1/cards", json={"token": "tok_" + "x" * 24}, headers=person.auth
    )
    assert unknown.status_code == 422 and "tok_" not in unknown.json()["detail"]
    funded = await add_funds(client, person, "10.00", card_id=str(card_id))
    assert funded.status_code == 201 and funded.json()["status"] == "COMPLETED"


async def test_tokens_stored_before_are_sealed_once_and_still_charge(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Rows as migration 0014 found them (plaintext token) are sealed by two processes
    starting at once, each row once, and the card still charges."""
    pool, keys = app.state.pool, app.state.funding.keys
    person = await make_person()
    tokens = [await tokenize(client, person, "4242424242424242") for _ in range(3)]
    ids = [
        await pool.fetchval(
            """INSERT INTO cards (user_id, token, brand, last4, exp_month, exp_year)
               VALUES ($1, $2, 'visa', '4242', 12, 2030) RETURNING id""",
            uuid.UUID(person.user_id),
            token,
        )
        for token in tokens
    ]
    first, second = await asyncio.gather(
        seal_plaintext_tokens(pool, keys), seal_plaintext_tokens(pool, keys)
    )
    assert first + second == 3
    assert await pool.fetchval("SELECT count(*) FROM cards WHERE token IS NOT NULL") == 0
    rows = await pool.fetch("SELECT * FROM cards WHERE id = ANY($1) ORDER BY id", ids)
    assert sorted(card_token(keys, row) for row in rows) == sorted(tokens)
    funded = await add_funds(client, person, "10.00", card_id=str(ids[0]))
    assert funded.status_code == 201 and funded.json()["status"] == "COMPLETED"


async def test_a_token_is_the_person_who_tokenised_it_and_unknown_to_anyone_else(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Bob presenting Alice's token to store a card gets what a token nobody made gets, before
    Alice stores it and after (not that it is used already); Alice stores it."""
    alice, bob = await make_person(), await make_person()
    token = await tokenize(client, alice, "4242424242424242")

    def store(person: Any, value: str) -> Any:
        return client.post("/api/v1/cards", json={"token": value}, headers=person.auth)

    unknown = await store(bob, "tok_" + "y" * 24)
    before = await store(bob, token)
    stored = await store(alice, token)
    after = await store(bob, token)
    cards = (await client.get("/api/v1/cards", headers=bob.auth)).json()

    assert stored.status_code == 201
    assert unknown.status_code == 422
    assert before.json() == unknown.json() == after.json()
    assert token not in before.text + after.text
    assert cards == []


async def test_a_card_holding_another_persons_token_charges_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A card Bob stored with a token that is Alice's (as before tokens had owners) is declined
    as for a token the processor does not know, and nothing moves; a token from before owners
    (none) still charges the card stored with it."""
    alice, bob = await make_person(), await make_person()
    pool = app.state.pool
    tokens = [await tokenize(client, bob, "4242424242424242") for _ in range(2)]
    cards = []
    for token in tokens:
        stored = await client.post("/api/v1/cards", json={"token": token}, headers=bob.auth)
        cards.append(stored.json()["card_id"])
    owner = "UPDATE sandbox_card_tokens SET user_id = $2 WHERE token = $1"
    await pool.execute(owner, tokens[0], uuid.UUID(alice.user_id))
    await pool.execute(owner, tokens[1], None)

    alices = await add_funds(client, bob, "10.00", card_id=cards[0])
    older = await add_funds(client, bob, "10.00", card_id=cards[1])
    balance = (await client.get(f"/api/v1/wallet/{bob.user_id}", headers=bob.auth)).json()

    assert alices.status_code == 402, alices.text
    assert alices.json()["decline_code"] == "invalid_token"
    assert older.status_code == 201 and older.json()["status"] == "COMPLETED"
    assert balance["balance"] == "10.00"
