"""Merchants over HTTP: a person opens business profiles and sees only their own; an API key is
shown once, kept only as its hash, signs its merchant's server in, is refused the moment it is
revoked, and is rate-limited as a person is; the static QR code, as JSON and drawn, scans back
to the merchant."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.merchants import qr
from tests.api.driver import Person, problem
from tests.api.test_limits import limited
from tests.merchants.scan import read_png, read_svg, scan

MakePerson = Callable[..., Awaitable[Person]]

CAFE = {"name": "Matrix Cafe", "mcc": "5814", "city": "Oakland", "country": "US"}
MERCHANT_FIELDS = {
    "merchant_id",
    "name",
    "mcc",
    "city",
    "country",
    "status",
    "payout_schedule",
    "payout_bank_account_id",
    "created_at",
}


def key_auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def open_merchant(client: httpx.AsyncClient, owner: Person, **fields: str) -> dict[str, Any]:
    made = await client.post("/api/v1/merchants", json={**CAFE, **fields}, headers=owner.auth)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def new_key(client: httpx.AsyncClient, owner: Person, merchant_id: str) -> dict[str, Any]:
    made = await client.post(f"/api/v1/merchants/{merchant_id}/api-keys", headers=owner.auth)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def owners_merchants(app: FastAPI, owner: Person) -> int:
    return int(
        await app.state.pool.fetchval(
            "SELECT count(*) FROM merchants WHERE owner_id = $1", uuid.UUID(owner.user_id)
        )
    )


# --- onboarding ---------------------------------------------------------------------------------


async def test_a_person_opens_a_merchant_and_reads_it_back(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner = await make_person()
    made = await open_merchant(client, owner, name="  Matrix Cafe ")
    assert set(made) == MERCHANT_FIELDS
    assert {k: made[k] for k in ("name", "mcc", "city", "country", "status")} == {
        **CAFE,
        "status": "active",
    }
    assert (made["payout_schedule"], made["payout_bank_account_id"]) == ("manual", None)
    read = await client.get(f"/api/v1/merchants/{made['merchant_id']}", headers=owner.auth)
    assert read.status_code == 200 and read.json() == made
    listed = await client.get("/api/v1/merchants", headers=owner.auth)
    assert listed.json() == [made]
    # Its merchant account in the ledger, in the wallet's currency.
    kind, currency = await app.state.pool.fetchrow(
        """SELECT a.kind, a.currency FROM merchants m JOIN accounts a ON a.id = m.account_id
            WHERE m.id = $1""",
        uuid.UUID(made["merchant_id"]),
    )
    assert (kind, currency) == ("merchant", "USD")


async def test_another_persons_merchant_is_404_like_a_missing_one(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, other = await make_person(), await make_person()
    theirs = (await open_merchant(client, owner))["merchant_id"]
    missing = str(uuid.uuid4())
    for path in ("", "/api-keys", "/qr"):
        answers = [
            await client.get(f"/api/v1/merchants/{merchant_id}{path}", headers=other.auth)
            for merchant_id in (theirs, missing)
        ]
        assert [problem(a) for a in answers] == [(404, "not_found")] * 2
        assert answers[0].text.replace(theirs, "<id>") == answers[1].text.replace(missing, "<id>")
    made = await client.post(f"/api/v1/merchants/{theirs}/api-keys", headers=other.auth)
    assert problem(made) == (404, "not_found")
    assert (await client.get("/api/v1/merchants", headers=other.auth)).json() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "N" * (qr.NAME_MAX + 1)),
        ("name", "Café Matrix"),
        ("name", ""),
        ("name", "   "),
        ("mcc", "12a4"),
        ("mcc", "581"),
        ("country", "usa"),
        ("country", "us"),
        ("city", "C" * (qr.CITY_MAX + 1)),
        ("city", "Zürich"),
    ],
)
async def test_a_bad_profile_is_a_422_naming_its_field_and_opens_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, field: str, value: str
) -> None:
    owner = await make_person()
    refused = await client.post(
        "/api/v1/merchants", json={**CAFE, field: value}, headers=owner.auth
    )
    assert problem(refused) == (422, "validation_error")
    assert refused.json()["field"] == field
    assert await owners_merchants(app, owner) == 0


# --- API keys -----------------------------------------------------------------------------------


async def test_a_key_is_shown_once_and_kept_only_as_its_hash(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner = await make_person()
    merchant_id = (await open_merchant(client, owner))["merchant_id"]
    made = await new_key(client, owner, merchant_id)
    secret = made["secret"]
    assert set(made) == {"key_id", "secret", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert secret.startswith("sk_") and len(secret) == 3 + 43
    assert made["prefix"] == secret[:11]
    listed = await client.get(f"/api/v1/merchants/{merchant_id}/api-keys", headers=owner.auth)
    assert listed.status_code == 200
    assert [{**k, "secret": secret} for k in listed.json()] == [made]
    assert secret not in listed.text
    rows = await app.state.pool.fetch(
        "SELECT row_to_json(k)::text AS text, secret_hash FROM merchant_api_keys k "
        "WHERE merchant_id = $1",
        uuid.UUID(merchant_id),
    )
    assert len(rows) == 1
    assert secret not in rows[0]["text"] and secret[3:] not in rows[0]["text"]
    assert rows[0]["secret_hash"] == hashlib.sha256(secret.encode()).digest()


async def test_a_key_signs_its_merchant_in_until_it_is_revoked(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner = await make_person()
    merchant = await open_merchant(client, owner)
    merchant_id = merchant["merchant_id"]
    first, second = (
        await new_key(client, owner, merchant_id),
        await new_key(client, owner, merchant_id),
    )
    who = await client.get("/api/v1/merchant", headers=key_auth(first["secret"]))
    assert who.status_code == 200 and who.json() == merchant
    revoked = await client.delete(
        f"/api/v1/merchants/{merchant_id}/api-keys/{first['key_id']}", headers=owner.auth
    )
    assert revoked.status_code == 204
    # The very next request with it.
    refused = await client.get("/api/v1/merchant", headers=key_auth(first["secret"]))
    assert problem(refused) == (401, "unauthenticated")
    assert refused.headers["www-authenticate"] == "Bearer"
    qr_refused = await client.get(
        f"/api/v1/merchants/{merchant_id}/qr", headers=key_auth(first["secret"])
    )
    assert problem(qr_refused) == (401, "unauthenticated")
    # The merchant's other key is untouched; revoking again changes nothing.
    assert (await client.get("/api/v1/merchant", headers=key_auth(second["secret"]))).json() == (
        merchant
    )
    again = await client.delete(
        f"/api/v1/merchants/{merchant_id}/api-keys/{first['key_id']}", headers=owner.auth
    )
    assert again.status_code == 204
    listed = await client.get(f"/api/v1/merchants/{merchant_id}/api-keys", headers=owner.auth)
    revoked_at = {k["key_id"]: k["revoked_at"] for k in listed.json()}
    assert revoked_at[first["key_id"]] is not None and revoked_at[second["key_id"]] is None


@pytest.mark.parametrize("credentials", ["unknown_key", "person_token", "none", "basic"])
async def test_a_merchant_key_route_refuses_anything_but_a_live_key(
    client: httpx.AsyncClient, make_person: MakePerson, credentials: str
) -> None:
    owner = await make_person()
    await open_merchant(client, owner)
    headers = {
        "unknown_key": key_auth("sk_" + "A" * 43),
        "person_token": owner.auth,
        "none": {},
        "basic": {"Authorization": "Basic c2tfeHh4Og=="},
    }[credentials]
    refused = await client.get("/api/v1/merchant", headers=headers)
    assert problem(refused) == (401, "unauthenticated")


async def test_a_key_is_not_a_persons_token(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner = await make_person()
    merchant_id = (await open_merchant(client, owner))["merchant_id"]
    secret = (await new_key(client, owner, merchant_id))["secret"]
    for path in ("/api/v1/merchants", f"/api/v1/merchants/{merchant_id}", "/api/v1/users/me"):
        refused = await client.get(path, headers=key_auth(secret))
        assert problem(refused) == (401, "unauthenticated"), path
        # Told which credential the endpoint takes, not that the key is a bad token.
        assert "not a merchant key" in refused.json()["detail"], path


async def test_keys_are_rate_limited_per_merchant_as_people_are(
    settings: Settings, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Two calls a minute per merchant: the third is a 429 naming the limit; another merchant's
    key, from the same address, still passes."""
    owner = await make_person()
    busy, calm = await open_merchant(client, owner), await open_merchant(client, owner)
    busy_key = (await new_key(client, owner, busy["merchant_id"]))["secret"]
    calm_key = (await new_key(client, owner, calm["merchant_id"]))["secret"]
    async with limited(settings, money_limit_per_user=2, money_limit_per_address=100) as (
        _,
        limited_client,
    ):
        statuses = [
            (await limited_client.get("/api/v1/merchant", headers=key_auth(busy_key))).status_code
            for _ in range(2)
        ]
        refused = await limited_client.get("/api/v1/merchant", headers=key_auth(busy_key))
        other = await limited_client.get("/api/v1/merchant", headers=key_auth(calm_key))
    assert statuses == [200, 200]
    assert problem(refused) == (429, "rate_limited")
    assert (refused.json()["limit"], refused.json()["limit_requests"]) == ("money_per_merchant", 2)
    assert int(refused.headers["Retry-After"]) > 0
    assert other.status_code == 200 and other.json()["merchant_id"] == calm["merchant_id"]


