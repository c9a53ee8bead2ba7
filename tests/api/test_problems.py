"""Errors leave the service as application/problem+json, never as a traceback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from billfold.api.middleware import RequestContextMiddleware
from billfold.api.problems import install_problem_handlers
from billfold.app import create_app
from billfold.config import Settings
from billfold.platform.errors import NotFound


def build_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/wallets/{wallet_id}")
    async def get_wallet(wallet_id: int, limit: int = 10) -> dict[str, int]:
        raise NotFound(f"wallet {wallet_id} does not exist", wallet_id=wallet_id)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internal detail")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_billfold_error_keeps_its_code_status_and_fields(client: httpx.AsyncClient) -> None:
    """A BillfoldError is rendered with its own status, code, detail and fields."""
    response = await client.get("/wallets/42")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://billfold.dev/problems/not_found",
        "title": "Not found",
        "status": 404,
        "code": "not_found",
        "detail": "wallet 42 does not exist",
        "instance": "/wallets/42",
        "wallet_id": 42,
    }


async def test_validation_error_names_field_and_value(client: httpx.AsyncClient) -> None:
    """A bad query parameter gives 422 validation_error naming the field and the value sent."""
    response = await client.get("/wallets/42", params={"limit": "lots"})

    body = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert (body["code"], body["field"]) == ("validation_error", "limit")
    assert body["detail"].startswith("limit 'lots': ")
    assert body["errors"][0]["value"] == "lots"


async def test_unknown_route_is_a_problem_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_a_405_lists_every_method_its_path_has(settings: Settings) -> None:
    """Issue 25: OPTIONS /api/v1/wallet/add-funds answered `Allow: GET` (the path matched
    /wallet/{user_id}), and a path served by two routes listed one route's method. The
    service's own routes, no connections needed: routing answers before any handler runs."""
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        cases = [
            ("OPTIONS", "/api/v1/wallet/add-funds", "POST"),
            ("GET", "/api/v1/wallet/add-funds", "POST"),
            ("OPTIONS", "/api/v1/wallet/cash-out", "POST"),
            ("OPTIONS", f"/api/v1/wallet/{uuid.uuid4()}", "GET"),
            ("OPTIONS", "/api/v1/cards", "GET, POST"),
            ("PUT", "/api/v1/bank-accounts", "GET, POST"),
            ("OPTIONS", "/api/v1/transfers", "POST"),
        ]
        for method, path, allowed in cases:
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"] == allowed, (method, path)
            assert response.json()["code"] == "method_not_allowed"
        unknown = await client.get("/api/v1/wallet/someone")
        assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


async def test_unhandled_error_is_a_bare_500(client: httpx.AsyncClient) -> None:
    """An unexpected exception gives internal_error with the request id and nothing internal."""
    response = await client.get("/crash", headers={"X-Request-ID": "req-123"})

    body = response.json()
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-123"
    assert (body["code"], body["request_id"]) == ("internal_error", "req-123")
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_unacceptable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    """A client request id with odd characters is not echoed; a generated one is used instead."""
    response = await client.get("/nowhere", headers={"X-Request-ID": "<script>"})

    assert response.headers["x-request-id"] != "<script>"
    assert len(response.headers["x-request-id"]) == 32
