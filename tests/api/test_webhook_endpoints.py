"""Webhook endpoints over HTTP: an owner registers, lists, reads, changes, deletes and rotates
the secret of their own endpoints only; every bad input is a problem naming it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold_bench.rules import LOAD_TEST_RULES
from tests.api.conftest import RunningApp

MakePerson = Callable[..., Awaitable[Any]]
URL = "https://hooks.example.com/billfold"
BASE = "/api/v1/webhook-endpoints"


@pytest.fixture(scope="module")
async def app(running: RunningApp) -> AsyncIterator[FastAPI]:
    """Local receivers refused, as in production; no dispatcher (nothing is delivered here)."""
    async with running(
        risk_rules=LOAD_TEST_RULES, webhooks_allow_local=False, webhooks_dispatcher=False
    ) as app:
        yield app


async def create(client: httpx.AsyncClient, person: Any, **body: Any) -> dict[str, Any]:
    made = await client.post(BASE, json={"url": URL, **body}, headers=person.auth)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


async def test_an_owner_registers_reads_changes_and_deletes_an_endpoint(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """201 with the secret, shown once; every kind by default; read back without the secret;
    changed; deleted (then 404)."""
    alice = await make_person()
    made = await create(client, alice, description="  my   app ")
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 40
    assert (made["url"], made["event_types"], made["description"]) == (URL, ["*"], "my app")
    assert made["enabled"] is True and made["failing_since"] is None
    path = f"{BASE}/{made['endpoint_id']}"
    read = await client.get(path, headers=alice.auth)
    assert read.status_code == 200 and "secret" not in read.json()
    assert read.json() == {k: v for k, v in made.items() if k != "secret"}
    listed = await client.get(BASE, headers=alice.auth)
    assert [e["endpoint_id"] for e in listed.json()] == [made["endpoint_id"]]
    changed = await client.patch(
        path,
        json={"url": URL + "/v2", "event_types": ["transfer.completed", "funding.returned"]},
        headers=alice.auth,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["url"], body["event_types"]) == (
        URL + "/v2",
        ["transfer.completed", "funding.returned"],
    )
    paused = await client.patch(path, json={"enabled": False}, headers=alice.auth)
    assert paused.json()["enabled"] is False and paused.json()["disabled_at"]
    resumed = await client.patch(path, json={"enabled": True}, headers=alice.auth)
    assert resumed.json()["enabled"] is True and resumed.json()["disabled_at"] is None
    assert (await client.delete(path, headers=alice.auth)).status_code == 204
    gone = await client.get(path, headers=alice.auth)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


async def test_rotating_gives_a_new_secret_once(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A new secret, the previous one signing beside it for a day."""
    alice = await make_person()
    made = await create(client, alice)
    rotated = await client.post(f"{BASE}/{made['endpoint_id']}/rotate-secret", headers=alice.auth)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != made["secret"]
    assert rotated.json()["previous_secret_expires_at"]
    read = await client.get(f"{BASE}/{made['endpoint_id']}", headers=alice.auth)
    expires = read.json()["previous_secret_expires_at"]
    assert expires == rotated.json()["previous_secret_expires_at"]


async def test_the_secret_is_sealed_at_rest(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The stored row holds no trace of the secret's text."""
    alice = await make_person()
    made = await create(client, alice)
    row = await app.state.pool.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1", uuid.UUID(made["endpoint_id"])
    )
    secret = made["secret"].encode()
    assert all(secret[6:] not in bytes(str(v), "utf-8") for v in row.values())
    assert secret[6:] not in row["secret_enc"]


