"""An add-money the risk engine holds for verification, in a real browser: the movement page
says so and asks for the PIN; a wrong PIN is told with the tries left, the right one
completes it (the card charged and the wallet credited then, once)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.funding import cards
from billfold.ledger.accounts import get_account, open_clearing_account
from billfold.merchants import profiles
from billfold.risk.places import remember_places
from billfold.risk.rules import RiskRules
from billfold.wallet import pins
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, log_in, make_user
from tests.world import World, running_app

PIN = "2468"


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The shipped rules (a device the person never used is a step-up); the model scores but
    does not decide, as in tests/wallet."""
    async with running_app(settings, risk_rules=RiskRules(model_decides=False)) as app:
        yield app


async def test_a_held_add_money_is_confirmed_with_the_pin(page: Any, app: FastAPI) -> None:
    """Held for verification: nothing charged nor credited until the right PIN."""
    s = app.state
    user = await make_user(app)
    change = await pins.check_set_pin(
        s.pool, s.redis, s.settings, user.id, PIN, password=PASSWORD, current_pin=None
    )
    await pins.do_set_pin(s.pool, change)
    token = await s.cards.tokenize(user.id, "4242424242424242", 12, 2030, "123")
    await cards.add_card(s.pool, s.funding.keys, s.cards, user.id, token["token"])
    # Known on their home phone; this browser is a device they never used.
    await remember_places(s.pool, str(user.id), "home-phone", None, "127.0.0.1")
    await log_in(page, user.username)
    await page.goto("/app/add-funds")
    await page.get_by_label("Amount (USD)").fill("20.00")
    await page.get_by_role("button", name="Add money").click()
    await page.wait_for_url("**/app/movements/*")
    status = await page.get_by_test_id("movement-status").inner_text()
    assert status.startswith("Held for verification."), status
    await assert_accessible(page)
    await screenshot(page, "funding-movement-held")
    held = await s.pool.fetchrow(
        "SELECT id, status, risk_status FROM funding_transfers WHERE user_id = $1", user.id
    )
    assert (held["status"], held["risk_status"]) == ("pending", "pending_verification")
    assert (await get_account(s.pool, user.account_id)).posted_minor == 0

    await page.get_by_label("Your PIN").fill("1111")
    async with page.expect_response(lambda r: r.url.endswith("/verify")) as info:
        await page.get_by_role("button", name="Confirm").click()
    assert (await info.value).status == 403
    assert "wrong PIN" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Your PIN").get_attribute("aria-invalid") == "true"
    await assert_accessible(page)
    assert (await get_account(s.pool, user.account_id)).posted_minor == 0

    await page.get_by_label("Your PIN").fill(PIN)
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(f"**/app/movements/{held['id']}")
    status = await page.get_by_test_id("movement-status").inner_text()
    assert status.startswith("Completed."), status
    assert (await get_account(s.pool, user.account_id)).posted_minor == 20_00
    charges = await s.pool.fetchval(
        "SELECT count(*) FROM sandbox_card_charges WHERE token = $1", token["token"]
    )
    assert charges == 1


async def test_a_held_payout_is_confirmed_with_the_pin_on_the_payouts_page(
    page: Any, app: FastAPI
) -> None:
    """A payout from a browser the owner never used waits for their PIN, its money held in
    the business's account; a wrong PIN is told with the tries left, the right one sends it
    to the bank (pending), once."""
    world = World(app)
    s = app.state
    owner = await world.person()
    await world.set_pin(owner, PIN)
    bank_id = await world.bank(owner, "000123456789")
    new = profiles.check_create_merchant("Night Market", "5814", "Oakland", "US")
    shop = await profiles.do_create_merchant(s.pool, owner.id, new)
    clearing = await open_clearing_account(s.pool, "USD", name="test:bank_clearing:USD")
    await s.ledger.move(
        "test",
        str(uuid.uuid4()),
        debit_account_id=clearing.id,
        credit_account_id=shop.account_id,
        amount_minor=30_00,
        currency="USD",
        code="test",
    )
    await log_in(page, owner.username)
    await page.goto(f"/app/merchant/{shop.id}/payouts")
    await page.get_by_label("Amount", exact=True).fill("12.00")
    await page.get_by_label("To", exact=True).select_option(bank_id)
    await page.get_by_role("button", name="Pay out").click()
    await page.get_by_text("Payout of $12.00 requested: pending verification.").wait_for()
    waiting = page.get_by_test_id("payouts-waiting")
    pin = waiting.get_by_label(re.compile(r"^Your PIN for the \$12\.00 payout"))
    await assert_accessible(page)
    await screenshot(page, "merchant-payout-held")
    account = await get_account(s.pool, shop.account_id)
    assert (account.posted_minor, account.pending_debits_minor) == (30_00, 12_00)

    await pin.fill("1111")
    async with page.expect_response(lambda r: r.url.endswith("/verify")) as answered:
        await waiting.get_by_role("button", name="Confirm payout").click()
    assert (await answered.value).status == 403
    assert "wrong PIN" in await page.get_by_role("alert").inner_text()
    assert "2 tries left" in await waiting.inner_text()
    assert await pin.get_attribute("aria-invalid") == "true"
    await assert_accessible(page)

    await pin.fill(PIN)
    await waiting.get_by_role("button", name="Confirm payout").click()
    await page.get_by_text("Payout of $12.00 confirmed: pending.").wait_for()
    assert await page.get_by_test_id("payouts-waiting").count() == 0
    made = await s.pool.fetchrow(
        "SELECT status, risk_status FROM funding_transfers WHERE merchant_id = $1", shop.id
    )
    assert (made["status"], made["risk_status"]) == ("pending", None)
    account = await get_account(s.pool, shop.account_id)
    assert (account.posted_minor, account.pending_debits_minor) == (30_00, 12_00)
