"""The wallet's money pages in a real browser, with the risk rules as shipped: send to a friend
who sees it arrive, a step-up answered with the PIN, three wrong PINs, paying a business from a
picture of its QR code, a frozen wallet, sending with the keyboard alone, and a phone's screen."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import segno
from fastapi import FastAPI

from billfold.config import Settings
from billfold.merchants import qr
from billfold.merchants.checkout import check_create_session, do_create_session, get_session
from billfold.merchants.profiles import check_create_merchant, do_create_merchant, static_payload
from billfold.risk.places import remember_places
from billfold.risk.rules import RiskRules
from billfold.wallet.pins import check_set_pin, do_set_pin
from billfold.wallet.standing import do_user_action
from billfold.wallet.users import User
from tests.web.browser import assert_accessible, chromium_or_skip, screenshot
from tests.web.people import PASSWORD, fund, log_in, make_user
from tests.world import running_app

PIN = "2468"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The shipped rule thresholds, the model scoring without deciding (these people are
    minutes old): a payment from a device the person never used is stepped up."""
    async with running_app(settings, risk_rules=RiskRules(model_decides=False)) as app:
        yield app


async def balance_minor(app: FastAPI, user: User) -> tuple[int, int]:
    """The wallet's posted balance and what is held out of it, in cents, from the ledger."""
    row = await app.state.pool.fetchrow(
        "SELECT posted_minor, pending_debits_minor FROM accounts WHERE id = $1", user.account_id
    )
    return int(row["posted_minor"]), int(row["pending_debits_minor"])


async def send_in_browser(page: Any, to: str, amount: str, note: str = "") -> None:
    await page.goto("/app/send")
    await page.get_by_label("To (username, email or phone)").fill(to)
    await page.get_by_label("Amount (USD)").fill(amount)
    if note:
        await page.get_by_label("Note (optional)").fill(note)
    await page.get_by_role("button", name="Send", exact=True).click()


async def on_a_new_device(app: FastAPI) -> User:
    """Someone with a PIN who used another device before: this browser is a new one."""
    user = await make_user(app)
    state = app.state
    await remember_places(state.pool, str(user.id), "their-old-phone", None, None)
    change = await check_set_pin(
        state.pool, state.redis, state.settings, user.id, PIN, password=PASSWORD, current_pin=None
    )
    await do_set_pin(state.pool, change)
    return user


async def test_money_sent_to_a_friend_arrives_in_their_balance_and_history(
    app: FastAPI, page: Any, browser: Any, base_url: str
) -> None:
    """Ada sends Bo $12.50 by email; Bo, signed in in another browser, sees it in their
    balance, their recent activity, the movement's page and their notifications."""
    ada, bo = await make_user(app), await make_user(app)
    await fund(app, ada, 50_00)
    await log_in(page, ada.username)
    await page.get_by_role("link", name="Send money").click()
    await assert_accessible(page)
    await screenshot(page, "wallet-send")
    await send_in_browser(page, bo.email, "12.50", "pizza night")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
    assert await page.get_by_test_id("balance-after").inner_text() == "$37.50"
    await assert_accessible(page)
    await screenshot(page, "wallet-movement")
    assert await balance_minor(app, ada) == (37_50, 0)
    assert await balance_minor(app, bo) == (12_50, 0)

    friend = await browser.new_context(base_url=base_url)
    try:
        theirs = await friend.new_page()
        await log_in(theirs, bo.username)
        assert await theirs.get_by_test_id("balance").inner_text() == "$12.50"
        row = theirs.get_by_test_id("history-row").first
        assert "From @" + ada.username in await row.inner_text()
        assert "+$12.50" in await row.inner_text()
        await assert_accessible(theirs)
        await screenshot(theirs, "wallet-home-activity")
        await row.get_by_role("link").click()
        assert await theirs.get_by_role("heading", name="Transfer received").is_visible()
        assert await theirs.get_by_test_id("amount").inner_text() == "$12.50"
        # The ledger's event is relayed and consumed into Bo's feed.
        for _ in range(40):
            await theirs.goto("/app/notifications")
            if await theirs.get_by_test_id("notification").count():
                break
            await theirs.wait_for_timeout(250)
        assert await theirs.get_by_test_id("unread").inner_text() == "1 unread"
        await assert_accessible(theirs)
        await screenshot(theirs, "wallet-notifications")
        await theirs.get_by_role("button", name="Mark all as read").click()
        await theirs.wait_for_url("**/app/notifications")
        assert await theirs.get_by_test_id("unread").inner_text() == "0 unread"
    finally:
        await friend.close()


