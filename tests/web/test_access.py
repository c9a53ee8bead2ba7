"""Every page of the web app but the login, sign-up and static files needs a session: without
one a GET is sent to the login page and a POST changes nothing; the console's pages do not
exist (404) for a person without the admin role. Read from the app's routes, so a page added
later is covered without editing this file."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests.web.access import WEB_PUBLIC, is_web_path

FILLER = "00000000-0000-4000-8000-000000000000"


def web_routes(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        if path and is_web_path(path):
            found += [(m, path) for m in context.methods or () if m != "HEAD"]
    return sorted(found)


async def test_every_web_page_needs_a_session(app: FastAPI, http: httpx.AsyncClient) -> None:
    routes = web_routes(app)
    assert {("GET", "/app"), ("POST", "/app/logout")} <= set(routes)
    assert set(routes) >= WEB_PUBLIC, "a public web page is gone"
    for method, path in routes:
        if (method, path) in WEB_PUBLIC:
            continue
        filled = re.sub(r"\{[a-z_]+\}", FILLER, path)
        response = await http.request(method, filled, data={"x": "1"})
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/app/login?next="), (method, path)
