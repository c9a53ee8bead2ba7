"""The business dashboard in a real browser: a person opens a shop, a payer pays it over the
API, the owner sees the payment and refunds part of it (the ledger moves the money back once),
makes and revokes an API key, prints the QR code and shows a checkout session's, registers a
webhook endpoint and resends a delivery, pays out; another person finds none of it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.merchants import checkout, profiles, sales
from billfold.merchants.profiles import Merchant
from billfold.wallet.users import User
from billfold_bench.rules import LOAD_TEST_RULES
from tests.api.driver import Person
from tests.merchants.scan import read_png, read_svg, scan
from tests.merchants.shop import pay, wallet_minor
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, fund, log_in, make_user
from tests.webhooks.conftest import always, receiving
from tests.world import running_app

UUID = r"[0-9a-f-]{36}"
# Webhook retries in fractions of a second, and receivers on 127.0.0.1 allowed.
FAST_HOOKS = {
    "webhooks_retry_first_s": 0.05,
    "webhooks_retry_max_s": 0.2,
    "webhooks_timeout_s": 1.0,
    "webhooks_poll_s": 0.05,
    "webhooks_allow_local": True,
}


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings, risk_rules=LOAD_TEST_RULES, **FAST_HOOKS) as app:
        yield app


@pytest.fixture(scope="module")
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in process, for what a payer's app and a merchant's server send."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def as_api_person(api: httpx.AsyncClient, user: User) -> Person:
    """`user` signed in to the API (their token and device), as their phone's app is."""
    token = await api.post(
        "/api/v1/auth/token", data={"username": user.username, "password": PASSWORD}
    )
    assert token.status_code == 200, token.text
    body = token.json()
    return Person(
        str(user.id),
        user.username,
        user.email,
        user.phone,
        PASSWORD,
        body["access_token"],
        body["device_token"],
    )


async def payer_with(app: FastAPI, api: httpx.AsyncClient, minor: int) -> Person:
    user = await make_user(app)
    await fund(app, user, minor)
    return await as_api_person(api, user)


async def shop_of(app: FastAPI, owner: User) -> Merchant:
    """A business of `owner`'s, opened through the merchants context (the browser's way is
    test_a_shop_is_paid_and_refunds_part_of_a_payment's)."""
    new = profiles.check_create_merchant("Corner Bakery", "5462", "Oakland", "US")
    return await profiles.do_create_merchant(app.state.pool, owner.id, new)


