"""An add-money the risk engine holds for verification, in a real browser: the movement page
says so and asks for the PIN; a wrong PIN is told with the tries left, the right one
completes it (the card charged and the wallet credited then, once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.funding import cards
from billfold.ledger.accounts import get_account
from billfold.risk.places import remember_places
from billfold.risk.rules import RiskRules
from billfold.wallet import pins
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, log_in, make_user
from tests.world import running_app

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
