"""Issue 24, a step-up a thief cannot answer, over HTTP with the rules as shipped: a PIN
changed within 24 hours sends a held transfer to review, and only a device token of the user's
own names a device they used."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.risk.gate import UNVERIFIED_DEVICE
from billfold.risk.rules import RiskRules
from billfold.wallet.users import grant_admin
from tests.api.driver import balances, send, set_pin, verify

MakePerson = Callable[..., Awaitable[Any]]
NEW_DEVICE = "a device never seen for this user"


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """The shipped rule thresholds, the model scoring without deciding (these users are
    minutes old, as in test_risk.py), a generous time budget."""
    async with running(risk_rules=RiskRules(model_decides=False)) as app:
        yield app


async def reasons(app: FastAPI, response: httpx.Response) -> list[str]:
    await app.state.risk.log.flush()
    found = await app.state.pool.fetchval(
        "SELECT reasons FROM risk_assessments WHERE ref = $1",
        response.request.headers["idempotency-key"],
    )
    return list(found)


async def test_a_first_pin_set_with_the_password_clears_a_step_up_at_once(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Onboarding: a user minutes old sets their first PIN with the password, and it confirms
    a transfer from a new device there and then."""
    ada, bo = await make_person("50.00"), await make_person()
    await set_pin(client, ada, pin="2468", password=ada.password)
    held = await send(client, ada, bo, "10.00", ada.device("new-phone"))
    assert held.json()["status"] == "PENDING_VERIFICATION"
    done = await verify(client, ada, held.json()["transfer_id"], "2468")
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"
    assert await balances(client, bo) == ("10.00", "10.00")


