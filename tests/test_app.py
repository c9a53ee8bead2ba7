"""The assembled service: lifespan, health, readiness, metrics and API docs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from billfold.app import create_app
from billfold.config import Settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan run: connected, migrated, ledger started."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_lifespan_stores_its_resources(app: FastAPI, settings: Settings) -> None:
    assert app.state.settings is settings
    assert await app.state.pool.fetchval("SELECT 1") == 1
    assert await app.state.redis.ping()
    assert app.state.ledger is not None


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_when_everything_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }


async def test_readyz_names_what_failed(app: FastAPI, client: httpx.AsyncClient) -> None:
    """With Redis unreachable, readiness is a 503 problem that names Redis and only Redis."""
    working = app.state.redis
    app.state.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        response = await client.get("/readyz")
    finally:
        await app.state.redis.aclose()
        app.state.redis = working

    body = response.json()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert (body["code"], body["failed"]) == ("not_ready", ["redis"])
    assert body["detail"].startswith("redis: unreachable")


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'billfold_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        response.text
    )


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    schema = await client.get("/openapi.json")

    assert docs.status_code == 200
    assert schema.json()["info"]["title"] == "Billfold"
    assert "/readyz" in schema.json()["paths"]