async def test_a_step_up_is_answered_with_the_pin(app: FastAPI, page: Any) -> None:
    """From a new device the transfer waits for the PIN, its money reserved; the PIN sends it."""
    cy, dee = await on_a_new_device(app), await make_user(app)
    await fund(app, cy, 40_00)
    await log_in(page, cy.username)
    await send_in_browser(page, dee.username, "15.00")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("status").inner_text() == "PENDING_VERIFICATION"
    assert await balance_minor(app, cy) == (40_00, 15_00)
    await assert_accessible(page)
    await screenshot(page, "wallet-step-up")
    await page.get_by_label("Your PIN").fill(PIN)
    token = await page.locator("input[name=csrf_token]").first.input_value()
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
    # The PIN sent again (a double submit): the movement's page, nothing moved twice.
    again = await page.request.post(
        page.url + "/verify", form={"csrf_token": token, "pin": PIN}, max_redirects=0
    )
    assert again.status == 303 and page.url.endswith(again.headers["location"])
    assert await balance_minor(app, cy) == (25_00, 0)
    assert await balance_minor(app, dee) == (15_00, 0)


async def test_a_step_up_without_a_pin_set_leads_to_the_settings(app: FastAPI, page: Any) -> None:
    """Someone with no PIN yet is stepped up on a new device: confirming is refused with
    pin_not_set and a link to the settings, where the first PIN is set (not a change: no
    review); then it completes, once."""
    ivy, jon = await make_user(app), await make_user(app)
    await remember_places(app.state.pool, str(ivy.id), "their-old-phone", None, None)
    await fund(app, ivy, 20_00)
    await log_in(page, ivy.username)
    await send_in_browser(page, jon.username, "5.00")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    held_at = page.url
    assert await page.get_by_test_id("counterparty").inner_text() == "@" + jon.username
    await page.get_by_label("Your PIN").fill(PIN)
    async with page.expect_response(lambda r: r.url.endswith("/verify")) as answered:
        await page.get_by_role("button", name="Confirm").click()
    assert (await answered.value).status == 422
    assert "pin_not_set" in await page.get_by_role("alert").inner_text()
    await assert_accessible(page)
    await page.get_by_role("link", name="Set a PIN in Settings").click()
    await page.wait_for_url("**/app/settings")
    await page.get_by_label("New PIN", exact=True).fill(PIN)
    await page.get_by_label("New PIN again").fill(PIN)
    await page.get_by_label("Your password").fill(PASSWORD)
    await page.get_by_role("button", name="Set PIN").click()
    await page.wait_for_load_state()
    assert await balance_minor(app, ivy) == (20_00, 5_00)
    await page.goto(held_at)
    await page.get_by_label("Your PIN").fill(PIN)
    await page.get_by_role("button", name="Confirm").click()
    await page.wait_for_url(held_at)
    assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
    assert await balance_minor(app, ivy) == (15_00, 0)
    assert await balance_minor(app, jon) == (5_00, 0)