async def test_a_held_transfer_goes_by_its_first_id_once_confirmed(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Issue 25: the id a held transfer was answered with names it in both people's history
    once it is confirmed (the ledger's post of the hold, with an id of its own, was listed),
    looked up there, it is COMPLETED."""
    dee, eli = await make_person("50.00"), await make_person()
    await set_pin(client, dee, pin="2468", password=dee.password)
    held = await send(client, dee, eli, "10.00", dee.device("new-phone"))
    assert held.json()["status"] == "PENDING_VERIFICATION", held.text
    transfer_id = held.json()["transfer_id"]
    assert (await verify(client, dee, transfer_id, "2468")).json()["status"] == "COMPLETED"
    for person in (dee, eli):
        rows = (
            await client.get(f"/api/v1/wallet/{person.user_id}/transactions", headers=person.auth)
        ).json()["transactions"]
        assert (rows[0]["id"], rows[0]["status"], rows[0]["amount"]) == (
            transfer_id,
            "COMPLETED",
            "10.00",
        )
        shown = await client.get(f"/api/v1/transfers/{transfer_id}", headers=person.auth)
        assert shown.json()["status"] == "COMPLETED"


async def test_a_first_pin_on_an_older_account_does_not_clear_a_step_up(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A thief with a phished password, on an account that never had a PIN: the first PIN they
    set sends the stepped-up transfer to review, the money held, as a changed PIN does."""
    cal, mule = await make_person("50.00"), await make_person()
    await app.state.pool.execute(
        "UPDATE users SET created_at = now() - interval '3 days' WHERE id = $1",
        uuid.UUID(cal.user_id),
    )
    await set_pin(client, cal, pin="2468", password=cal.password)
    held = await send(client, cal, mule, "20.00", cal.device("thief-phone"))
    assert held.json()["status"] == "PENDING_VERIFICATION"
    answered = await verify(client, cal, held.json()["transfer_id"], "2468")
    assert answered.status_code == 200 and answered.json()["status"] == "PENDING_REVIEW"
    assert await balances(client, mule) == ("0.00", "0.00")


async def test_a_pin_changed_within_a_day_sends_the_step_up_to_review_with_the_money_held(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The thief knows the password and changes the PIN: the right new PIN does not complete
    the stepped-up transfer but puts it in the operators' queue (PENDING_REVIEW), the money
    still held and the recipient paid nothing; once 24 hours have passed, a changed PIN
    completes a step-up again."""
    cy, mule, analyst = await make_person("100.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, analyst.username)
    await set_pin(client, cy, pin="1357", password=cy.password)
    await set_pin(client, cy, pin="8642", password=cy.password)
    held = await send(client, cy, mule, "60.00", cy.device("thief-phone"))
    assert held.json()["status"] == "PENDING_VERIFICATION"
    transfer_id = held.json()["transfer_id"]
    confirmed = await verify(client, cy, transfer_id, "8642")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "PENDING_REVIEW"
    assert await balances(client, cy) == ("100.00", "40.00")
    assert await balances(client, mule) == ("0.00", "0.00")
    shown = await client.get(f"/api/v1/transfers/{transfer_id}", headers=cy.auth)
    assert shown.json()["status"] == "PENDING_REVIEW"
    queue = (await client.get("/api/v1/admin/reviews", headers=analyst.auth)).json()
    queued = next(r for r in queue if r["review_id"] == transfer_id)
    assert "PIN changed within 24 hours answered the step-up" in queued["reasons"]
    again = await verify(client, cy, transfer_id, "8642")
    assert again.status_code == 409  # no longer waiting for a PIN
    # The thief's phone is not remembered: it was never confirmed.
    await app.state.pool.execute(
        "UPDATE users SET pin_changed_at = now() - interval '25 hours' WHERE id = $1",
        uuid.UUID(cy.user_id),
    )
    later = await send(client, cy, mule, "5.00", cy.device("thief-phone"))
    assert later.json()["status"] == "PENDING_VERIFICATION"
    done = await verify(client, cy, later.json()["transfer_id"], "8642")
    assert done.json()["status"] == "COMPLETED"


@pytest.mark.parametrize("presented", ["unsigned", "bad_signature", "another_users"])
async def test_a_device_token_not_the_users_own_is_a_device_they_never_used(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, presented: str
) -> None:
    """An unsigned value, a token whose signature was changed, or another user's valid token:
    the transfer is stepped up as from a new device, even for a user with no known device at
    all (whose first device would be where they start from), and confirming it with the PIN
    does not make that value a known device."""
    dee, eli, other = await make_person("30.00"), await make_person(), await make_person()
    own = dee.device_token
    value = {
        "unsigned": dee.home_device_id,
        "bad_signature": own[:-1] + ("A" if own[-1] != "A" else "B"),
        "another_users": other.device_token,
    }[presented]
    await app.state.pool.execute(
        "DELETE FROM user_devices WHERE user_id = $1", uuid.UUID(dee.user_id)
    )
    await set_pin(client, dee, pin="4444", password=dee.password)
    held = await send(client, dee, eli, "3.00", value)
    assert held.json()["status"] == "PENDING_VERIFICATION", held.text
    assert NEW_DEVICE in await reasons(app, held)
    assert (await verify(client, dee, held.json()["transfer_id"], "4444")).status_code == 200
    again = await send(client, dee, eli, "2.00", value)
    assert again.json()["status"] == "PENDING_VERIFICATION"
    remembered = await app.state.pool.fetchval(
        "SELECT count(*) FROM user_devices WHERE device_id = $1", UNVERIFIED_DEVICE
    )
    assert remembered == 0


async def test_a_valid_token_is_a_known_device_after_its_first_use_and_no_header_stays_none(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The sign-up device is known from the start. A login from a new device gets a token
    whose first transfer is stepped up; once confirmed, that token is a known device. A request
    with no X-Device-Id at all is "no device id", as before: no device reason."""
    fay, gil = await make_person("40.00"), await make_person()
    assert (await send(client, fay, gil, "1.00", fay.device_token)).json()["status"] == (
        "COMPLETED"
    )
    login = await client.post(
        "/api/v1/auth/token", data={"username": fay.username, "password": fay.password}
    )
    laptop = login.json()["device_token"]
    await set_pin(client, fay, pin="7777", password=fay.password)
    held = await send(client, fay, gil, "2.00", laptop)
    assert held.json()["status"] == "PENDING_VERIFICATION"
    assert (await verify(client, fay, held.json()["transfer_id"], "7777")).status_code == 200
    known = await send(client, fay, gil, "3.00", laptop)
    assert known.json()["status"] == "COMPLETED"
    assert NEW_DEVICE not in await reasons(app, known)
    bare = await send(client, fay, gil, "1.50", None)
    assert bare.json()["status"] == "COMPLETED"
    assert NEW_DEVICE not in await reasons(app, bare)


async def test_a_takeover_with_a_forged_device_token_is_declined_as_from_a_new_device(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A thief with the owner's session forges the owner's device token (its signature made
    up) and drains from abroad to a new payee: a new device in a new country, two strong
    signals, declined and frozen; nothing moves."""
    owner, friend, thief = await make_person("300.00"), await make_person(), await make_person()
    for amount in ("12.00", "8.50"):
        sent = await send(client, owner, friend, amount, owner.device_token, country="US")
        assert sent.json()["status"] == "COMPLETED"
    forged = owner.device_token.rsplit(".", 1)[0] + ".c2lnbmVkIGJ5IG5vYm9keQ"
    drained = await send(client, owner, thief, "250.00", forged, country="RO")
    assert drained.status_code == 403 and drained.json()["code"] == "declined_by_risk"
    assert {NEW_DEVICE, "country RO never seen for this user"} <= set(await reasons(app, drained))
    assert await balances(client, owner) == ("279.50", "279.50")
