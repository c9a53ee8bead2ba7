"""Money in and out in a real browser: a card added and charged, a bank account linked and
verified with its micro-deposits, money added by ACH and cashed out (pending shown), bad input
refused on the page, and what the ledger and the funding tables hold afterwards."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI

from billfold.ledger.accounts import get_account
from billfold.wallet.users import User
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import fund, log_in, make_user, new_person, sign_up

CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000000000000002"
ACCOUNT = "000123456789"


async def _user(app: FastAPI, username: str) -> Any:
    return await app.state.pool.fetchrow(
        "SELECT u.id, w.account_id FROM users u JOIN wallets w ON w.user_id = u.id"
        " WHERE u.username = $1",
        username,
    )


async def _movements(app: FastAPI, user_id: uuid.UUID) -> list[tuple[str, str, str, int]]:
    rows = await app.state.pool.fetch(
        """SELECT purpose, rail, status, amount_minor FROM funding_transfers
            WHERE user_id = $1 AND purpose <> 'micro_deposit' ORDER BY created_at""",
        user_id,
    )
    return [tuple(r) for r in rows]


async def _submit(page: Any, button: str, path: str) -> Any:
    """Click `button`; the response to the form's POST to `path`."""
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith(path)
    ) as info:
        await page.get_by_role("button", name=button).click()
    await page.wait_for_load_state()
    return await info.value


async def _add_card(page: Any, number: str) -> None:
    await page.goto("/app/banks")
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill("2030")
    await page.get_by_label("Security code (CVC)").fill("123")
    await page.get_by_role("button", name="Add card").click()
    await page.wait_for_url("**/app/banks?done=card-added")


async def test_sign_up_add_a_card_and_add_50_dollars_by_card(page: Any, app: FastAPI) -> None:
    """A card added in the browser is charged for $50.00: the wallet shows $50.00, the ledger
    holds it, and no page nor table holds the card number."""
    person = new_person()
    await sign_up(page, person)
    await page.get_by_role("link", name="Banks & cards").click()
    await page.wait_for_url("**/app/banks")
    await assert_accessible(page)
    await _add_card(page, CARD)
    row = page.get_by_test_id("card-4242")
    assert "Visa •••• 4242" in await row.inner_text()
    assert "12/2030" in await row.inner_text()
    assert "4242424242424242" not in await page.content()
    await assert_accessible(page)

    await page.get_by_role("link", name="Add money").click()
    await page.wait_for_url("**/app/add-funds")
    await assert_accessible(page)
    await screenshot(page, "funding-add-funds")
    await page.get_by_label("Amount (USD)").fill("50.00")
    await page.get_by_role("button", name="Add money").click()
    await page.wait_for_url("**/app/movements/*")
    status = page.get_by_test_id("movement-status")
    assert (await status.inner_text()).startswith("Completed.")
    await assert_accessible(page)
    await screenshot(page, "funding-movement")

    await page.get_by_role("link", name="Back to your wallet").click()
    await page.wait_for_url("**/app")
    assert await page.get_by_test_id("balance").inner_text() == "$50.00"
    user = await _user(app, person["username"])
    assert (await get_account(app.state.pool, user["account_id"])).posted_minor == 50_00
    assert await _movements(app, user["id"]) == [("add_funds", "card", "settled", 50_00)]
    stored = await app.state.pool.fetchrow(
        "SELECT c::text AS card FROM cards c WHERE user_id = $1", user["id"]
    )
    tokens = await app.state.pool.fetchval(
        "SELECT string_agg(t::text, ' ') FROM sandbox_card_tokens t WHERE user_id = $1", user["id"]
    )
    assert "4242424242424242" not in stored["card"] + tokens and "123" not in tokens