async def test_three_wrong_pins_decline_the_transfer_and_the_money_comes_back(
    app: FastAPI, page: Any
) -> None:
    eli, fay = await on_a_new_device(app), await make_user(app)
    await fund(app, eli, 30_00)
    await log_in(page, eli.username)
    await send_in_browser(page, fay.username, "20.00")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    for left in (2, 1):
        await page.get_by_label("Your PIN").fill("1111")
        await page.get_by_role("button", name="Confirm").click()
        assert "Wrong PIN" in await page.get_by_role("alert").inner_text()
        assert f"{left} tr" in await page.get_by_text("left before it is declined").inner_text()
    await assert_accessible(page)
    await screenshot(page, "wallet-wrong-pin")
    await page.get_by_label("Your PIN").fill("1111")
    await page.get_by_role("button", name="Confirm").click()
    outcome = await page.get_by_test_id("outcome").inner_text()
    assert "Declined after three wrong PINs" in outcome and "money is back" in outcome
    assert await page.get_by_label("Your PIN").count() == 0
    assert await balance_minor(app, eli) == (30_00, 0)
    assert await balance_minor(app, fay) == (0, 0)


async def test_a_transfer_held_for_review_says_so_with_the_money_reserved(
    app: FastAPI, page: Any
) -> None:
    """Paying someone the risk engine flagged goes to the operators' queue."""
    mo, flagged = await make_user(app), await make_user(app)
    await do_user_action(app.state.pool, None, "flag", str(flagged.id), "a test of a review")
    await fund(app, mo, 20_00)
    await log_in(page, mo.username)
    await send_in_browser(page, flagged.username, "8.00")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert "Held for review" in await page.get_by_test_id("outcome").inner_text()
    assert await page.get_by_label("Your PIN").count() == 0
    await assert_accessible(page)
    await screenshot(page, "wallet-held-for-review")
    assert await balance_minor(app, mo) == (20_00, 8_00)
    assert await balance_minor(app, flagged) == (0, 0)


async def test_a_transfer_declined_by_the_risk_checks_is_told_and_nothing_moves(
    app: FastAPI, page: Any
) -> None:
    """A new device in a new country (a takeover's look) declines it."""
    ola, pia = await make_user(app), await make_user(app)
    await remember_places(app.state.pool, str(ola.id), "their-old-phone", "US", None)
    await fund(app, ola, 20_00)
    await page.set_extra_http_headers({"X-Client-Country": "FR"})
    await log_in(page, ola.username)
    async with page.expect_response(lambda r: r.request.method == "POST") as answered:
        await send_in_browser(page, pia.username, "9.00")
    assert (await answered.value).status == 403
    assert "Declined by risk checks" in await page.get_by_role("alert").inner_text()
    await assert_accessible(page)
    assert await balance_minor(app, ola) == (20_00, 0)
    assert await balance_minor(app, pia) == (0, 0)


async def test_a_business_is_paid_from_a_picture_of_its_qr_code(
    app: FastAPI, page: Any, tmp_path: Path
) -> None:
    """The picture is read in the browser (jsQR); the server shows the merchant and asks the
    amount of a static code; the money reaches the merchant's account less its fee."""
    owner, gus = await make_user(app), await make_user(app)
    pool = app.state.pool
    shop = await do_create_merchant(
        pool, owner.id, check_create_merchant("Corner Bakery", "5462", "Oakland", "US")
    )
    picture = tmp_path / "code.png"
    picture.write_bytes(qr.image(static_payload(shop), "png"))
    await fund(app, gus, 20_00)
    await log_in(page, gus.username)
    await page.get_by_role("link", name="Pay a business").first.click()
    await assert_accessible(page)
    await screenshot(page, "wallet-pay")
    await page.get_by_label("Or a picture of the code").set_input_files(str(picture))
    await page.wait_for_url("**/app/pay/preview")
    assert await page.get_by_test_id("merchant-name").inner_text() == "Corner Bakery"
    await assert_accessible(page)
    await screenshot(page, "wallet-pay-preview")
    await page.get_by_label("Amount (USD)").fill("4.75")
    await page.get_by_role("button", name="Pay Corner Bakery").click()
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
    assert await page.get_by_test_id("balance-after").inner_text() == "$15.25"
    assert await page.get_by_test_id("counterparty").inner_text() == "Corner Bakery"
    assert await balance_minor(app, gus) == (15_25, 0)
    fee = await pool.fetchval(
        "SELECT fee_minor FROM merchant_payments WHERE merchant_id = $1", shop.id
    )
    credited = await pool.fetchval(
        "SELECT posted_minor FROM accounts WHERE id = $1", shop.account_id
    )
    assert credited == 4_75 - fee


