"""The one HTTP driver of the API tests: a person as the API knows them, and the requests every
API test makes (send money, add funds, cash out, verify with a PIN, operators' actions), each
answering the raw response so that a test asserts the status, the problem code and the body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from billfold.platform.security import device_key, sign_device
from tests.world import SECRET_KEY  # every API test module's app signs with it

HOME = "home-phone"  # a person's sign-up device (see `Person.device`)
AT_HOME = {"phone": HOME, "country": "US"}  # `send` from the sender's home phone, in the US
CARD_EXPIRY = {"exp_month": 12, "exp_year": 2030, "cvc": "123"}


@dataclass
class Person:
    user_id: str
    username: str
    email: str
    phone: str
    password: str
    token: str
    device_token: str = ""  # the sign-up device's, which the login presented

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def device(self, name: str = HOME, *, own: bool = True) -> str:
        """X-Device-Id on the device `name`: HOME is the device they signed up on (its token,
        which sign-up gave); any other name, a valid token for this person's device of that
        name (`device_id`), as a login from it would give one (the app's secret key is
        SECRET_KEY). `own=False`: the device `name` itself, which others may use too."""
        if name == HOME and self.device_token:
            return self.device_token
        device_id = self.device_id(name) if own else name
        return sign_device(device_key(SECRET_KEY), uuid.UUID(self.user_id), device_id)

    def device_id(self, name: str) -> str:
        """The id of this person's device `name`: one of their own, as a real device's random
        id is, so that people's "new-phone"s are not one phone many accounts share."""
        return f"{name}-{self.user_id[:8]}"

    @property
    def home_device_id(self) -> str:
        """The device id inside the sign-up device's token."""
        return self.device_token.split(".")[2]


def origin(
    person: Person, device: str | None = None, country: str | None = "US", address: str = ""
) -> dict[str, str]:
    """The headers that say where a request comes from: the device token `device` (the
    person's home device's by default), the country and, if given, the client address."""
    headers = {"X-Device-Id": device or person.device()}
    if country is not None:
        headers["X-Client-Country"] = country
    if address:
        headers["X-Forwarded-For"] = address
    return headers


def money_headers(
    person: Person, key: str | None, headers: dict[str, str] | None
) -> dict[str, str]:
    """The person's bearer token, an Idempotency-Key (`key`, else a new one) and `headers`."""
    return {**person.auth, "Idempotency-Key": key or uuid.uuid4().hex, **(headers or {})}


