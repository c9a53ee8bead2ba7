"""The hot routes (api.direct.HotRoutes) answer exactly as the router would, errors included."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

import billfold.app
from billfold.api import direct
from billfold.api.problems import install_problem_handlers
from billfold.app import create_app
from billfold.platform.errors import NotFound

# --- the middleware on its own -------------------------------------------------------------------


class Boom(Exception):
    pass


async def hot(request: Request) -> Response:
    failure = request.query_params.get("fail")
    if failure == "billfold":
        raise NotFound("wallet 'x' does not exist", user_id="x")
    if failure == "validation":
        raise RequestValidationError([{"type": "missing", "loc": ("body", "amount"), "msg": "m"}])
    if failure == "http":
        raise HTTPException(418, "teapot")
    if failure == "other":
        raise Boom
    return direct.json_response({"route": request.scope["route"].path}, 201)


def _app_and_router_calls() -> tuple[direct.HotRoutes, list[str]]:
    fastapi = FastAPI()
    install_problem_handlers(fastapi)
    fastapi.post("/hot")(hot)
    calls: list[str] = []

    async def router(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await Response("routed", 200)(scope, receive, send)

    route = next(r for r in fastapi.routes if getattr(r, "path", None) == "/hot")
    return direct.HotRoutes(router, [route], fastapi.exception_handlers), calls  # type: ignore[list-item]


@pytest.fixture
async def middleware() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    app, calls = _app_and_router_calls()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c, calls


async def test_a_hot_route_is_answered_without_the_router(middleware: Any) -> None:
    client, calls = middleware
    answer = await client.post("/hot")
    assert (answer.status_code, answer.json()) == (201, {"route": "/hot"})
    assert calls == []


async def test_other_methods_and_paths_go_to_the_router(middleware: Any) -> None:
    client, calls = middleware
    assert (await client.get("/hot")).text == "routed"
    assert (await client.post("/hot/")).text == "routed"
    assert (await client.post("/other")).text == "routed"
    assert calls == ["/hot", "/hot/", "/other"]


async def test_under_a_root_path_the_router_decides() -> None:
    app, calls = _app_and_router_calls()
    transport = httpx.ASGITransport(app=app, root_path="/mounted")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/mounted/hot")).text == "routed"
    assert calls == ["/mounted/hot"]


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [("billfold", 404, "not_found"), ("validation", 422, "validation_error"), ("http", 418, None)],
)
async def test_errors_get_the_apps_problem_answers(
    middleware: Any, failure: str, status: int, code: str | None
) -> None:
    client, _ = middleware
    answer = await client.post("/hot", params={"fail": failure})
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json().get("code", "http_error") == (code or "http_error")


async def test_an_unexpected_error_goes_on_to_the_last_resort(middleware: Any) -> None:
    client, _ = middleware
    with pytest.raises(Boom):  # RequestContextMiddleware turns it into a bare 500
        await client.post("/hot", params={"fail": "other"})


# --- the service: POST /transfers with and without the hot path ---------------------------------


@pytest.fixture(scope="module")
async def routed(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The same service with no hot routes: every request through the router."""
    original = billfold.app.HOT_ENDPOINTS
    billfold.app.HOT_ENDPOINTS = ()
    try:
        plain = create_app(app.state.settings)
    finally:
        billfold.app.HOT_ENDPOINTS = original
    async with plain.router.lifespan_context(plain):
        transport = httpx.ASGITransport(app=plain)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_transfers_answer_as_through_the_router(
    client: httpx.AsyncClient, routed: httpx.AsyncClient, make_person: Any
) -> None:
    alice, bob = await make_person("100.00"), await make_person()
    good = {"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"}
    auth = {**alice.auth, "Idempotency-Key": "k"}
    typed = {**auth, "Content-Type": "application/json"}
    raw = json.dumps(good)
    cases: list[tuple[dict[str, str], Any]] = [
        ({}, good),
        ({"Authorization": "Bearer nonsense"}, good),
        (typed, "{not json"),
        (auth, raw),  # no Content-Type
        ({**auth, "Content-Type": "text/plain"}, raw),
        (typed, raw.replace('"amount"', '"amount": "9.00", "amount"')),
        (typed, raw.replace('"1.00"', '"1.00", "note": "\\ud800"')),
        (typed, raw.replace('"1.00"', '"1E+999999999"')),
        (typed, raw.replace('"1.00"', '"1.00", "pad": "' + "x" * 70_000 + '"')),
        (auth, {**good, "amount": "1.001"}),
        (auth, {k: v for k, v in good.items() if k != "amount"}),
        (auth, {**good, "sender_id": bob.user_id}),
        (auth, {**good, "recipient": "@nobody_here"}),
        (auth, {**good, "amount": "500.00"}),
        ({**auth, "X-Device-Id": "d" * 500}, good),
        (alice.auth, good),
    ]
    for headers, body in cases:
        content = body if isinstance(body, str) else None
        payload = None if isinstance(body, str) else body
        kwargs = {"headers": headers, "content": content, "json": payload}
        hot, plain = [await c.post("/api/v1/transfers", **kwargs) for c in (client, routed)]
        assert hot.status_code == plain.status_code, (headers, body, hot.text)
        assert hot.headers["content-type"] == plain.headers["content-type"]
        assert hot.json() == plain.json(), (headers, body)
    # And a transfer: each path makes its own, answered alike.
    made = [
        await c.post(
            "/api/v1/transfers",
            headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
            json=good,
        )
        for c in (client, routed)
    ]
    assert [m.status_code for m in made] == [201, 201]
    assert made[0].json().keys() == made[1].json().keys()
