"""Settings in a real browser: a PIN set with the password and changed with the current PIN,
a password changed (the old one refused at the next login), bad input refused on the page
with nothing changed, and the time zone the browser told."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from billfold.wallet.pins import check_pin
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, log_in, make_user

NEW_PASSWORD = "a brand new passphrase"


async def _submit(page: Any, button: str, path: str) -> Any:
    """Click `button`; the response to the form's POST to `path`."""
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(path)
    ) as info:
        await page.get_by_role("button", name=button).click()
    await page.wait_for_load_state()
    return await info.value


async def _pin_hash(app: FastAPI, user_id: Any) -> str | None:
    found: str | None = await app.state.pool.fetchval(
        "SELECT pin_hash FROM users WHERE id = $1", user_id
    )
    return found


async def test_set_a_pin_then_change_it(page: Any, app: FastAPI) -> None:
    """A PIN set with the password, then changed with the current PIN; a short PIN, two PINs
    that differ and a wrong password are refused on the page and change nothing."""
    user = await make_user(app)
    await log_in(page, user.username)
    await page.get_by_role("link", name="Settings").click()
    await page.wait_for_url("**/app/settings")
    assert "no PIN yet" in await page.get_by_test_id("pin-state").inner_text()
    await assert_accessible(page)
    await screenshot(page, "settings")

    await page.get_by_label("New PIN", exact=True).fill("12")
    await page.get_by_label("New PIN again").fill("12")
    await page.get_by_label("Your password").fill(PASSWORD)
    refused = await _submit(page, "Set PIN", "/app/settings/pin")
    assert refused.status == 422
    assert "pin must be 4 to 8 digits" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("New PIN", exact=True).get_attribute("aria-invalid") == "true"
    await page.get_by_label("New PIN", exact=True).fill("2468")
    await page.get_by_label("New PIN again").fill("2469")
    await page.get_by_label("Your password").fill(PASSWORD)
    assert (await _submit(page, "Set PIN", "/app/settings/pin")).status == 422
    assert "two new PINs differ" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("New PIN", exact=True).fill("2468")
    await page.get_by_label("New PIN again").fill("2468")
    await page.get_by_label("Your password").fill("not my password")
    assert (await _submit(page, "Set PIN", "/app/settings/pin")).status == 403
    assert "password is wrong" in await page.get_by_role("alert").inner_text()
    await assert_accessible(page)
    assert await _pin_hash(app, user.id) is None

    await page.get_by_label("New PIN", exact=True).fill("2468")
    await page.get_by_label("New PIN again").fill("2468")
    await page.get_by_label("Your password").fill(PASSWORD)
    await page.get_by_role("button", name="Set PIN").click()
    await page.wait_for_url("**/app/settings?done=pin")
    assert "You have a PIN" in await page.get_by_test_id("pin-state").inner_text()
    assert (await check_pin(app.state.pool, user.id, "2468")).right

    await page.get_by_label("New PIN", exact=True).fill("13579")
    await page.get_by_label("New PIN again").fill("13579")
    await page.get_by_label("Current PIN").fill("2468")
    await page.get_by_role("button", name="Change PIN").click()
    await page.wait_for_url("**/app/settings?done=pin")
    checked = await check_pin(app.state.pool, user.id, "13579")
    assert checked.right and checked.changed_recently
    assert not (await check_pin(app.state.pool, user.id, "2468")).right
    await assert_accessible(page)


async def test_change_the_password_then_log_in_with_the_new_one(page: Any, app: FastAPI) -> None:
    """Refused first (a wrong current password, a short new one, two that differ: nothing
    changed), then changed; after logging out the old password is refused and the new one
    signs in."""
    user = await make_user(app)
    await log_in(page, user.username)
    # Another browser signed in as them, which the change signs out.
    elsewhere = await page.context.browser.new_context(base_url=page.url.split("/app")[0])
    other = await elsewhere.new_page()
    await log_in(other, user.username)
    await page.goto("/app/settings")
    before = await app.state.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    for current, new, again, status, said in [
        ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, 403, "current password is wrong"),
        (PASSWORD, "short", "short", 422, "new_password must be 8 to 128 characters"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "?", 422, "two new passwords differ"),
    ]:
        await page.get_by_label("Current password").fill(current)
        await page.get_by_label("New password", exact=True).fill(new)
        await page.get_by_label("New password again").fill(again)
        refused = await _submit(page, "Change password", "/app/settings/password")
        assert refused.status == status
        assert said in await page.get_by_role("alert").inner_text()
    await assert_accessible(page)
    # A password the input gate refuses (a NUL) is not repeated in the refusal.
    secret = "hunter2\x00hunter2"
    form = {"csrf_token": await page.locator("input[name=csrf_token]").first.input_value()}
    form |= dict.fromkeys(["current_password", "new_password", "new_password_again"], secret)
    sent = await page.context.request.post("/app/settings/password", form=form)
    assert sent.status == 422 and "hunter2" not in await sent.text()
    after = await app.state.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert after == before

    await page.get_by_label("Current password").fill(PASSWORD)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password again").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    await page.wait_for_url("**/app/settings?done=password")
    assert "password is changed" in await page.get_by_role("status").first.inner_text()
    await page.goto("/app")  # this session goes on
    await page.wait_for_url("**/app")
    await other.goto("/app")
    await other.wait_for_url("**/app/login?next=/app")
    await elsewhere.close()
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/app/login")

    await page.get_by_label("Username, email or phone").fill(user.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    assert "wrong handle or password" in await page.get_by_role("alert").inner_text()
    await log_in(page, user.email, NEW_PASSWORD)


async def test_the_time_zone_is_the_browsers(browser: Any, base_url: str, app: FastAPI) -> None:
    """A browser in Tokyo sees its zone named on the settings page."""
    context = await browser.new_context(base_url=base_url, timezone_id="Asia/Tokyo")
    try:
        page = await context.new_page()
        user = await make_user(app)
        await log_in(page, user.username)
        await page.goto("/app/settings")
        assert await page.get_by_test_id("time-zone").inner_text() == "Asia/Tokyo"
    finally:
        await context.close()
