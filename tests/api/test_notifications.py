"""Notifications over HTTP: what happened to a person's money reaches their feed and their
mailbox through the event stream; the feed pages and is marked read by its owner only; the
preferences decide what is told and how."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from billfold.api.notifications import PreferencesIn
from billfold.notifications import sink
from billfold.notifications.kinds import CATEGORIES
from billfold.notifications.service import Notifications
from tests.api.driver import Person, add_funds, pay
from tests.notifications import events

MakePerson = Callable[..., Awaitable[Person]]
WAIT_S = 20.0  # the relay and the consumer carry an event in well under a second


async def feed(client: httpx.AsyncClient, person: Person, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/notifications", params=params, headers=person.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def told_of(client: httpx.AsyncClient, person: Person, kind: str) -> dict[str, Any]:
    """The person's newest notification of `kind`, waiting up to WAIT_S for it."""
    for _ in range(int(WAIT_S / 0.1)):
        page = await feed(client, person, limit=100)
        found = [n for n in page["notifications"] if n["kind"] == kind]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} notification for {person.username} within {WAIT_S} s")


async def mailed(app: FastAPI, to: str, subject: str) -> str:
    """The text of the email the local sink kept for `to` with `subject`, waiting for it."""
    data_dir = app.state.settings.data_dir
    for _ in range(int(WAIT_S / 0.1)):
        kept = [k for k in sink.list_messages(data_dir) if k.to == to and k.subject == subject]
        if kept:
            content: str = sink.read_message(data_dir, kept[-1].id).get_content()
            return " ".join(content.split())
        await asyncio.sleep(0.1)
    raise AssertionError(f"no email {subject!r} to {to} within {WAIT_S} s")


async def seed(app: FastAPI, batch: list[events.CloudEvent]) -> None:
    """Notifications recorded as the consumer records them (its handler, called directly)."""
    await Notifications(app.state.pool, app.state.settings).handle(batch)