async def test_a_shop_is_paid_and_refunds_part_of_a_payment(
    app: FastAPI, api: httpx.AsyncClient, page: Any
) -> None:
    """Onboarded in the browser; a $20 payment seen with its fee; $5 refunded (the payer's
    wallet gets it, once); more than is left, and more than the shop has, refused on the form."""
    owner = await make_user(app)
    await log_in(page, owner.username)
    await page.get_by_role("link", name="Business", exact=True).click()
    await page.wait_for_url("**/app/merchant")
    await assert_accessible(page)
    await screenshot(page, "merchant-list")
    await page.get_by_label("Business name").fill("Corner Bakery")
    await page.get_by_label("Merchant category code").fill("5462")
    await page.get_by_label("City").fill("Oakland")
    await page.get_by_role("button", name="Open the business").click()
    await page.wait_for_url(re.compile(f"/app/merchant/{UUID}$"))
    merchant_id = page.url.rsplit("/", 1)[1]
    merchant = await profiles.owned_merchant(app.state.pool, owner.id, merchant_id)
    assert (merchant.name, merchant.city, merchant.country) == ("Corner Bakery", "Oakland", "US")

    payer = await payer_with(app, api, 50_00)
    paid = await pay(api, payer, qr_payload=profiles.static_payload(merchant), amount="20.00")
    assert paid.status_code == 201, paid.text
    await page.reload()
    # $20.00 less the fee: 1.9% (38 cents) and 10 cents.
    assert await page.get_by_test_id("merchant-balance").inner_text() == "$19.52"
    assert await page.get_by_role("cell", name=f"@{payer.username}").is_visible()
    await assert_accessible(page)
    await screenshot(page, "merchant-overview")
    await page.set_viewport_size({"width": 390, "height": 844})
    await assert_accessible(page)
    await screenshot(page, "merchant-overview-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})

    await page.get_by_role("link", name="Payments", exact=True).click()
    await page.get_by_label("Status").select_option("COMPLETED")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/payments?status=COMPLETED*")
    await assert_accessible(page)
    await screenshot(page, "merchant-payments")
    await page.locator("tbody a").first.click()
    await page.wait_for_url(re.compile(f"/payments/{UUID}$"))
    await assert_accessible(page)
    await page.get_by_label("Amount to refund").fill("5.00")
    await page.get_by_label("Reason").fill("A stale loaf")
    form = {
        name: await page.locator(f"form [name={name}]").last.input_value()
        for name in ("csrf_token", "idempotency_key", "amount", "reason")
    }
    action = await page.locator("form:has([name=idempotency_key])").get_attribute("action")
    await page.get_by_role("button", name="Refund").click()
    await page.get_by_text("Refunded $5.00 to the payer.").wait_for()
    assert await page.get_by_test_id("refunded").inner_text() == "$5.00"
    assert await page.get_by_role("cell", name="A stale loaf").is_visible()
    await assert_accessible(page)
    await screenshot(page, "merchant-payment")
    assert await wallet_minor(app, payer) == 50_00 - 20_00 + 5_00
    assert await posted(app, merchant) == 19_52 - 5_00

    # The same form sent again (a double submit) refunds nothing more: its key is the same.
    again = await page.request.post(action, form=form)
    assert again.status == 200 and "Refunded $5.00 to the payer." in await again.text()
    assert await wallet_minor(app, payer) == 35_00

    await page.get_by_label("Amount to refund").fill("15.01")
    await page.get_by_role("button", name="Refund").click()
    alert = page.get_by_role("alert")
    assert "refund_exceeds_payment" in await alert.inner_text()
    await assert_accessible(page)
    # All that is left ($15.00) is more than the shop holds ($14.52): the fee is not refunded.
    await page.get_by_label("Amount to refund").fill("")
    await page.get_by_role("button", name="Refund").click()
    assert "insufficient_funds" in await page.get_by_role("alert").inner_text()
    assert await wallet_minor(app, payer) == 35_00
    assert await posted(app, merchant) == 14_52

    await page.get_by_role("link", name="Activity").click()
    await page.get_by_label("Kind").select_option("refund")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/activity?type=refund*")
    rows = page.locator("tbody tr")
    assert await rows.count() == 1
    assert "−$5.00" in await rows.inner_text()
    assert f"@{payer.username}" in await rows.inner_text()
    await assert_accessible(page)
    await screenshot(page, "merchant-activity")


async def posted(app: FastAPI, merchant: Merchant) -> int:
    """The merchant account's posted balance in the ledger, in cents."""
    found = await app.state.pool.fetchval(
        "SELECT posted_minor FROM accounts WHERE id = $1", merchant.account_id
    )
    return int(found)


async def test_an_api_key_is_shown_once_and_refused_once_revoked(
    app: FastAPI, api: httpx.AsyncClient, page: Any
) -> None:
    owner = await make_user(app)
    merchant = await shop_of(app, owner)
    await log_in(page, owner.username)
    await page.goto(f"/app/merchant/{merchant.id}/keys")
    await page.get_by_role("button", name="Make a new key").click()
    secret = await page.get_by_label("Secret key").input_value()
    assert secret.startswith("sk_")
    assert await page.get_by_text("it is shown this once").is_visible()
    await assert_accessible(page)
    await screenshot(page, "merchant-keys")
    auth = {"Authorization": f"Bearer {secret}"}
    assert (await api.get("/api/v1/merchant", headers=auth)).status_code == 200
    await page.goto(f"/app/merchant/{merchant.id}/keys")
    assert secret not in await page.content()
    assert secret[:11] in await page.content()
    await page.get_by_role("button", name=re.compile("^Revoke key")).click()
    await page.get_by_text("The key is revoked.").wait_for()
    assert await page.get_by_role("cell", name=re.compile("^Revoked")).is_visible()
    refused = await api.get("/api/v1/merchant", headers=auth)
    assert refused.status_code == 401


async def test_the_qr_code_downloads_and_a_checkout_session_is_paid_or_canceled(
    app: FastAPI, api: httpx.AsyncClient, page: Any, tmp_path: Path
) -> None:
    """The static code (shown, PNG and SVG) reads back as the shop's payload; a session's
    dynamic code as its own; its state turns paid on the page when a payer pays it."""
    owner = await make_user(app)
    merchant = await shop_of(app, owner)
    await log_in(page, owner.username)
    await page.goto(f"/app/merchant/{merchant.id}/qr")
    shown = page.get_by_role("img", name=re.compile("QR code of Corner Bakery"))
    assert await shown.evaluate("img => img.complete && img.naturalWidth > 0")
    await assert_accessible(page)
    await screenshot(page, "merchant-qr")
    static = profiles.static_payload(merchant)
    for kind, reader in (("PNG", read_png), ("SVG", read_svg)):
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name=f"Download {kind}").click()
        download = await downloading.value
        assert download.suggested_filename == f"Corner-Bakery-qr.{kind.lower()}"
        path = tmp_path / download.suggested_filename
        await download.save_as(path)
        assert scan(reader(path.read_bytes()))[0] == static

    await page.get_by_label("Amount", exact=True).fill("12.50")
    await page.get_by_label("Your reference").fill("Order 7")
    await page.get_by_role("button", name="Show the QR code").click()
    await page.wait_for_url(re.compile(f"/checkout/{UUID}$"))
    session_id = page.url.rsplit("/", 1)[1]
    session = await checkout.show_session(app.state.pool, merchant, session_id)
    image = await page.request.get(f"{page.url}/qr.png")
    assert scan(read_png(await image.body()))[0] == session["qr_payload"]
    assert await page.get_by_test_id("session-status").inner_text() == "open"
    await assert_accessible(page)
    await screenshot(page, "merchant-session")
    payer = await payer_with(app, api, 20_00)
    paid = await pay(api, payer, qr_payload=session["qr_payload"])
    assert paid.status_code == 201, paid.text
    status = page.get_by_test_id("session-status")
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=session-status]').textContent === 'paid'",
        timeout=10_000,
    )
    assert await status.inner_text() == "paid"
    assert await page.get_by_role("link", name="See the payment").is_visible()

    await page.goto(f"/app/merchant/{merchant.id}/qr")
    await page.get_by_label("Amount", exact=True).fill("3.00")
    await page.get_by_role("button", name="Show the QR code").click()
    await page.wait_for_url(re.compile(f"/checkout/{UUID}$"))
    await page.get_by_role("button", name="Cancel the session").click()
    await page.get_by_text("The session is canceled").wait_for()
    assert await page.get_by_test_id("session-status").inner_text() == "canceled"
    await page.goto(f"/app/merchant/{merchant.id}/qr")
    await page.get_by_label("Amount", exact=True).fill("0.001")
    await page.get_by_role("button", name="Show the QR code").click()
    assert "amount" in await page.get_by_role("alert").inner_text()


