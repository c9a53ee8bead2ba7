"""A new person's first day in a real browser, end to end: sign up, add a card, add $50.00 by
card, send $20.00 to a friend, who sees it arrive in another browser; each movement opens its
one page, the history filters by several types at once, and the ledger agrees and reconciles."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from billfold.ledger.reconcile import reconcile
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import log_in, make_user, new_person, sign_up

UUID = r"[0-9a-f]{8}-[0-9a-f-]{27}"


async def posted_and_held(app: FastAPI, username: str) -> tuple[int, int]:
    """The person's wallet as the ledger holds it: posted cents, and cents held out of it."""
    row = await app.state.pool.fetchrow(
        """SELECT a.posted_minor, a.pending_debits_minor FROM users u
             JOIN wallets w ON w.user_id = u.id JOIN accounts a ON a.id = w.account_id
            WHERE u.username = $1""",
        username,
    )
    return int(row["posted_minor"]), int(row["pending_debits_minor"])


async def add_a_card(page: Any) -> None:
    await page.get_by_role("link", name="Banks & cards").click()
    await page.wait_for_url("**/app/banks")
    await page.get_by_label("Card number").fill("4242 4242 4242 4242")
    await page.get_by_label("Expiry month").fill("12")
    await page.get_by_label("Expiry year").fill("2030")
    await page.get_by_label("Security code (CVC)").fill("123")
    await page.get_by_role("button", name="Add card").click()
    await page.wait_for_url("**/app/banks?done=card-added")


async def test_sign_up_add_money_by_card_and_send_to_a_friend(
    app: FastAPI, page: Any, browser: Any, base_url: str
) -> None:
    """Sign-up to a friend's notification: $50.00 in by card, $20.00 out to the friend, who
    sees it in their balance, history and notifications; the ledger holds $30.00 and $20.00,
    nothing held, and reconciles."""
    me, friend = new_person(), await make_user(app)
    await sign_up(page, me)
    await add_a_card(page)
    await page.get_by_role("link", name="Add money").click()
    await page.wait_for_url("**/app/add-funds")
    await page.get_by_label("Amount (USD)").fill("50.00")
    await page.get_by_role("button", name="Add money").click()
    await page.wait_for_url(re.compile(f"/app/movements/{UUID}$"))
    assert (await page.get_by_test_id("movement-status").inner_text()).startswith("Completed.")
    added = page.url.rsplit("/", 1)[1]

    await page.get_by_role("link", name="Back to your wallet").click()
    await page.wait_for_url("**/app")
    assert await page.get_by_test_id("balance").inner_text() == "$50.00"
    await page.get_by_role("link", name="Send money").click()
    await page.get_by_label("To (username, email or phone)").fill(friend.username)
    await page.get_by_label("Amount (USD)").fill("20.00")
    await page.get_by_label("Note (optional)").fill("concert tickets")
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
    assert await page.get_by_test_id("balance-after").inner_text() == "$30.00"
    assert await page.get_by_test_id("counterparty").inner_text() == "@" + friend.username
    await assert_accessible(page)
    sent = page.url.rsplit("/", 1)[1]

    # Each movement of the wallet's opens its one page: the add-funds its /app/movements page.
    await page.get_by_role("link", name="Back to your wallet").click()
    rows = page.get_by_test_id("history-row")
    assert await rows.count() == 2
    assert await rows.nth(0).get_by_role("link").get_attribute("href") == f"/app/transfers/{sent}"
    assert await rows.nth(1).get_by_role("link").get_attribute("href") == f"/app/movements/{added}"
    redirected = await page.request.get(f"/app/transfers/{added}", max_redirects=0)
    assert redirected.status == 303
    assert redirected.headers["location"] == f"/app/movements/{added}"

    # The history's types, several at once (as the API's repeated `type`).
    await page.goto("/app/history")
    await page.get_by_label("Add funds").check()
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 1 and "Add funds" in await rows.first.inner_text()
    # The wallet got $50.00; the card paid that and its fee.
    assert "+$50.00" in await rows.first.inner_text()
    assert "charged, fee" in await rows.first.inner_text()
    assert await page.get_by_label("Add funds").is_checked()
    await page.get_by_label("Person to person").check()
    await page.get_by_role("button", name="Show").click()
    assert await rows.count() == 2
    assert "type=p2p&type=add_funds" in page.url
    await assert_accessible(page)
    await screenshot(page, "polish-history-types")

    theirs_context = await browser.new_context(base_url=base_url)
    try:
        theirs = await theirs_context.new_page()
        await log_in(theirs, friend.username)
        assert await theirs.get_by_test_id("balance").inner_text() == "$20.00"
        row = theirs.get_by_test_id("history-row").first
        assert "From @" + me["username"] in await row.inner_text()
        assert "+$20.00" in await row.inner_text()
        await row.get_by_role("link").click()
        await theirs.wait_for_url(f"**/app/transfers/{sent}")
        assert await theirs.get_by_role("heading", name="Transfer received").is_visible()
        assert await theirs.get_by_test_id("counterparty").inner_text() == "@" + me["username"]
        await assert_accessible(theirs)
        await screenshot(theirs, "polish-movement-received")
        # The ledger's event is relayed and consumed into the friend's feed.
        for _ in range(40):
            await theirs.goto("/app/notifications")
            if await theirs.get_by_test_id("notification").count():
                break
            await theirs.wait_for_timeout(250)
        told = await theirs.get_by_test_id("notification").first.inner_text()
        assert "$20.00" in told, told
        assert await theirs.get_by_test_id("unread").inner_text() == "1 unread"
    finally:
        await theirs_context.close()

    assert await posted_and_held(app, me["username"]) == (30_00, 0)
    assert await posted_and_held(app, friend.username) == (20_00, 0)
    report = await reconcile(app.state.pool)
    assert report.ok, report.render()