# --- the static QR code -------------------------------------------------------------------------


def static_payload(merchant: dict[str, Any]) -> qr.Payload:
    return qr.Payload(
        uuid.UUID(merchant["merchant_id"]),
        merchant["mcc"],
        "USD",
        merchant["country"],
        merchant["name"],
        merchant["city"],
    )


async def test_the_qr_payload_names_the_merchant_for_its_owner_and_its_key(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner = await make_person()
    merchant = await open_merchant(client, owner, name="Dot & Co.", city="San Jose")
    secret = (await new_key(client, owner, merchant["merchant_id"]))["secret"]
    url = f"/api/v1/merchants/{merchant['merchant_id']}/qr"
    by_owner = await client.get(url, headers=owner.auth)
    by_key = await client.get(url, headers=key_auth(secret))
    assert by_owner.status_code == by_key.status_code == 200
    assert by_owner.headers["content-type"] == "application/json"
    assert by_owner.json() == by_key.json()
    assert set(by_owner.json()) == {"payload"}
    payload = by_owner.json()["payload"]
    assert qr.decode(payload) == static_payload(merchant)
    assert payload.startswith("000201010211")  # static: the payer types the amount
    assert (await client.get(url + "?format=json", headers=owner.auth)).json() == by_owner.json()


@pytest.mark.parametrize(("kind", "media_type"), [("png", "image/png"), ("svg", "image/svg+xml")])
async def test_the_drawn_qr_code_scans_to_the_merchant(
    client: httpx.AsyncClient, make_person: MakePerson, kind: str, media_type: str
) -> None:
    """The image as a payer's phone reads it (zxing-cpp on its pixels): the payload, at error
    correction M, which names the merchant."""
    owner = await make_person()
    merchant = await open_merchant(client, owner)
    url = f"/api/v1/merchants/{merchant['merchant_id']}/qr"
    payload = (await client.get(url, headers=owner.auth)).json()["payload"]
    drawn = await client.get(url, params={"format": kind}, headers=owner.auth)
    assert drawn.status_code == 200
    assert drawn.headers["content-type"] == media_type
    pixels = (read_png if kind == "png" else read_svg)(drawn.content)
    assert scan(pixels) == (payload, "M")
    assert qr.decode(scan(pixels)[0]) == static_payload(merchant)
    # 8 pixels a module and a quiet zone of 4 modules on each side.
    assert pixels.shape[0] % (8 if kind == "png" else 4) == 0
    assert (pixels[: 4 * (8 if kind == "png" else 4)] == 255).all()


@pytest.mark.parametrize("value", ["gif", "PNG", "", "json,png"])
async def test_a_format_not_offered_is_a_422_naming_format(
    client: httpx.AsyncClient, make_person: MakePerson, value: str
) -> None:
    owner = await make_person()
    merchant_id = (await open_merchant(client, owner))["merchant_id"]
    refused = await client.get(
        f"/api/v1/merchants/{merchant_id}/qr", params={"format": value}, headers=owner.auth
    )
    assert problem(refused) == (422, "validation_error")
    assert refused.json()["field"] == "format"


async def test_a_key_reads_only_its_own_merchants_code(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Even another merchant of the same owner is a 404 to a key: a key acts for one merchant."""
    owner = await make_person()
    mine, sibling = await open_merchant(client, owner), await open_merchant(client, owner)
    secret = (await new_key(client, owner, mine["merchant_id"]))["secret"]
    refused = await client.get(
        f"/api/v1/merchants/{sibling['merchant_id']}/qr", headers=key_auth(secret)
    )
    assert problem(refused) == (404, "not_found")
    odd = await client.get("/api/v1/merchants/not-a-uuid/qr", headers=key_auth(secret))
    assert problem(odd) == (404, "not_found")


def test_the_qr_route_documents_its_formats_and_images(app: FastAPI) -> None:
    document = app.openapi()
    operation = document["paths"]["/api/v1/merchants/{merchant_id}/qr"]["get"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "format"]
    schema = parameter["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    assert schema["enum"] == ["json", "png", "svg"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"application/json", "image/png", "image/svg+xml"}
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    who = document["paths"]["/api/v1/merchant"]["get"]["responses"]
    assert "rate_limited" in who["429"]["x-problem-codes"]
