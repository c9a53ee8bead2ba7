"""Which routes are the web app's (signed in by the session cookie, not a bearer token)."""

from __future__ import annotations

from billfold.web.site import WEB_PREFIXES

# The web app's pages anyone may open: the login and sign-up forms, and the static files.
WEB_PUBLIC = {
    ("GET", "/app/login"),
    ("POST", "/app/login"),
    ("GET", "/app/signup"),
    ("POST", "/app/signup"),
    ("GET", "/static/{name}"),
}


def is_web_path(path: str) -> bool:
    return path == "/static/{name}" or any(
        path == prefix or path.startswith(prefix + "/") for prefix in WEB_PREFIXES
    )
