"""Rendering a page: the templates, the filters that format money and time, the security
headers every page carries, CSRF tokens, and the error page.

CSRF: every form carries `csrf_token`, and every htmx request the `X-CSRF-Token` header (the
body's `hx-headers`); a POST without the token of its session is refused with 403
`csrf_failed` and changes nothing. The token is an HMAC of the session id (or, before login,
of the visitor cookie) under a key derived from the service's secret: nothing to store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from billfold.api.identity import signing_key
from billfold.platform.currency import minor_units
from billfold.platform.errors import BillfoldError

VISITOR_COOKIE = "bf_visitor"
TZ_COOKIE = "bf_tz"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
STATIC_DIR = Path(__file__).parent / "static"
# Scripts and styles from this origin only: no inline script or style, no eval, no CDN; the
# camera's frames are blob: images; a page may not be framed (clickjacking).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    # Pages show money: never kept by a shared cache or the browser's back-forward store.
    "Cache-Control": "no-store",
}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


class CsrfFailed(BillfoldError):
    code = "csrf_failed"
    status = 403
    title = "The form has expired"


def money(amount: Any, currency: str = "USD") -> str:
    """An amount (a decimal string, a Decimal, or an int of minor units) as people read it:
    `$1,234.50`, `-$5.00`; a currency without a symbol here is written after the number."""
    if isinstance(amount, int):
        value = Decimal(amount).scaleb(-minor_units(currency))
    else:
        value = Decimal(str(amount))
    places = minor_units(currency)
    text = f"{abs(value):,.{places}f}"
    sign = "-" if value < 0 else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"


def zone(name: str | None) -> ZoneInfo:
    """The person's time zone (the browser tells it, web/static/app.js, percent-encoded as
    'Asia%2FTokyo'); UTC if unknown."""
    if name and len(name) <= 64:
        try:
            return ZoneInfo(unquote(name))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


@pass_context
def when(context: Context, value: Any) -> str:
    """A moment in the person's time zone: `Dec 6, 2026, 4:41 PM`."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(context.get("tz") or ZoneInfo("UTC"))
    return local.strftime("%b %-d, %Y, %-I:%M %p")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("billfold.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["when"] = when
    env.globals["static"] = static_url
    return env


@cache
def _static_versions() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


def static_url(name: str) -> str:
    """The address of a static file, with its content's digest (cached for a year)."""
    return f"/static/{name}?v={_static_versions()[name]}"


def static_file(name: str) -> Path | None:
    """The static file `name`, if it is one of web/static's (nothing else is served)."""
    return STATIC_DIR / name if name in _static_versions() else None


def _csrf_key(request: Request) -> bytes:
    return hmac.new(signing_key(request).encode(), b"billfold-web-csrf", hashlib.sha256).digest()


def _binding(request: Request) -> str:
    session = getattr(request.state, "web_session", None)
    if session is not None:
        return f"session:{session.id}"
    visitor = getattr(request.state, "visitor", None) or request.cookies.get(VISITOR_COOKIE, "")
    return f"visitor:{visitor[:64]}"


def csrf_token(request: Request) -> str:
    """The token this request's forms carry: bound to its session, or to its visitor cookie."""
    return hmac.new(_csrf_key(request), _binding(request).encode(), hashlib.sha256).hexdigest()


async def check_csrf(request: Request) -> None:
    """Refuse (403 csrf_failed) a POST whose form field or header lacks this session's token."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not given or not hmac.compare_digest(given, csrf_token(request)):
        raise CsrfFailed(
            "this form has expired or did not come from this site: reload the page and try again"
        )


def secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: served over TLS (or behind a trusted proxy that
    says so: app.create_app reads X-Forwarded-Proto from trusted proxies only)."""
    return request.url.scheme == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=secure(request),
        samesite="lax",
    )


def harden(request: Request, response: Response) -> Response:
    """The security headers, and the visitor cookie a first visit gets (CSRF before login)."""
    response.headers.update(SECURITY_HEADERS)
    visitor = getattr(request.state, "visitor", None)
    if visitor is not None and request.cookies.get(VISITOR_COOKIE) != visitor:
        set_cookie(request, response, VISITOR_COOKIE, visitor, None)
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page `template` with `context`, and what every page knows: the person signed in
    (`me`), the CSRF token, their time zone, whether htmx asked for a fragment."""
    if not request.cookies.get(VISITOR_COOKIE) and getattr(request.state, "visitor", None) is None:
        request.state.visitor = secrets.token_urlsafe(24)
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            me=getattr(request.state, "web_user", None),
            csrf=csrf_token(request),
            tz=zone(request.cookies.get(TZ_COOKIE)),
            htmx=request.headers.get("hx-request") == "true",
            **context,
        )
    )
    return harden(request, HTMLResponse(page, status_code=status))  # type: ignore[return-value]


def error_page(request: Request, error: BillfoldError) -> HTMLResponse:
    """A refusal as a page: its title, what was wrong, and the stable code."""
    return render(request, "error.html", status=error.status, error=error)
