"""Who is using the web app: the person their session cookie signs in, as dependencies.

A page that needs a person takes `WebUser`: without a live session the browser is sent to the
login page (an htmx request is told to go there with `HX-Redirect`). `Operator` is a person with
the admin role; to anyone else the console answers 404, as the API's admin endpoints do. A
person whose user row is gone is signed out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from billfold.api.signals import origin_of
from billfold.platform.errors import BillfoldError, NotFound
from billfold.risk.gate import Origin
from billfold.wallet.users import User, get_user
from billfold.web.pages import check_csrf
from billfold.web.sessions import SESSION_COOKIE, read_session

DEVICE_COOKIE = "bf_device"
LOGIN_PATH = "/app/login"


class SignInNeeded(BillfoldError):
    code = "sign_in_needed"
    status = 401
    title = "Sign in to continue"

    def __init__(self, next_path: str) -> None:
        super().__init__("your session has ended or you are not signed in")
        self.next_path = next_path

    def location(self) -> str:
        return f"{LOGIN_PATH}?next={quote(self.next_path, safe='/')}"


async def web_user(request: Request) -> User:
    """The person the session cookie signs in; SignInNeeded without a live session."""
    state = request.app.state
    session = await read_session(state.redis, state.settings, request.cookies.get(SESSION_COOKIE))
    next_path = request.url.path if request.method == "GET" else "/app"
    if session is None:
        raise SignInNeeded(next_path)
    try:
        user = await get_user(state.pool, session.user_id)
    except NotFound:
        raise SignInNeeded(next_path) from None
    request.state.web_session = session
    request.state.web_user = user
    return user


WebUser = Annotated[User, Depends(web_user)]


async def web_user_posting(request: Request, user: WebUser) -> User:
    """The person signed in, for a form they sent: its CSRF token checked (web.pages)."""
    await check_csrf(request)
    return user


# A POST by the person signed in: session and CSRF token checked.
Poster = Annotated[User, Depends(web_user_posting)]


async def operator(request: Request, user: WebUser) -> User:
    """A person with the admin role; 404 to anyone else (the console's pages do not exist)."""
    if not user.is_admin:
        raise NotFound(f"'{request.url.path[:80]}' does not exist")
    return user


Operator = Annotated[User, Depends(operator)]


async def operator_posting(request: Request, user: Operator) -> User:
    await check_csrf(request)
    return user


OperatorPoster = Annotated[User, Depends(operator_posting)]


def web_origin(request: Request, user: User) -> Origin:
    """Where a movement from the web app comes from, for the risk engine: the device cookie
    the login gave this browser (as the API's X-Device-Id), the edge's country header, the
    client address."""
    return origin_of(
        request,
        user.id,
        request.cookies.get(DEVICE_COOKIE),
        request.headers.get("x-client-country"),
    )