async def test_a_webhook_endpoint_logs_deliveries_and_resends_one(
    app: FastAPI, api: httpx.AsyncClient, page: Any
) -> None:
    owner = await make_user(app)
    merchant = await shop_of(app, owner)
    await log_in(page, owner.username)
    with receiving(always(200)) as receiver:
        await page.goto(f"/app/merchant/{merchant.id}/webhooks")
        await page.get_by_label("Address").fill(receiver.url)
        await page.get_by_label("Event types").fill("payment.completed")
        await page.get_by_role("button", name="Register").click()
        assert (await page.get_by_label("Signing secret").input_value()).startswith("whsec_")
        await assert_accessible(page)
        await screenshot(page, "merchant-webhooks")
        payer = await payer_with(app, api, 10_00)
        paid = await pay(api, payer, qr_payload=profiles.static_payload(merchant), amount="4.00")
        assert paid.status_code == 201, paid.text
        assert await receiver.wait(lambda r: len(r.delivered()) == 1)
        await page.get_by_role("link", name="Deliveries").click()
        await _until_delivered(page)
        assert await page.get_by_role("cell", name=re.compile("HTTP 200")).is_visible()
        await assert_accessible(page)
        await screenshot(page, "merchant-deliveries")
        await page.get_by_role("button", name=re.compile("^Resend payment.completed")).click()
        await page.get_by_text("will be sent again now").wait_for()
        assert await receiver.wait(lambda r: len(r.delivered()) == 2)
        first, again = receiver.delivered()
        assert first.headers["webhook-id"] == again.headers["webhook-id"]
        await page.get_by_role("link", name="← Webhooks").click()
        await page.get_by_role("button", name=re.compile("^Delete the endpoint")).click()
        await page.get_by_text("The endpoint is deleted.").wait_for()
        assert await page.get_by_text("No endpoints yet.").is_visible()


