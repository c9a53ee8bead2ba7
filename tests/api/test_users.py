"""Sign-up, login, lock-out and token checks over HTTP; device tokens; setting the PIN."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.api.driver import put_pin

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
    assert response.json()["field"] == "body"
    assert response.json()["detail"] == (
        "body: is not valid JSON (Expecting property name enclosed in double quotes at line 1"
        " column 2)"
    )


async def test_the_login_token_alone_cannot_set_or_change_the_pin(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Whoever holds only the session is refused (403 reauthentication_required); a wrong
    password or current PIN is refused naming the field, never echoing it; the password sets
    the first PIN (no 24-hour window), and the current PIN changes it (the window starts)."""
    person = await make_person()
    changed_at = "SELECT pin_hash IS NOT NULL, pin_changed_at FROM users WHERE id = $1"
    user_id = uuid.UUID(person.user_id)
    alone = await put_pin(client, person, pin="1234")
    assert alone.status_code == 403
    assert (alone.json()["code"], alone.json()["field"]) == (
        "reauthentication_required",
        "password",
    )
    wrong = await put_pin(client, person, pin="1234", password="not my password")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "wrong_password")
    assert "not my password" not in wrong.text
    no_pin_yet = await put_pin(client, person, pin="1234", current_pin="0000")
    assert (no_pin_yet.status_code, no_pin_yet.json()["code"]) == (422, "pin_not_set")
    assert tuple(await app.state.pool.fetchrow(changed_at, user_id)) == (False, None)
    first = await put_pin(client, person, pin="1234", password=person.password)
    assert first.status_code == 204, first.text
    assert tuple(await app.state.pool.fetchrow(changed_at, user_id)) == (True, None)
    assert (await put_pin(client, person, pin="5678")).status_code == 403
    bad_pin = await put_pin(client, person, pin="5678", current_pin="4321")
    assert (bad_pin.status_code, bad_pin.json()["code"]) == (403, "wrong_current_pin")
    assert bad_pin.json()["field"] == "current_pin" and "4321" not in bad_pin.text
    changed = await put_pin(client, person, pin="5678", current_pin="1234")
    assert changed.status_code == 204, changed.text
    has_pin, when = await app.state.pool.fetchrow(changed_at, user_id)
    assert has_pin and when is not None
    assert (await put_pin(client, person, pin="9999", current_pin="1234")).status_code == 403
    malformed = await put_pin(client, person, pin="12a4", password=person.password)
    assert (malformed.status_code, malformed.json()["field"]) == (422, "pin")


async def test_ten_wrong_credentials_lock_pin_changes(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A session cannot try PIN after PIN: after ten wrong current PINs (or passwords) in a row,
    even the right one is refused with 429 and Retry-After, while login still works."""
    person = await make_person()
    assert (await put_pin(client, person, pin="2580", password=person.password)).status_code == 204
    for guess in range(10):
        wrong = await put_pin(client, person, pin="1111", current_pin=f"{guess:04d}")
        assert wrong.status_code == 403
    locked = await put_pin(client, person, pin="1111", current_pin="2580")
    assert (locked.status_code, locked.json()["code"]) == (429, "pin_change_locked")
    assert 1700 < int(locked.headers["Retry-After"]) <= 1800
    login = await client.post(
        "/api/v1/auth/token", data={"username": person.username, "password": person.password}
    )
    assert login.status_code == 200


async def test_login_answers_with_the_devices_token_and_keeps_a_valid_one(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Sign-up and login give a device token; a login presenting the user's own token gets it
    back; without one, or with a forged one, a new device; with another user's valid token, a
    token of the user's own for that same device (a shared device is one device)."""
    ann, ben = await make_person(), await make_person()
    assert ann.device_token.startswith("dv1.") and ann.device_token != ben.device_token

    async def login(person: Any, device: str | None) -> str:
        answer = await client.post(
            "/api/v1/auth/token",
            data={"username": person.username, "password": person.password},
            headers={"X-Device-Id": device} if device is not None else {},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["device_token"])

    assert await login(ann, ann.device_token) == ann.device_token
    fresh = await login(ann, None)
    assert fresh not in (ann.device_token, await login(ann, None))
    forged = ann.device_token[:-1] + ("A" if ann.device_token[-1] != "A" else "B")
    assert (await login(ann, forged)).split(".")[2] != ann.home_device_id
    shared = await login(ann, ben.device_token)
    assert shared != ben.device_token and shared.split(".")[2] == ben.home_device_id
    assert shared.split(".")[1] == uuid.UUID(ann.user_id).hex
