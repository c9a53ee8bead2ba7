"""Sign-up, login, lock-out and token checks over HTTP."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest

MakePerson = Callable[..., Awaitable[Any]]


async def test_sign_up_normalises_handles_and_opens_a_wallet(client: httpx.AsyncClient) -> None:
    """Email is lower-cased, the phone is E.164 (US by default); the wallet starts at zero."""
    response = await client.post(
        "/api/v1/users",
        json={
            "username": "Grace.Hopper",
            "email": "Grace@Navy.MIL",
            "phone": "(202) 555-0143",
            "password": "cobol forever",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["username"], body["email"], body["phone"]) == (
        "grace.hopper",
        "grace@navy.mil",
        "+12025550143",
    )
    token = await client.post(
        "/api/v1/auth/token", data={"username": "GRACE@navy.mil", "password": "cobol forever"}
    )
    assert token.status_code == 200
    assert token.json()["token_type"] == "bearer" and token.json()["expires_in"] == 3600
    wallet = await client.get(
        f"/api/v1/wallet/{body['user_id']}",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert wallet.json() == {
        "user_id": body["user_id"],
        "currency": "USD",
        "balance": "0.00",
        "available_balance": "0.00",
        "pending_balance": "0.00",
    }


@pytest.mark.parametrize("field", ["username", "email", "phone"])
async def test_taken_handle_is_a_409_naming_it(
    client: httpx.AsyncClient, make_person: MakePerson, field: str
) -> None:
    """Each handle is unique, in its normalised form."""
    first = await make_person()
    body = {
        "username": "someone_new",
        "email": "new@example.com",
        "phone": "+14155551999",
        "password": "long enough",
    }
    body[field] = getattr(first, field).upper() if field == "email" else getattr(first, field)
    response = await client.post("/api/v1/users", json=body)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["field"]) == ("handle_taken", field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "no spaces"),
        ("email", "not-an-email"),
        ("phone", "12345"),
        ("password", "short"),
    ],
)
async def test_bad_sign_up_field_is_named(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    body = {
        "username": "valid_name",
        "email": "valid@example.com",
        "phone": "+14155551234",
        "password": "long enough",
    }
    body[field] = value
    response = await client.post("/api/v1/users", json=body)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("validation_error", field)


async def test_wrong_password_is_401_and_ten_in_a_row_lock_the_handle(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """After ten wrong passwords even the right one is refused with 429 and Retry-After."""
    person = await make_person()
    for _ in range(10):
        wrong = await client.post(
            "/api/v1/auth/token", data={"username": person.email, "password": "wrong password"}
        )
        assert wrong.status_code == 401
    locked = await client.post(
        "/api/v1/auth/token", data={"username": person.email, "password": person.password}
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert 1700 < int(locked.headers["Retry-After"]) <= 1800


async def test_missing_tampered_and_expired_tokens_are_401(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    person = await make_person()
    url = f"/api/v1/wallet/{person.user_id}"
    assert (await client.get(url)).status_code == 401
    tampered = person.token[:-2] + ("AA" if person.token[-2:] != "AA" else "BB")
    assert (
        await client.get(url, headers={"Authorization": f"Bearer {tampered}"})
    ).status_code == 401
    expired = jwt.encode(
        {"sub": person.user_id, "exp": int(time.time()) - 5}, "k" * 48, algorithm="HS256"
    )
    response = await client.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_me_names_the_caller(client: httpx.AsyncClient, make_person: MakePerson) -> None:
    person = await make_person()
    response = await client.get("/api/v1/users/me", headers=person.auth)
    assert response.json() == {
        "user_id": person.user_id,
        "username": person.username,
        "email": person.email,
        "phone": person.phone,
    }
    assert (await client.get("/api/v1/users/me")).status_code == 401


async def test_malformed_json_is_named_as_the_body(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is a 422 naming the body, not a character offset."""
    response = await client.post(
        "/api/v1/users", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert (response.json()["field"], response.json()["detail"]) == (
        "body",
        "body: is not valid JSON",
    )
