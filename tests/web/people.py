"""People for the web tests: made in the browser (sign_up) or straight through the wallet's
context functions (make_user, faster), signed in (log_in), and given money (fund)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import FastAPI

from billfold.wallet.users import User, check_sign_up, do_create_user, grant_admin
from tests.api.conftest import fund as _fund_over_ledger
from tests.api.driver import Person

PASSWORD = "correct horse battery"


def new_person() -> dict[str, str]:
    """A sign-up form's fields for someone new (a phone number no other test uses)."""
    tag = uuid.uuid4().hex[:10]
    return {
        "username": f"w_{tag}",
        "email": f"{tag}@example.com",
        "phone": f"+1415{5_600_000 + int(tag[:6], 16) % 400_000:07d}",
        "password": PASSWORD,
    }


async def sign_up(page: Any, person: dict[str, str]) -> None:
    """Open an account on the sign-up page; the browser is then signed in, at /app."""
    await page.goto("/app/signup")
    for name in ("username", "email", "phone", "password"):
        await page.get_by_label(re.compile(f"^{name}", re.I)).fill(person[name])
    await page.get_by_role("button", name="Open my account").click()
    await page.wait_for_url("**/app")


async def make_user(app: FastAPI, *, admin: bool = False) -> User:
    """Someone new, made through the wallet's context (their password is PASSWORD)."""
    fields = new_person()
    user = await do_create_user(
        app.state.pool,
        check_sign_up(fields["username"], fields["email"], fields["phone"], PASSWORD),
    )
    if admin:
        user = await grant_admin(app.state.pool, user.username)
    return user


async def log_in(page: Any, handle: str, password: str = PASSWORD) -> None:
    """Sign in on the login page; the browser is then at /app."""
    await page.goto("/app/login")
    await page.get_by_label("Username, email or phone").fill(handle)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url("**/app")


async def fund(app: FastAPI, user: User, amount_minor: int) -> None:
    """Money in from the bank clearing account, straight through the ledger."""
    person = Person(str(user.id), user.username, user.email, user.phone, PASSWORD, "")
    await _fund_over_ledger(app, person, amount_minor)
