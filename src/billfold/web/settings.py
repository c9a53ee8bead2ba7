"""The person's settings at /app/settings: their PIN (set or changed as PUT
/api/v1/users/{id}/pin does: with the password, or the current PIN), their password (the
current one required, wrong ones counted as failed logins), and the time zone the pages use
(read-only: what the browser told, web/static/app.js)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from billfold.api.inputs import InputRoute
from billfold.platform.errors import BillfoldError, ValidationFailed
from billfold.wallet import pins, users
from billfold.wallet.users import User
from billfold.web import pages
from billfold.web.identity import Poster, WebUser
from billfold.web.sessions import SESSION_COOKIE, close_other_sessions

router = APIRouter(route_class=InputRoute, include_in_schema=False)
Secret = Annotated[str, Form(max_length=users.MAX_PASSWORD_LENGTH + 1)]
Pin = Annotated[str, Form(max_length=16)]
DONE = {
    "pin": "Your PIN is set.",
    "password": "Your password is changed.",
}


@router.get("/app/settings")
async def settings_page(request: Request, user: WebUser) -> Response:
    return await _settings(request, user, flash=DONE.get(request.query_params.get("done", "")))


async def _settings(
    request: Request,
    user: User,
    *,
    error: BillfoldError | None = None,
    form: str | None = None,
    flash: str | None = None,
) -> Response:
    zone = pages.zone(request.cookies.get(pages.TZ_COOKIE))
    return pages.render(
        request,
        "wallet/settings.html",
        status=error.status if error else 200,
        has_pin=await pins.has_pin(request.app.state.pool, user.id),
        zone_name=zone.key,
        told=request.cookies.get(pages.TZ_COOKIE) is not None,
        error=error,
        form=form,
        flash=flash,
    )


@router.post("/app/settings/pin")
async def set_pin(
    request: Request,
    user: Poster,
    pin: Pin = "",
    pin_again: Pin = "",
    password: Secret = "",
    current_pin: Pin = "",
) -> Response:
    """Set or change the PIN, proved with the password or the current PIN."""
    state = request.app.state
    try:
        pins.check_pin_format(pin)
        if pin_again != pin:
            raise ValidationFailed("the two new PINs differ", field="pin_again")
        change = await pins.check_set_pin(
            state.pool,
            state.redis,
            state.settings,
            user.id,
            pin,
            password=password or None,
            current_pin=current_pin or None,
        )
        await pins.do_set_pin(state.pool, change)
    except BillfoldError as error:
        return await _settings(request, user, error=error, form="pin")
    return pages.harden(request, RedirectResponse("/app/settings?done=pin", status_code=303))


@router.post("/app/settings/password")
async def change_password(
    request: Request,
    user: Poster,
    current_password: Secret = "",
    new_password: Secret = "",
    new_password_again: Secret = "",
) -> Response:
    """Change the password: the current one required, the new one as sign-up takes it."""
    state = request.app.state
    try:
        if new_password_again != new_password:
            raise ValidationFailed("the two new passwords differ", field="new_password_again")
        change = await users.check_change_password(
            state.pool, state.redis, state.settings, user.id, current_password, new_password
        )
        await users.do_change_password(state.pool, change)
    except BillfoldError as error:
        return await _settings(request, user, error=error, form="password")
    # Whoever else was signed in as this person (a stolen cookie, another browser) is not now.
    await close_other_sessions(state.redis, user.id, request.cookies.get(SESSION_COOKIE))
    return pages.harden(request, RedirectResponse("/app/settings?done=password", status_code=303))
