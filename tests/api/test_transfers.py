"""P2P transfers over HTTP: the contract, every error code, idempotency and who sees what."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

MakePerson = Callable[..., Awaitable[Any]]


def send(client: httpx.AsyncClient, sender: Any, recipient: str, amount: Any, **extra: Any) -> Any:
    key = extra.pop("key", str(uuid.uuid4()))
    body = {"sender_id": sender.user_id, "recipient": recipient, "amount": amount, **extra}
    return client.post(
        "/api/v1/transfers", json=body, headers={**sender.auth, "Idempotency-Key": key}
    )


async def balance(client: httpx.AsyncClient, person: Any) -> str:
    response = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
    return str(response.json()["balance"])


@pytest.mark.parametrize("by", ["username", "at_username", "email", "phone"])
async def test_send_by_any_handle(
    client: httpx.AsyncClient, make_person: MakePerson, by: str
) -> None:
    """A transfer to a username (with or without '@'), an email or a phone completes at once."""
    alice, bob = await make_person("100.00"), await make_person()
    recipient = {
        "username": bob.username,
        "at_username": f"@{bob.username}",
        "email": bob.email.upper(),
        "phone": bob.phone,
    }[by]
    response = await send(client, alice, recipient, "12.50", note="lunch")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert (body["amount"], body["currency"], body["sender_balance"]) == ("12.50", "USD", "87.50")
    assert (body["sender_id"], body["recipient_id"]) == (alice.user_id, bob.user_id)
    assert await balance(client, bob) == "12.50"


async def test_json_number_amounts_are_accepted(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice, bob = await make_person("10.00"), await make_person()
    assert (await send(client, alice, bob.username, 2)).json()["amount"] == "2.00"
    assert (await send(client, alice, bob.username, 0.5)).json()["amount"] == "0.50"
    assert await balance(client, alice) == "7.50"


@pytest.mark.parametrize("amount", ["12.345", "0", "-5", "abc", "NaN", "1e30", True, None, [1]])
async def test_invalid_amounts_are_refused_and_change_nothing(
    client: httpx.AsyncClient, make_person: MakePerson, amount: Any
) -> None:
    alice, bob = await make_person("10.00"), await make_person()
    response = await send(client, alice, bob.username, amount)
    assert response.status_code == 422
    assert response.json()["code"] in {"invalid_amount", "validation_error"}
    assert await balance(client, alice) == "10.00"


async def test_errors_each_have_their_code_and_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice, bob = await make_person("10.00"), await make_person()
    cases = [
        (send(client, alice, bob.username, "10.01"), 422, "insufficient_funds"),
        (send(client, alice, "nobody_here", "1.00"), 404, "recipient_not_found"),
        (send(client, alice, "nobody@example.com", "1.00"), 404, "recipient_not_found"),
        (send(client, alice, alice.email, "1.00"), 422, "self_transfer"),
    ]
    for call, status, code in cases:
        response = await call
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.headers["content-type"] == "application/problem+json"
    await app.state.pool.execute(
        "UPDATE users SET status = 'frozen' WHERE id = $1", uuid.UUID(alice.user_id)
    )
    frozen = await send(client, alice, bob.username, "1.00")
    assert (frozen.status_code, frozen.json()["code"]) == (403, "wallet_frozen")
    assert await balance(client, alice) == "10.00"
    assert await balance(client, bob) == "0.00"
    await app.state.pool.execute(
        "UPDATE users SET status = 'active' WHERE id = $1", uuid.UUID(alice.user_id)
    )
    assert (await send(client, alice, bob.username, "1.00")).status_code == 201


async def test_a_freeze_stops_money_out_at_once(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The transfer path keeps users it has looked up for a while; the ledger's own freeze check
    still refuses the very next transfer out of a wallet frozen in the meantime."""
    alice, bob = await make_person("10.00"), await make_person("10.00")
    assert (await send(client, alice, bob.username, "1.00")).status_code == 201
    assert (await send(client, bob, alice.username, "1.00")).status_code == 201
    await app.state.pool.execute(
        "UPDATE users SET status = 'frozen' WHERE id = $1", uuid.UUID(bob.user_id)
    )
    refused = await send(client, bob, alice.username, "1.00")
    assert (refused.status_code, refused.json()["code"]) == (403, "wallet_frozen")
    assert await balance(client, bob) == "10.00"