async def send(
    client: httpx.AsyncClient,
    sender: Person,
    recipient: Person | str,
    amount: Any = "1.00",
    device: str | None = None,
    *,
    phone: str | None = None,
    country: str | None = None,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    """POST /transfers: `amount` from `sender` to `recipient` (a person, or any handle), from
    the X-Device-Id `device` (or the sender's own device named `phone`) and `country` when
    given; `body` adds fields (a note, say)."""
    if phone is not None:
        device = sender.device(phone)
    where = {} if device is None else {"X-Device-Id": device}
    if country is not None:
        where["X-Client-Country"] = country
    handle = recipient if isinstance(recipient, str) else recipient.username
    return await client.post(
        "/api/v1/transfers",
        json={"sender_id": sender.user_id, "recipient": handle, "amount": amount, **body},
        headers=money_headers(sender, key, {**where, **(headers or {})}),
    )


async def pay(
    client: httpx.AsyncClient, sender: Person, recipient: Person | str, amount: Any, **more: Any
) -> dict[str, Any]:
    """`send`, which must answer 201; its body."""
    response = await send(client, sender, recipient, amount, **more)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_funds(
    client: httpx.AsyncClient,
    person: Person,
    amount: str,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    **source: str,
) -> httpx.Response:
    """POST /wallet/add-funds from `source` (bank_account_id= or card_id=)."""
    return await client.post(
        "/api/v1/wallet/add-funds",
        json={"user_id": person.user_id, "amount": amount, **source},
        headers=money_headers(person, key, headers),
    )


async def cash_out(
    client: httpx.AsyncClient,
    person: Person,
    amount: str,
    bank_id: str,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /wallet/cash-out to the bank account `bank_id`."""
    return await client.post(
        "/api/v1/wallet/cash-out",
        json={"user_id": person.user_id, "amount": amount, "bank_account_id": bank_id},
        headers=money_headers(person, key, headers),
    )


async def wallet(client: httpx.AsyncClient, person: Person) -> dict[str, Any]:
    """GET /wallet/{id}: the person's balances."""
    response = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def balances(client: httpx.AsyncClient, person: Person) -> tuple[str, str]:
    """(balance, available_balance)."""
    body = await wallet(client, person)
    return body["balance"], body["available_balance"]


async def history(client: httpx.AsyncClient, person: Person, **params: Any) -> httpx.Response:
    """GET /wallet/{id}/transactions with the query `params`."""
    return await client.get(
        f"/api/v1/wallet/{person.user_id}/transactions", params=params, headers=person.auth
    )


async def put_pin(client: httpx.AsyncClient, person: Person, **body: str) -> httpx.Response:
    """PUT /users/{id}/pin (`pin=`, with `password=` or `current_pin=`)."""
    return await client.put(f"/api/v1/users/{person.user_id}/pin", json=body, headers=person.auth)


async def set_pin(client: httpx.AsyncClient, person: Person, **body: str) -> None:
    """`put_pin`, which must answer 204."""
    answer = await put_pin(client, person, **body)
    assert answer.status_code == 204, answer.text


async def verify(
    client: httpx.AsyncClient, person: Person, transfer_id: str, pin: str
) -> httpx.Response:
    """POST /transfers/{id}/verify: a held transfer or movement confirmed with the PIN."""
    return await client.post(
        f"/api/v1/transfers/{transfer_id}/verify", json={"pin": pin}, headers=person.auth
    )


async def store_card(client: httpx.AsyncClient, person: Person, number: str) -> str:
    """A sandbox card `number`, tokenised and stored for `person`; its card id."""
    token = await tokenize(client, person, number)
    stored = await client.post("/api/v1/cards", json={"token": token}, headers=person.auth)
    assert stored.status_code == 201, stored.text
    return str(stored.json()["card_id"])


async def tokenize(client: httpx.AsyncClient, person: Person, number: str) -> str:
    """The sandbox processor's token for the card `number`."""
    response = await client.post(
        "/api/v1/sandbox/cards/tokenize",
        json={"number": number, **CARD_EXPIRY},
        headers=person.auth,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def sandbox_ach(
    client: httpx.AsyncClient, person: Person, transfer_id: str, action: str, **body: str
) -> dict[str, Any]:
    """The sandbox bank partner reports `action` (settle, return) about an ACH movement."""
    response = await client.post(
        f"/api/v1/sandbox/ach/{transfer_id}/{action}", json=body or None, headers=person.auth
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def act(
    client: httpx.AsyncClient, operator: Person, action: str, subject: Person, reason: str
) -> httpx.Response:
    """An operator's freeze, unfreeze, flag or unflag of `subject`."""
    return await client.post(
        f"/api/v1/admin/users/{subject.user_id}/{action}",
        json={"reason": reason},
        headers=operator.auth,
    )


async def reviews(client: httpx.AsyncClient, operator: Person) -> list[dict[str, Any]]:
    """The review queue."""
    queue = await client.get("/api/v1/admin/reviews", headers=operator.auth)
    assert queue.status_code == 200, queue.text
    found: list[dict[str, Any]] = queue.json()
    return found


async def decide(
    client: httpx.AsyncClient, operator: Person, review_id: str, verb: str, reason: str = ""
) -> httpx.Response:
    """An operator's approve or reject of a review (the reason: "analyst says <verb>")."""
    return await client.post(
        f"/api/v1/admin/reviews/{review_id}/{verb}",
        json={"reason": reason or f"analyst says {verb}"},
        headers=operator.auth,
    )


def problem(response: httpx.Response) -> tuple[int, str]:
    """(status, code) of a problem+json answer."""
    assert response.headers["content-type"] == "application/problem+json", response.text
    return response.status_code, str(response.json()["code"])