async def test_a_double_submit_adds_money_once_and_a_declined_card_is_told(
    page: Any, app: FastAPI
) -> None:
    """The same form sent twice (its idempotency key) adds money once; a declined card is a
    402 on the form and moves nothing."""
    user = await make_user(app)
    await log_in(page, user.username)
    await _add_card(page, CARD)
    await page.goto("/app/add-funds")
    form = {
        "csrf_token": await page.locator("input[name=csrf_token]").first.input_value(),
        "idempotency_key": await page.locator("input[name=idempotency_key]").input_value(),
        "source": await page.get_by_label(re.compile("Visa card")).get_attribute("value"),
        "amount": "7.00",
    }
    sent = [
        await page.context.request.post("/app/add-funds", form=form, max_redirects=0)
        for _ in range(2)
    ]
    assert [r.status for r in sent] == [303, 303]
    assert sent[0].headers["location"] == sent[1].headers["location"]
    assert await _movements(app, user.id) == [("add_funds", "card", "settled", 7_00)]

    await page.goto("/app/banks")
    await page.get_by_role("button", name="Remove card ending 4242").click()
    await page.wait_for_url("**/app/banks?done=card-removed")
    assert await page.get_by_test_id("card-4242").count() == 0
    await _add_card(page, DECLINED_CARD)
    await page.goto("/app/add-funds")
    await page.get_by_label("Amount (USD)").fill("9.00")
    refused = await _submit(page, "Add money", "/app/add-funds")
    assert refused.status == 402
    assert "was declined" in await page.get_by_role("alert").inner_text()
    assert await _movements(app, user.id) == [("add_funds", "card", "settled", 7_00)]
    assert (await get_account(app.state.pool, user.account_id)).posted_minor == 7_00


async def _link_bank(page: Any, routing: str = "011000015") -> Any:
    await page.get_by_label("Routing number").fill(routing)
    await page.get_by_label("Account number").fill(ACCOUNT)
    await page.get_by_label("Account holder name").fill("Ada Lovelace")
    await page.get_by_label("Account type").select_option("savings")
    return await _submit(page, "Link bank account", "/app/banks")


async def test_link_verify_add_by_ach_cash_out_and_unlink_a_bank(page: Any, app: FastAPI) -> None:
    """A bank account linked (a bad routing number refused first), verified with its
    micro-deposits (wrong amounts refused first), money added from it (pending) and cashed out
    to it (pending), bad amounts refused, then unlinked; the tables agree at each step."""
    pool = app.state.pool
    user = await make_user(app)
    await fund(app, user, 100_00)
    await log_in(page, user.username)
    await page.goto("/app/banks")
    refused = await _link_bank(page, "123456789")
    assert refused.status == 422
    assert "routing number '123456789'" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Routing number").get_attribute("aria-invalid") == "true"
    linked = await pool.fetchval("SELECT count(*) FROM bank_accounts WHERE user_id = $1", user.id)
    assert linked == 0
    await assert_accessible(page)

    assert (await _link_bank(page)).status == 303
    await page.wait_for_url("**/app/banks?done=linked")
    row = page.get_by_test_id("bank-6789")
    assert "Awaiting verification" in await row.inner_text()
    assert ACCOUNT not in await page.content()
    stored = await pool.fetchrow(
        "SELECT id, micro_amounts FROM bank_accounts WHERE user_id = $1", user.id
    )
    real = [f"0.{a:02d}" for a in stored["micro_amounts"]]
    aid = await page.get_by_test_id("sandbox-deposits-6789").inner_text()
    assert all(f"${a}" in aid for a in real)
    await assert_accessible(page)

    first = int(real[0][2:])
    wrong = f"0.{first + 1 if first < 99 else first - 1:02d}"
    refused = await _verify(page, wrong, real[1])
    assert refused.status == 422
    assert "do not match" in await page.get_by_role("alert").inner_text()
    status = await pool.fetchval("SELECT status FROM bank_accounts WHERE id = $1", stored["id"])
    assert status == "pending_verification"
    assert (await _verify(page, real[1], real[0])).status == 303
    await page.wait_for_url("**/app/banks?done=verified")
    assert "Verified" in await page.get_by_test_id("bank-6789").inner_text()
    await screenshot(page, "funding-banks")

    await page.goto("/app/add-funds")
    await page.get_by_label(re.compile("Bank account •••• 6789")).check()
    for bad in ("0", "1.001"):
        await page.get_by_label("Amount (USD)").fill(bad)
        refused = await _submit(page, "Add money", "/app/add-funds")
        assert refused.status == 422
        assert f"amount '{bad}'" in await page.get_by_role("alert").inner_text()
        assert await page.get_by_label("Amount (USD)").get_attribute("aria-invalid") == "true"
    assert await _movements(app, user.id) == []
    await page.get_by_label("Amount (USD)").fill("20.00")
    await page.get_by_role("button", name="Add money").click()
    await page.wait_for_url("**/app/movements/*")
    assert (await page.get_by_test_id("movement-status").inner_text()).startswith("Pending.")
    assert await _movements(app, user.id) == [("add_funds", "ach", "pending", 20_00)]

    await page.get_by_role("link", name="Cash out", exact=True).click()
    await page.wait_for_url("**/app/cash-out")
    await assert_accessible(page)
    await screenshot(page, "funding-cash-out")
    await page.get_by_label("Amount (USD)").fill("0")
    assert (await _submit(page, "Cash out", "/app/cash-out")).status == 422
    await page.get_by_label("Amount (USD)").fill("5.00")
    await page.get_by_role("button", name="Cash out").click()
    await page.wait_for_url("**/app/movements/*")
    assert (await page.get_by_test_id("movement-status").inner_text()).startswith("Pending.")
    await assert_accessible(page)
    assert (await _movements(app, user.id))[1:] == [("cash_out", "ach", "pending", 5_00)]
    wallet = await get_account(pool, user.account_id)
    assert wallet.posted_minor == 100_00 and wallet.pending_debits_minor == 5_00

    await page.goto("/app/banks")
    await page.get_by_role("button", name="Unlink account ending 6789").click()
    await page.wait_for_url("**/app/banks?done=unlinked")
    assert await page.get_by_test_id("bank-6789").count() == 0
    status = await pool.fetchval("SELECT status FROM bank_accounts WHERE id = $1", stored["id"])
    assert status == "unlinked"