async def test_another_persons_endpoint_is_not_found(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Read, change, delete, rotate, list deliveries, resend: 404 to anyone but the owner,
    as for an id that names nothing; nor is it in their list."""
    alice, mallory = await make_person(), await make_person()
    made = await create(client, alice)
    path = f"{BASE}/{made['endpoint_id']}"
    answers = [
        await client.get(path, headers=mallory.auth),
        await client.patch(path, json={"enabled": False}, headers=mallory.auth),
        await client.delete(path, headers=mallory.auth),
        await client.post(f"{path}/rotate-secret", headers=mallory.auth),
        await client.get(f"{path}/deliveries", headers=mallory.auth),
        await client.post(f"{path}/deliveries/1/resend", headers=mallory.auth),
        await client.get(f"{BASE}/{uuid.uuid4()}", headers=alice.auth),
        await client.get(f"{BASE}/not-a-uuid", headers=alice.auth),
    ]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(404, "not_found")] * 8
    assert (await client.get(BASE, headers=mallory.auth)).json() == []
    still = await client.get(path, headers=alice.auth)
    assert still.json()["enabled"] is True


async def test_every_endpoint_needs_a_token(client: httpx.AsyncClient) -> None:
    endpoint = f"{BASE}/{uuid.uuid4()}"
    answers = [
        await client.get(BASE),
        await client.post(BASE, json={"url": URL}),
        await client.get(endpoint),
        await client.patch(endpoint, json={}),
        await client.delete(endpoint),
        await client.post(f"{endpoint}/rotate-secret"),
        await client.get(f"{endpoint}/deliveries"),
    ]
    assert [a.status_code for a in answers] == [401] * 7


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "http://hooks.example.com/in"}, "url", "must use https"),
        ({"url": "https://127.0.0.1:8000/in"}, "url", "not a public address"),
        ({"url": "https://169.254.169.254/latest"}, "url", "not a public address"),
        ({"url": "https://localhost/in"}, "url", "names this machine"),
        ({"url": URL, "event_types": ["money.printed"]}, "event_types", "not in the catalogue"),
        ({"url": URL, "event_types": []}, "event_types", "at least one kind"),
        ({"url": URL, "description": "x" * 201}, "description", "at most 200"),
    ],
)
async def test_bad_input_is_a_problem_naming_it(
    client: httpx.AsyncClient,
    make_person: MakePerson,
    body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    alice = await make_person()
    refused = await client.post(BASE, json=body, headers=alice.auth)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["code"], problem["field"]) == ("validation_error", field)
    assert words in problem["detail"]
    assert (await client.get(BASE, headers=alice.auth)).json() == []


async def test_a_change_is_checked_as_a_registration_is(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice = await make_person()
    made = await create(client, alice)
    path = f"{BASE}/{made['endpoint_id']}"
    refused = await client.patch(path, json={"url": "https://10.0.0.7/in"}, headers=alice.auth)
    assert (refused.status_code, refused.json()["field"]) == (422, "url")
    unchanged = await client.get(path, headers=alice.auth)
    assert unchanged.json()["url"] == URL


async def test_an_owner_has_at_most_twenty_endpoints(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice = await make_person()
    for _ in range(20):
        await create(client, alice)
    refused = await client.post(BASE, json={"url": URL}, headers=alice.auth)
    assert (refused.status_code, refused.json()["code"]) == (409, "webhook_endpoint_limit")
    assert len((await client.get(BASE, headers=alice.auth)).json()) == 20


async def test_deliveries_page_and_refuse_a_foreign_cursor(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """No deliveries yet: an empty page; a cursor this API never gave out is a 422; a delivery
    id that names nothing is a 404."""
    alice = await make_person()
    made = await create(client, alice)
    path = f"{BASE}/{made['endpoint_id']}/deliveries"
    page = await client.get(path, headers=alice.auth)
    assert page.json() == {"deliveries": [], "next_cursor": None}
    refused = await client.get(path, params={"cursor": "bm9wZQ"}, headers=alice.auth)
    assert (refused.status_code, refused.json()["field"]) == (422, "cursor")
    missing = await client.post(f"{path}/999999999/resend", headers=alice.auth)
    assert missing.status_code == 404