async def test_money_sent_over_http_is_in_the_recipients_feed(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A P2P transfer: the ledger's transfer.completed, relayed and consumed, tells its recipient
    (naming the sender) and not its sender."""
    alice, bob = await make_person("50.00"), await make_person()
    await pay(client, alice, bob, "12.50")
    told = await told_of(client, bob, "money_received")
    assert told["title"] == f"You received $12.50 from @{alice.username}"
    assert told["category"] == "money_received" and told["read"] is False
    assert told["about"].startswith("transfer/")
    assert (await feed(client, alice))["notifications"] == []


async def test_an_ach_add_funds_returned_r01_is_told_in_the_feed_and_by_email(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
) -> None:
    """The bank returns an add-funds with R01: the person's feed says so in words, and so does
    an email, sent over SMTP to the local sink and read back from disk; neither holds the code
    or the bank account's number."""
    person = await make_person()
    bank_id = await link_bank(person, "000987654321")
    started = await add_funds(client, person, "40.00", bank_account_id=bank_id)
    assert started.status_code == 202, started.text
    funding_id = started.json()["transfer_id"]
    returned = await client.post(
        f"/api/v1/sandbox/ach/{funding_id}/return", json={"return_code": "R01"}, headers=person.auth
    )
    assert returned.status_code == 200, returned.text
    told = await told_of(client, person, "funding_returned")
    assert told["title"] == "Your add-funds of $40.00 was returned"
    assert "insufficient funds in the bank account" in told["body"]
    assert told["about"] == f"funding/{funding_id}"
    text = await mailed(app, person.email, told["title"])
    assert "insufficient funds in the bank account" in text
    assert "R01" not in text + told["body"] and "987654321" not in text + told["body"]


async def test_the_feed_pages_newest_first_and_is_marked_read(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Five notifications, two a page: newest first, none repeated, the last page without a
    cursor. Marking two by id, then one and all older (`up_to`), leaves the newest unread."""
    bob = await make_person()
    batch = [events.debt("opened", bob.user_id, f"{n}.00", f"{n}.00") for n in range(1, 6)]
    await seed(app, batch)
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    for _ in range(5):
        page = await feed(client, bob, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(page["notifications"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    shown = [n for p in pages for n in p]
    assert [n["title"] for n in shown] == [f"Your wallet owes ${n}.00" for n in range(5, 0, -1)]
    assert page["unread_count"] == 5
    marked = await client.post(
        "/api/v1/notifications/read",
        json={"ids": [shown[0]["id"], shown[1]["id"], shown[0]["id"]]},
        headers=bob.auth,
    )
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"marked": 2, "unread_count": 3}
    unread = await feed(client, bob, unread="true")
    assert [n["id"] for n in unread["notifications"]] == [n["id"] for n in shown[2:]]
    up_to = await client.post(
        "/api/v1/notifications/read", json={"up_to": shown[3]["id"]}, headers=bob.auth
    )
    assert up_to.json() == {"marked": 2, "unread_count": 1}
    after = (await feed(client, bob))["notifications"]
    assert [n["read"] for n in after] == [True, True, False, True, True]
    assert all(n["read_at"] for n in after if n["read"])


async def test_a_person_sees_and_marks_only_their_own(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Another person's notification is not in one's feed, and naming it to mark it read is a
    404 that marks nothing (one's own named with it included); without a token, 401."""
    bob, carol = await make_person(), await make_person()
    await seed(app, [events.user_event("frozen", bob.user_id)])
    await seed(app, [events.user_event("unfrozen", carol.user_id)])
    [bobs] = (await feed(client, bob))["notifications"]
    [carols] = (await feed(client, carol))["notifications"]
    for body in ({"ids": [carols["id"], bobs["id"]]}, {"up_to": bobs["id"]}):
        refused = await client.post("/api/v1/notifications/read", json=body, headers=carol.auth)
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "not_found" and refused.json()["id"] == bobs["id"]
    assert (await feed(client, bob))["unread_count"] == 1
    assert (await feed(client, carol))["unread_count"] == 1
    for request in (
        client.get("/api/v1/notifications"),
        client.post("/api/v1/notifications/read", json={"up_to": bobs["id"]}),
        client.get("/api/v1/notifications/preferences"),
        client.put("/api/v1/notifications/preferences", json={}),
    ):
        response = await request
        assert response.status_code == 401, response.text


async def test_bad_feed_requests_are_problems_naming_the_value(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A cursor not given out, a limit out of range, both or neither of ids and up_to, an id
    that is no uuid, too many ids: 422 problems naming the field."""
    bob = await make_person()
    cases = [
        ("GET", {"cursor": "bm90LWEtY3Vyc29y"}, None, "cursor"),
        ("GET", {"limit": "0"}, None, "limit"),
        ("POST", None, {"ids": [str(uuid.uuid4())], "up_to": str(uuid.uuid4())}, "ids"),
        ("POST", None, {}, "ids"),
        ("POST", None, {"ids": ["not-a-uuid"]}, "ids"),
        ("POST", None, {"ids": [str(uuid.uuid4()) for _ in range(101)]}, "ids"),
    ]
    for method, params, body, field in cases:
        url = "/api/v1/notifications" + ("/read" if method == "POST" else "")
        response = await client.request(method, url, params=params, json=body, headers=bob.auth)
        assert response.status_code == 422, (params, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"].startswith(field), response.json()


async def test_preferences_are_shown_changed_and_followed(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Every category on by default; email off for money received is kept, shown, and followed
    (the next transfer is in the feed, not mailed); the account feed cannot be turned off; an
    unknown category or a switch that is not a boolean is refused. Others keep theirs."""
    alice, bob = await make_person("20.00"), await make_person()
    url = "/api/v1/notifications/preferences"
    shown = await client.get(url, headers=bob.auth)
    assert shown.status_code == 200, shown.text
    defaults = {p["category"]: p for p in shown.json()["preferences"]}
    assert set(defaults) == {"money_received", "transfers", "funding", "account", "developers"}
    assert all(p["feed"] and p["email"] for p in defaults.values())
    assert defaults["account"]["feed_optional"] is False
    put = await client.put(url, json={"money_received": {"email": False}}, headers=bob.auth)
    assert put.status_code == 200, put.text
    now = {p["category"]: p for p in put.json()["preferences"]}
    assert (now["money_received"]["feed"], now["money_received"]["email"]) == (True, False)
    assert (await client.get(url, headers=bob.auth)).json() == put.json()
    assert (await client.get(url, headers=alice.auth)).json() == shown.json()
    for body, code in (
        ({"account": {"feed": False}}, "feed_required"),
        ({"nope": {"email": False}}, "validation_error"),
        ({"transfers": {"email": "no"}}, "validation_error"),
    ):
        refused = await client.put(url, json=body, headers=bob.auth)
        assert (refused.status_code, refused.json()["code"]) == (422, code), refused.text
    await pay(client, alice, bob, "1.00")
    told = await told_of(client, bob, "money_received")
    email = await app.state.pool.fetchval(
        "SELECT email_status FROM notifications WHERE id = $1", uuid.UUID(told["id"])
    )
    assert email == "none"


def test_the_preferences_body_names_every_category() -> None:
    """PUT /notifications/preferences takes one field a category, no more, no fewer."""
    assert set(PreferencesIn.model_fields) == set(CATEGORIES)