def y4m_of(text: str, path: Path) -> Path:
    """A one-frame Y4M video (what Chromium's fake camera plays, looped) of the QR code of
    `text`, dark on light in the middle of a 640x480 frame."""
    width, height, scale = 640, 480, 6
    matrix = segno.make_qr(text, error="m", boost_error=False).matrix
    size = len(matrix) * scale
    left, top = (width - size) // 2, (height - size) // 2
    luma = bytearray(b"\xff" * (width * height))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    at = (top + y * scale + dy) * width + left + x * scale
                    luma[at : at + scale] = b"\x00" * scale
    chroma = b"\x80" * (width * height // 2)
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(luma) + chroma)
    return path


async def test_a_checkout_code_is_scanned_with_the_camera_and_paid(
    app: FastAPI, browser: Any, base_url: str, tmp_path: Path
) -> None:
    """Chromium's fake camera shows a checkout session's code: the page reads it, stops the
    camera, and the server shows its amount; the payer pays it, once."""
    owner, rae = await make_user(app), await make_user(app)
    pool = app.state.pool
    shop = await do_create_merchant(
        pool, owner.id, check_create_merchant("Night Market", "5812", "Austin", "US")
    )
    checkout_key = str(uuid.uuid4())
    opened, _ = await do_create_session(
        pool, shop, check_create_session(shop, "12.50", None, None, checkout_key)
    )
    video = y4m_of(opened["qr_payload"], tmp_path / "camera.y4m")
    await fund(app, rae, 30_00)
    camera = await browser.browser_type.launch(
        executable_path=chromium_or_skip(),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = await camera.new_context(base_url=base_url, permissions=["camera"])
        page = await context.new_page()
        await log_in(page, rae.username)
        await page.goto("/app/pay")
        # Keep the page when the code is read, to see that the camera was stopped.
        await page.evaluate(
            """() => {
              window.tracks = [];
              const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
              navigator.mediaDevices.getUserMedia = async (c) => {
                const media = await real(c);
                window.tracks.push(...media.getTracks());
                return media;
              };
              window.hold = (e) => e.preventDefault();
              document.querySelector("[data-scan-form]").addEventListener("submit", window.hold);
            }"""
        )
        await page.get_by_role("button", name="Scan with the camera").click()
        payload = page.get_by_label("Or paste the code's text")
        for _ in range(100):  # the camera's frames are read until one holds the code
            if await payload.input_value():
                break
            await page.wait_for_timeout(100)
        assert await payload.input_value() == opened["qr_payload"]
        assert await page.evaluate(
            "window.tracks.length > 0 && window.tracks.every(t => t.readyState === 'ended')"
        )
        assert await page.locator("video").is_hidden()
        await page.evaluate(
            """() => document.querySelector("[data-scan-form]")
                 .removeEventListener("submit", window.hold)"""
        )
        await page.get_by_role("button", name="Read the code").click()
        assert await page.get_by_test_id("code-amount").inner_text() == "$12.50"
        assert await page.get_by_label("Amount (USD)").count() == 0
        await page.get_by_role("button", name="Pay Night Market").click()
        await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
        assert await page.get_by_test_id("status").inner_text() == "COMPLETED"
        await context.close()
    finally:
        await camera.close()
    assert await balance_minor(app, rae) == (17_50, 0)
    paid = await get_session(pool, opened["session_id"])
    assert paid.status == "paid"


async def test_a_pasted_code_that_is_not_one_is_refused_naming_its_field(
    app: FastAPI, page: Any
) -> None:
    hal = await make_user(app)
    await log_in(page, hal.username)
    await page.goto("/app/pay")
    await page.get_by_label("Or paste the code's text").fill("000201010211" + "6304ABCD")
    await page.get_by_role("button", name="Read the code").click()
    assert (
        "field 63 of the QR payload fails its CRC" in await page.get_by_role("alert").inner_text()
    )
    await assert_accessible(page)


async def test_a_frozen_person_cannot_send_and_nothing_moves(app: FastAPI, page: Any) -> None:
    ivy, jo = await make_user(app), await make_user(app)
    await fund(app, ivy, 25_00)
    await do_user_action(app.state.pool, None, "freeze", str(ivy.id), "a test of a frozen wallet")
    await log_in(page, ivy.username)
    await send_in_browser(page, jo.username, "5.00")
    alert = await page.get_by_role("alert").inner_text()
    assert "frozen" in alert.lower()
    assert await page.get_by_label("Amount (USD)").input_value() == "5.00"
    await assert_accessible(page)
    assert await balance_minor(app, ivy) == (25_00, 0)
    assert await balance_minor(app, jo) == (0, 0)


async def test_a_person_can_send_with_the_keyboard_alone(app: FastAPI, page: Any) -> None:
    """Tab to the form, type, Enter: no pointer."""
    kim, lou = await make_user(app), await make_user(app)
    await fund(app, kim, 10_00)
    await log_in(page, kim.username)
    await page.goto("/app/send")
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "f-recipient":
            break
    await page.keyboard.type(lou.phone)
    await page.keyboard.press("Tab")
    await page.keyboard.type("3.25")
    await page.keyboard.press("Tab")
    await page.keyboard.type("coffee")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    assert await page.get_by_test_id("balance-after").inner_text() == "$6.75"
    assert await balance_minor(app, lou) == (3_25, 0)


async def test_the_wallet_and_the_send_form_fit_a_phone(app: FastAPI, page: Any) -> None:
    """At 390x844 nothing is wider than the screen; a refusal (an unknown recipient, a bad
    amount) is on the form, a 4xx, and a refreshed send moves the money once."""
    max_, ned = await make_user(app), await make_user(app)
    await fund(app, max_, 10_00)
    await page.set_viewport_size(PHONE)
    await log_in(page, max_.username)
    await screenshot(page, "wallet-home-phone")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.goto("/app/send")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await assert_accessible(page)
    await screenshot(page, "wallet-send-phone")
    await send_in_browser(page, "nobody_" + uuid.uuid4().hex[:8], "1.00")
    assert "nobody_" in await page.get_by_role("alert").inner_text()
    recipient = page.get_by_label("To (username, email or phone)")
    assert await recipient.get_attribute("aria-invalid") == "true"
    await recipient.fill(ned.username)
    await page.get_by_label("Amount (USD)").fill("50.00")
    await page.get_by_role("button", name="Send", exact=True).click()
    assert "insufficient_funds" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("Amount (USD)").get_attribute("aria-invalid") == "true"
    await page.get_by_label("To (username, email or phone)").fill(ned.username)
    await page.get_by_label("Amount (USD)").fill("1.234")
    async with page.expect_response("**/app/send") as answered:
        await page.get_by_role("button", name="Send", exact=True).click()
    assert (await answered.value).status == 422
    assert "1.234" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Amount (USD)").fill("2.00")
    form = {
        name: await page.locator(f"form[action='/app/send'] [name={name}]").input_value()
        for name in ("csrf_token", "idempotency_key", "recipient", "amount", "note")
    }
    await page.get_by_role("button", name="Send", exact=True).click()
    await page.wait_for_url(re.compile(r"/app/transfers/\d+$"))
    # The same form sent again (a double submit, a resent POST): the same transfer, once.
    again = await page.request.post("/app/send", form=form, max_redirects=0)
    assert again.status == 303 and page.url.endswith(again.headers["location"])
    assert await balance_minor(app, ned) == (2_00, 0)