async def _until_delivered(page: Any) -> None:
    for _ in range(50):
        if await page.get_by_test_id("delivery-status").filter(has_text="delivered").count():
            return
        await page.wait_for_timeout(200)
        await page.reload()
    raise AssertionError("the delivery log never showed the delivery")


async def test_payout_settings_and_a_payout_by_hand(
    app: FastAPI, api: httpx.AsyncClient, page: Any
) -> None:
    owner = await make_user(app)
    merchant = await shop_of(app, owner)
    payer = await payer_with(app, api, 30_00)
    paid = await pay(api, payer, qr_payload=profiles.static_payload(merchant), amount="20.00")
    assert paid.status_code == 201, paid.text
    person = await as_api_person(api, owner)
    bank_id = await _verified_bank(app, api, person)
    await log_in(page, owner.username)
    await page.goto(f"/app/merchant/{merchant.id}/payouts")
    await page.get_by_label("Daily").check()
    await page.get_by_label("Bank account paid out to").select_option(bank_id)
    await page.get_by_role("button", name="Save settings").click()
    await page.get_by_text("Payout settings saved.").wait_for()
    saved = await profiles.owned_merchant(app.state.pool, owner.id, str(merchant.id))
    assert (saved.payout_schedule, str(saved.payout_bank_account_id)) == ("daily", bank_id)
    await page.get_by_label("Amount", exact=True).fill("10.00")
    await page.get_by_role("button", name="Pay out").click()
    await page.get_by_text("Payout of $10.00 requested").wait_for()
    assert await page.get_by_role("cell", name="$10.00").is_visible()
    await assert_accessible(page)
    await screenshot(page, "merchant-payouts")
    account = await app.state.pool.fetchrow(
        "SELECT posted_minor, pending_debits_minor FROM accounts WHERE id = $1",
        merchant.account_id,
    )
    assert (account["posted_minor"], account["pending_debits_minor"]) == (19_52, 10_00)
    balance = await sales.merchant_balance(app.state.pool, saved)
    assert (balance["balance"], balance["available_balance"]) == ("19.52", "9.52")
    await page.get_by_label("Amount", exact=True).fill("9.53")
    await page.get_by_role("button", name="Pay out").click()
    assert "insufficient_funds" in await page.get_by_role("alert").inner_text()