async def _verify(page: Any, first: str, second: str) -> Any:
    await page.get_by_label("Deposit 1").fill(first)
    await page.get_by_label("Deposit 2").fill(second)
    return await _submit(page, "Verify", "/verify")


async def test_add_funds_on_a_phone(page: Any, app: FastAPI) -> None:
    """The add-money page at 390x844: accessible, its form usable."""
    user: User = await make_user(app)
    await log_in(page, user.username)
    await _add_card(page, CARD)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto("/app/add-funds")
    await assert_accessible(page)
    assert await page.get_by_label("Amount (USD)").is_visible()
    await screenshot(page, "funding-add-funds-phone")


async def test_a_refused_card_number_is_never_repeated(page: Any, app: FastAPI) -> None:
    """A card number with a wrong check digit, or one the input gate refuses, is refused on the
    page naming the field, never the number; the CVC neither; no card is stored."""
    user = await make_user(app)
    await log_in(page, user.username)
    await page.goto("/app/banks")
    await page.get_by_label("Card number").fill("4242 4242 4242 4241")
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill("2030")
    await page.get_by_label("Security code (CVC)").fill("987")
    refused = await _submit(page, "Add card", "/app/cards")
    assert refused.status == 422
    assert "card number is not a valid card number" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Card number").get_attribute("aria-invalid") == "true"
    text = await refused.text()
    assert "4242424242424241" not in text and "4242 4242 4242 4241" not in text
    assert 'value="987"' not in text
    await assert_accessible(page)
    form = {
        "csrf_token": await page.locator("input[name=csrf_token]").first.input_value(),
        "number": "4242424242424242\x00",
        "exp_month": "12",
        "exp_year": "2030",
        "cvc": "987\x00",
    }
    sent = await page.context.request.post("/app/cards", form=form)
    assert sent.status == 422 and "4242424242424242" not in await sent.text()
    stored = await app.state.pool.fetchval("SELECT count(*) FROM cards WHERE user_id = $1", user.id)
    assert stored == 0
