"""A NUL character in any text a request carries is refused up front (api/inputs.py): 422
`validation_error` naming the field, never the 500 PostgreSQL's refusal used to become, and
nothing changes. Each case here was a 500 before."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

MakePerson = Callable[..., Awaitable[Any]]
NUL = "bad\x00value"


def _cases(person: Any) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """field -> (method, path, request arguments), each with a NUL in that field."""
    key = {**person.auth, "Idempotency-Key": uuid.uuid4().hex}
    bank = {
        "routing_number": "011000015",
        "account_number": "12345678",
        "account_holder_name": NUL,
        "account_type": "checking",
    }
    movement = {"user_id": person.user_id, "amount": "1.00", "idempotency_key": NUL}
    return {
        "q": (
            "GET",
            f"/api/v1/wallet/{person.user_id}/transactions",
            {"params": {"q": NUL}, "headers": person.auth},
        ),
        "account_holder_name": ("POST", "/api/v1/bank-accounts", {"json": bank, "headers": key}),
        "token": ("POST", "/api/v1/cards", {"json": {"token": NUL}, "headers": key}),
        "add_funds.idempotency_key": (
            "POST",
            "/api/v1/wallet/add-funds",
            {"json": {**movement, "card_id": str(uuid.uuid4())}, "headers": person.auth},
        ),
        "cash_out.idempotency_key": (
            "POST",
            "/api/v1/wallet/cash-out",
            {"json": {**movement, "bank_account_id": str(uuid.uuid4())}, "headers": person.auth},
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["q", "account_holder_name", "token", "add_funds.idempotency_key", "cash_out.idempotency_key"],
)
async def test_a_nul_character_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_person: MakePerson, case: str
) -> None:
    person = await make_person("10.00")
    method, path, arguments = _cases(person)[case]
    response = await client.request(method, path, **arguments)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("validation_error", case.split(".")[-1])
    assert "NUL" in problem["detail"]
    assert "\x00" not in response.text
    accounts = await client.get("/api/v1/bank-accounts", headers=person.auth)
    cards = await client.get("/api/v1/cards", headers=person.auth)
    assert accounts.json() == cards.json() == []
    wallet = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
    assert wallet.json()["balance"] == "10.00"