async def _verified_bank(app: FastAPI, api: httpx.AsyncClient, person: Person) -> str:
    made = await api.post(
        "/api/v1/bank-accounts",
        json={
            "routing_number": "011000015",
            "account_number": "000123456789",
            "account_holder_name": "Ada Lovelace",
            "account_type": "checking",
        },
        headers=person.auth,
    )
    assert made.status_code == 201, made.text
    bank_id = str(made.json()["bank_account_id"])
    amounts = await app.state.pool.fetchval(
        "SELECT micro_amounts FROM bank_accounts WHERE id = $1", uuid.UUID(bank_id)
    )
    verified = await api.post(
        f"/api/v1/bank-accounts/{bank_id}/verify",
        json={"amounts": [f"0.{a:02d}" for a in amounts]},
        headers=person.auth,
    )
    assert verified.status_code == 200, verified.text
    return bank_id


async def test_another_person_finds_none_of_a_shops_pages(app: FastAPI, page: Any) -> None:
    """Every page of a business is a 404 to anyone but its owner, as one that does not exist."""
    owner, mallory = await make_user(app), await make_user(app)
    merchant = await shop_of(app, owner)
    await log_in(page, mallory.username)
    here = f"/app/merchant/{merchant.id}"
    for path in (
        here,
        f"{here}/payments",
        f"{here}/activity",
        f"{here}/qr",
        f"{here}/qr.png",
        f"{here}/keys",
        f"{here}/webhooks",
        f"{here}/payouts",
        f"/app/merchant/{uuid.uuid4()}",
    ):
        response = await page.goto(path)
        assert response.status == 404, path
        assert "Corner Bakery" not in await page.content()
    await assert_accessible(page)
    await page.goto("/app/merchant")
    assert not await page.get_by_role("link", name="Corner Bakery").count()
    refused = await page.request.post(
        f"{here}/keys", form={"csrf_token": await _csrf(page)}, max_redirects=0
    )
    assert refused.status == 404
    keys = await app.state.pool.fetchval(
        "SELECT count(*) FROM merchant_api_keys WHERE merchant_id = $1", merchant.id
    )
    assert keys == 0


async def _csrf(page: Any) -> str:
    value: str = await page.locator("input[name=csrf_token]").first.input_value()
    return value


async def test_bad_input_is_a_page_naming_the_field(app: FastAPI, page: Any) -> None:
    """A person's mistake (or a hand-edited address) is a 4xx page that names what was wrong,
    never a 500; onboarding keeps what was typed."""
    owner = await make_user(app)
    merchant = await shop_of(app, owner)
    await log_in(page, owner.username)
    await page.goto("/app/merchant")
    await page.get_by_label("Business name").fill("Café Olé")
    await page.get_by_label("Merchant category code").fill("5462")
    await page.get_by_label("City").fill("Oakland")
    await page.get_by_role("button", name="Open the business").click()
    assert (
        "name 'Café Olé' must be 1 to 25 printable ASCII"
        in await page.get_by_role("alert").inner_text()
    )
    assert await page.get_by_label("City").input_value() == "Oakland"
    await assert_accessible(page)
    here = f"/app/merchant/{merchant.id}"
    for path, status, text in (
        (f"{here}/payments?start=yesterday", 422, "start"),
        (f"{here}/payments?status=LOST", 422, "status 'LOST'"),
        (f"{here}/payments?cursor=bm9wZQ", 422, "cursor"),
        (f"{here}/activity?type=p3p", 422, "type 'p3p'"),
        (f"{here}/payments/not-a-payment", 404, "not-a-payment"),
        (f"{here}/payments/{uuid.uuid4()}", 404, "does not exist"),
        (f"{here}/checkout/{uuid.uuid4()}", 404, "does not exist"),
        (f"{here}/qr.gif", 422, "gif"),
        (f"{here}/webhooks/{uuid.uuid4()}", 404, "does not exist"),
    ):
        response = await page.goto(path)
        assert response.status == status, path
        assert text in await page.locator("main").inner_text(), path
