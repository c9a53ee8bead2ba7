"""The web app's frame: its static files, login, sign-up and logout, and its error pages.

`install(app)` adds the web routers and makes a refusal on a web page (a path under /app or
/console) an HTML page rather than the API's problem+json: a 404, a form whose CSRF token
expired, a session that ended (sent to the login page)."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse
from starlette.exceptions import HTTPException

from billfold.api.inputs import InputRoute
from billfold.api.limits import limit_login
from billfold.api.signals import device_token_for, origin_of
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.risk.places import remember_places
from billfold.wallet.users import User, authenticate, check_sign_up, do_create_user
from billfold.web import pages
from billfold.web.identity import DEVICE_COOKIE, LOGIN_PATH, SignInNeeded, WebUser
from billfold.web.sessions import SESSION_COOKIE, close_session, open_session

router = APIRouter(route_class=InputRoute, include_in_schema=False)
WEB_PREFIXES = ("/app", "/console")
DEVICE_COOKIE_AGE_S = 5 * 365 * 86400
# A form field longer than this is refused before anything reads it (a handle or password).
FIELD_MAX = 256
Field = Annotated[str, Form(max_length=FIELD_MAX)]


def install(app: FastAPI) -> None:
    """The web app's routes, and its HTML error pages for the paths it serves."""
    from billfold.web import activity, console, funding, merchant, money, settings, wallet

    app.include_router(router)
    app.include_router(wallet.router)
    app.include_router(money.router)
    app.include_router(activity.router)
    app.include_router(funding.router)
    app.include_router(settings.router)
    app.include_router(console.router)
    app.include_router(merchant.router)
    for kind in (BillfoldError, HTTPException, RequestValidationError):
        api_handler = app.exception_handlers[kind]
        app.add_exception_handler(kind, _web_or(api_handler))


def is_web(request: Request) -> bool:
    path = request.url.path
    return any(path == p or path.startswith(p + "/") for p in WEB_PREFIXES)


def _web_or(api_handler: Any) -> Any:
    async def handle(request: Request, error: Exception) -> Response:
        if not is_web(request):
            return await api_handler(request, error)  # type: ignore[no-any-return]
        return web_error(request, error)

    return handle


def web_error(request: Request, error: Exception) -> Response:
    """A refusal on a web page, as a page (or, for a lapsed session, a way to the login)."""
    if isinstance(error, SignInNeeded):
        if request.headers.get("hx-request") == "true":
            response = Response(status_code=204, headers={"HX-Redirect": error.location()})
        else:
            response = RedirectResponse(error.location(), status_code=303)
        return pages.harden(request, response)
    if isinstance(error, BillfoldError):
        refusal = error
    elif isinstance(error, RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "form"
        refusal = ValidationFailed(f"{field}: {first.get('msg', 'is invalid')}", field=field)
    elif isinstance(error, HTTPException) and error.status_code == 404:
        refusal = NotFound(f"'{request.url.path[:80]}' does not exist")
    else:
        assert isinstance(error, HTTPException)
        refusal = BillfoldError(str(error.detail))
        refusal.status = error.status_code  # type: ignore[misc]
    return pages.error_page(request, refusal)


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    """web/static's files (htmx, jsQR, the style sheet, app.js), cached for a year: their
    address carries their digest (pages.static_url)."""
    path = pages.static_file(name)
    if path is None:
        raise NotFound(f"'/static/{name[:80]}' does not exist")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = FileResponse(path, media_type=media_type)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/app/login")
async def login_page(request: Request, next: str = "/app") -> Response:
    return pages.render(request, "login.html", next=_safe_next(next))


@router.post("/app/login")
async def login(
    request: Request,
    username: Field = "",
    password: Field = "",
    next: Field = "/app",
) -> Response:
    """Sign in with any handle and the password: the API's login (rate limit per address,
    lock-out after wrong passwords) and then a session cookie."""
    await pages.check_csrf(request)
    state = request.app.state
    try:
        await limit_login(request)
        user = await authenticate(state.pool, state.redis, state.settings, username, password)
    except BillfoldError as error:
        return pages.render(
            request, "login.html", status=error.status, error=error, username=username, next=next
        )
    return await _signed_in(request, user, _safe_next(next))


@router.get("/app/signup")
async def sign_up_page(request: Request) -> Response:
    return pages.render(request, "signup.html", form={})


@router.post("/app/signup")
async def sign_up(
    request: Request,
    username: Field = "",
    email: Field = "",
    phone: Field = "",
    password: Field = "",
) -> Response:
    """Open an account as the API's sign-up does, and sign in."""
    await pages.check_csrf(request)
    state = request.app.state
    form = {"username": username, "email": email, "phone": phone}
    try:
        user = await do_create_user(state.pool, check_sign_up(username, email, phone, password))
    except BillfoldError as error:
        return pages.render(request, "signup.html", status=error.status, error=error, form=form)
    device = device_token_for(request, user.id, request.cookies.get(DEVICE_COOKIE))
    origin = origin_of(request, user.id, device, request.headers.get("x-client-country"))
    await remember_places(state.pool, str(user.id), origin.device_id, origin.country, origin.ip)
    return await _signed_in(request, user, "/app", device)


@router.post("/app/logout")
async def logout(request: Request, user: WebUser) -> Response:
    await pages.check_csrf(request)
    await close_session(request.app.state.redis, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return pages.harden(request, response)


async def _signed_in(
    request: Request, user: User, next_path: str, device: str | None = None
) -> Response:
    state = request.app.state
    session = await open_session(state.redis, state.settings, user.id)
    device = device or device_token_for(request, user.id, request.cookies.get(DEVICE_COOKIE))
    response = RedirectResponse(next_path, status_code=303)
    pages.set_cookie(request, response, SESSION_COOKIE, session.id, None)
    pages.set_cookie(request, response, DEVICE_COOKIE, device, DEVICE_COOKIE_AGE_S)
    return pages.harden(request, response)


def _safe_next(path: str) -> str:
    """Where to go after login: a path of the web app's own, never another site."""
    if path.startswith(("/app", "/console")) and "//" not in path and "\\" not in path:
        return path[:200]
    return "/app"
