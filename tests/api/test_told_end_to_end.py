"""Issue 27's end-to-end proof over HTTP: an ACH add-funds the bank returns with R01 is told to
its person three ways, each from the event stream: a notification in their feed and an email
that say so in words, and a webhook delivery to their app, signed and verifiable with the
standardwebhooks library. None of them holds the bank account's number or the raw code in
words meant for a person."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from billfold_bench.rules import LOAD_TEST_RULES
from tests.api.conftest import RunningApp
from tests.api.driver import Person, add_funds
from tests.api.test_notifications import mailed, told_of
from tests.webhooks.conftest import FAST, always, receiving

MakePerson = Callable[..., Awaitable[Person]]
ACCOUNT = "000555123456"


@pytest.fixture(scope="module")
async def app(running: RunningApp) -> AsyncIterator[FastAPI]:
    """The app with its dispatcher delivering to 127.0.0.1 (as the sandbox may), retrying fast."""
    async with running(risk_rules=LOAD_TEST_RULES, **FAST) as app:
        yield app


async def test_an_add_funds_returned_r01_is_told_in_the_feed_by_email_and_by_a_signed_webhook(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
) -> None:
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    with receiving(always(204)) as receiver:
        registered = await client.post(
            "/api/v1/webhook-endpoints",
            json={"url": receiver.url, "event_types": ["funding.returned"]},
            headers=person.auth,
        )
        assert registered.status_code == 201, registered.text
        secret = registered.json()["secret"]
        started = await add_funds(client, person, "40.00", bank_account_id=bank_id)
        assert started.status_code == 202, started.text
        funding_id = started.json()["transfer_id"]
        returned = await client.post(
            f"/api/v1/sandbox/ach/{funding_id}/return",
            json={"return_code": "R01"},
            headers=person.auth,
        )
        assert returned.status_code == 200, returned.text

        told = await told_of(client, person, "funding_returned")
        text = await mailed(app, person.email, told["title"])
        assert await receiver.wait(lambda r: bool(r.delivered())), "no webhook delivery"

    assert "insufficient funds in the bank account" in told["body"]
    assert "insufficient funds in the bank account" in text
    assert "R01" not in told["body"] + text
    delivery = receiver.delivered()[0]
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "billfold.funding.returned.v1"
    assert event["subject"] == f"funding/{funding_id}"
    assert event["data"]["return_code"] == "R01"
    assert event["data"]["user_id"] == str(person.user_id)
    assert delivery.headers["webhook-id"] == event["id"]
    for said in (told["body"], text, delivery.body.decode(), orjson.dumps(told).decode()):
        assert ACCOUNT not in said and ACCOUNT[-9:] not in said