async def test_replay_returns_the_first_response_and_reuse_is_refused(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice, bob = await make_person("10.00"), await make_person()
    first = await send(client, alice, bob.username, "3.00", key="k-1")
    again = await send(client, alice, bob.username, "3.00", key="k-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    reused = await send(client, alice, bob.username, "4.00", key="k-1")
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    body_key = await client.post(
        "/api/v1/transfers",
        headers=alice.auth,
        json={
            "sender_id": alice.user_id,
            "recipient": bob.username,
            "amount": "1.00",
            "idempotency_key": "k-2",
        },
    )
    assert body_key.status_code == 201
    missing = await client.post(
        "/api/v1/transfers",
        headers=alice.auth,
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"},
    )
    assert (missing.status_code, missing.json()["field"]) == (422, "idempotency_key")
    assert await balance(client, alice) == "6.00"


async def test_50_parallel_identical_requests_make_one_transfer(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Each of 50 concurrent copies replays the one transfer or is told the key is in use."""
    alice, bob = await make_person("100.00"), await make_person()
    responses = await asyncio.gather(
        *(send(client, alice, bob.username, "1.00", key="same-key") for _ in range(50))
    )
    created = [r for r in responses if r.status_code == 201]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_use) == 50
    assert {r.json()["transfer_id"] for r in created} == {created[0].json()["transfer_id"]}
    assert all(r.json()["code"] == "idempotency_key_in_use" for r in in_use)
    assert await balance(client, alice) == "99.00"


async def test_only_sender_and_recipient_see_a_transfer(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Another user's transfer, wallet or sender id answers 404, exactly like a missing one."""
    alice, bob, eve = await make_person("10.00"), await make_person(), await make_person("5.00")
    sent = (await send(client, alice, bob.username, "1.00")).json()
    url = f"/api/v1/transfers/{sent['transfer_id']}"
    assert (await client.get(url, headers=alice.auth)).json() == sent
    assert (await client.get(url, headers=bob.auth)).status_code == 200
    for response in (
        await client.get(url, headers=eve.auth),
        await client.get("/api/v1/transfers/999999999999", headers=eve.auth),
        await client.get("/api/v1/transfers/not-a-number", headers=eve.auth),
        await client.get(f"/api/v1/wallet/{alice.user_id}", headers=eve.auth),
        await client.get(f"/api/v1/wallet/{uuid.uuid4()}", headers=eve.auth),
        await send(client, eve, bob.username, "1.00", sender_id=alice.user_id),
    ):
        assert response.status_code == 404, response.text
    assert await balance(client, alice) == "9.00"
    assert await balance(client, eve) == "5.00"


async def test_a_balance_read_after_a_transfer_sees_it(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The cached balance is updated before the transfer's 201 goes out: read your writes."""
    alice, bob = await make_person("20.00"), await make_person()
    for n in range(1, 21):
        assert (await send(client, alice, bob.username, "1.00")).status_code == 201
        assert await balance(client, alice) == f"{20 - n}.00"
        assert await balance(client, bob) == f"{n}.00"


@pytest.mark.parametrize("field", ["idempotency_key", "note"])
async def test_a_nul_character_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, make_person: MakePerson, field: str
) -> None:
    """PostgreSQL text cannot hold NUL: a key or note with one is the client's mistake (422
    naming the field), never a 500, and the transfers beside it are not held up."""
    alice, bob = await make_person("10.00"), await make_person()
    body = {"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"}
    body[field] = "bad\x00value"
    headers = alice.auth if field == "idempotency_key" else {**alice.auth, "Idempotency-Key": "k"}
    bad, good = await asyncio.gather(
        client.post("/api/v1/transfers", headers=headers, json=body),
        send(client, alice, bob.username, "2.00"),
    )
    assert bad.status_code == 422, bad.text
    assert (bad.json()["code"], bad.json()["field"]) == ("validation_error", field)
    assert good.status_code == 201
    assert await balance(client, alice) == "8.00"


async def test_a_transfer_shows_each_person_only_their_own_balance(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Issue 25: the sender sees their balance after the transfer; the recipient, looking the
    same transfer up, sees no balance at all (it showed them the sender's)."""
    alice, bob = await make_person("10.00"), await make_person()
    sent = (await send(client, alice, bob.username, "4.00")).json()
    assert (sent["sender_balance"], sent["type"]) == ("6.00", "p2p")
    url = f"/api/v1/transfers/{sent['transfer_id']}"
    seen_by_bob = (await client.get(url, headers=bob.auth)).json()
    assert seen_by_bob["sender_balance"] is None
    assert {k: v for k, v in seen_by_bob.items() if k != "sender_balance"} == {
        k: v for k, v in sent.items() if k != "sender_balance"
    }
    assert (await client.get(url, headers=alice.auth)).json() == sent


async def test_a_refusal_speaks_of_your_balance_in_dollars_and_its_replay_says_so(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Issue 25: too little money is told in the wallet's currency, naming no internal account
    and no raw cents; a retry with the same key gets the stored refusal, marked as a replay
    (Idempotent-Replayed), as a replayed success is."""
    alice, bob = await make_person("1.25"), await make_person()
    first = await send(client, alice, bob.username, "5.00", key="short-1")
    assert first.status_code == 422
    assert "Idempotent-Replayed" not in first.headers
    body = first.json()
    assert body["code"] == "insufficient_funds"
    assert body["detail"] == "your available balance is 1.25 USD; the transfer needs 5.00 USD"
    assert (body["available"], body["needed"], body["currency"]) == ("1.25", "5.00", "USD")
    assert "account_id" not in body and "available_minor" not in body
    again = await send(client, alice, bob.username, "5.00", key="short-1")
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (422, "true")
    assert again.json() == body
    assert await balance(client, alice) == "1.25"


async def test_each_malformed_request_is_refused_with_its_problem(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The request's form is judged in order (the input gate, the token, the headers, the
    body, then what the values mean), each refusal the problem FastAPI's validation would give
    (api.direct reads the request): status, code and the field it names."""
    alice, bob = await make_person("100.00"), await make_person()
    good = {"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"}
    auth = {**alice.auth, "Idempotency-Key": "k"}
    typed = {**auth, "Content-Type": "application/json"}
    raw = json.dumps(good)
    cases: list[tuple[dict[str, str], Any, int, str, str | None]] = [
        ({}, good, 401, "unauthenticated", None),
        ({"Authorization": "Bearer nonsense"}, good, 401, "unauthenticated", None),
        ({"Authorization": "Basic abc"}, good, 401, "unauthenticated", None),
        (typed, "{not json", 422, "validation_error", "body"),
        (auth, raw, 415, "unsupported_media_type", None),  # no Content-Type
        ({**auth, "Content-Type": "text/plain"}, raw, 415, "unsupported_media_type", None),
        (
            typed,
            raw.replace('"amount"', '"amount": "9.00", "amount"'),
            422,
            "validation_error",
            "amount",
        ),
        (
            typed,
            raw.replace('"1.00"', '"1.00", "note": "\\ud800"'),
            422,
            "validation_error",
            "note",
        ),
        (typed, raw.replace('"1.00"', '"1E+999999999"'), 422, "invalid_amount", "amount"),
        (
            typed,
            raw.replace('"1.00"', '"1.00", "pad": "' + "x" * 70_000 + '"'),
            413,
            "payload_too_large",
            None,
        ),
        (auth, {**good, "amount": "1.001"}, 422, "invalid_amount", "amount"),
        (auth, {k: v for k, v in good.items() if k != "amount"}, 422, "validation_error", "amount"),
        (auth, {**good, "sender_id": 5}, 422, "validation_error", "sender_id"),
        (auth, {**good, "sender_id": "x" * 65}, 422, "validation_error", "sender_id"),
        (auth, {**good, "note": 5}, 422, "validation_error", "note"),
        (auth, {**good, "idempotency_key": "y" * 300}, 422, "validation_error", "idempotency_key"),
        (auth, {**good, "sender_id": bob.user_id}, 404, "not_found", None),
        (auth, {**good, "recipient": "@nobody_here"}, 404, "recipient_not_found", None),
        (auth, {**good, "amount": "500.00"}, 422, "insufficient_funds", None),
        ({**auth, "X-Device-Id": "d" * 500}, good, 422, "validation_error", "x-device-id"),
        ({**auth, "X-Client-Country": "d" * 9}, good, 422, "validation_error", "x-client-country"),
        ({**auth, "Idempotency-Key": "i" * 256}, good, 422, "validation_error", "idempotency-key"),
        (
            {**auth, "Idempotency-Key": "i" * 256},
            {**good, "sender_id": 5},
            422,
            "validation_error",
            "idempotency-key",
        ),
        (alice.auth, good, 422, "validation_error", "idempotency_key"),
    ]
    for headers, body, status, code, field in cases:
        content = body if isinstance(body, str) else None
        payload = None if isinstance(body, str) else body
        response = await client.post(
            "/api/v1/transfers", headers=headers, content=content, json=payload
        )
        problem = response.json()
        assert (response.status_code, problem["code"]) == (status, code), (headers, body)
        assert problem.get("field") == field, (headers, body)
        assert response.headers["content-type"] == "application/problem+json"
    assert await balance(client, alice) == "100.00"
