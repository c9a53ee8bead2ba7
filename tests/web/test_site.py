"""The web app's frame in a real browser: sign up, log in and out, the session cookie, CSRF,
the security headers, error pages, and axe-core on each page."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from billfold.web.pages import CONTENT_SECURITY_POLICY
from billfold.web.sessions import SESSION_COOKIE, _key
from tests.web.browser import assert_accessible, screenshot
from tests.web.people import PASSWORD, new_person, sign_up


async def test_sign_up_lands_on_an_empty_wallet_and_each_page_is_accessible(page: Any) -> None:
    await page.goto("/app")
    await page.wait_for_url("**/app/login?next=/app")
    await assert_accessible(page)
    await screenshot(page, "login")
    await page.get_by_role("link", name="Open an account").click()
    await assert_accessible(page)
    await screenshot(page, "signup")
    person = new_person()
    await sign_up(page, person)
    assert await page.get_by_test_id("balance").inner_text() == "$0.00"
    await assert_accessible(page)
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies[SESSION_COOKIE]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and not session["secure"]


async def test_log_out_ends_the_session_and_log_in_opens_a_new_one(page: Any) -> None:
    person = new_person()
    await sign_up(page, person)
    old = {c["name"]: c["value"] for c in await page.context.cookies()}[SESSION_COOKIE]
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/app/login")
    # The old cookie is dead on the server, not only forgotten by the browser.
    await page.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": old, "url": page.url.split("/app")[0]}]
    )
    await page.goto("/app")
    await page.wait_for_url("**/app/login?next=/app")
    await page.get_by_label("Username, email or phone").fill(person["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/app")
    assert await page.get_by_role("heading", name="Your wallet").is_visible()


async def test_a_wrong_password_is_told_on_the_form(page: Any) -> None:
    person = new_person()
    await sign_up(page, person)
    await page.context.clear_cookies()
    await page.goto("/app/login")
    await page.get_by_label("Username, email or phone").fill(person["username"])
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    assert "wrong handle or password" in await alert.inner_text()
    await assert_accessible(page)


async def _signed_in(http: httpx.AsyncClient) -> str:
    """A person signed up over plain HTTP (the client's jar holds their cookies); a page's
    CSRF token."""
    made = await http.post(
        "/app/signup", data={**new_person(), "csrf_token": await _token(http, "/app/signup")}
    )
    assert made.status_code == 303, made.text
    return await _token(http, "/app")


async def _token(http: httpx.AsyncClient, path: str) -> str:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, base_url: str
) -> None:
    refused = await http.post("/app/signup", data=new_person())
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    token = await _signed_in(http)
    forged = await http.post("/app/logout", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    # Another visitor's token does not fit this session either.
    async with httpx.AsyncClient(base_url=base_url) as stranger:
        other = await _token(stranger, "/app/login")
    forged = await http.post("/app/logout", data={"csrf_token": other})
    assert forged.status_code == 403
    assert (await http.get("/app")).status_code == 200  # still signed in
    done = await http.post("/app/logout", data={"csrf_token": token})
    assert done.status_code == 303
    assert (await http.get("/app")).status_code == 303


async def test_a_session_past_its_maximum_age_is_over(
    http: httpx.AsyncClient, app: FastAPI
) -> None:
    await _signed_in(http)
    redis = app.state.redis
    key = _key(http.cookies[SESSION_COOKIE])
    data = orjson.loads(await redis.get(key))
    data["started"] -= app.state.settings.web_session_max_s + 1
    await redis.set(key, orjson.dumps(data), ex=60)
    expired = await http.get("/app")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/app/login?next=/app"
    assert await redis.exists(key) == 0
    htmx = await http.get("/app", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/app/login?next=/app"


async def test_pages_carry_the_security_headers_and_errors_are_pages(
    http: httpx.AsyncClient,
) -> None:
    login = await http.get("/app/login")
    assert login.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY
        and "unsafe" not in login.headers["content-security-policy"]
    )
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["cache-control"] == "no-store"
    missing = await http.get("/app/no-such-page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert (await http.get("/static/../config.py")).status_code == 404
    css = await http.get("/static/app.css")
    assert css.status_code == 200 and "immutable" in css.headers["cache-control"]
    # The API still answers problem+json.
    api = await http.get("/api/v1/no-such")
    assert api.headers["content-type"] == "application/problem+json"
    # A next= that leads off the site goes to the wallet instead.
    page = await http.get("/app/login?next=//evil.example/x")
    assert 'name="next" value="/app"' in page.text
