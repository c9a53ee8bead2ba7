"""The assembled service: lifespan, health, readiness, metrics and API docs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from billfold.app import create_app
from billfold.config import Settings

# Offline code: training the model, its traffic generator and evaluation, the demo's data, the
# benchmarks. The service carries none of it.
OFFLINE = ("billfold.risk.training", "billfold.demo", "billfold_bench")
STARTED_APP = """
import asyncio, sys
from billfold.app import create_app
from billfold.config import Settings

async def main():
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
print(*sorted(sys.modules))
"""


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


def test_the_started_app_loads_no_offline_code(settings: Settings) -> None:
    """The app, built and started as `billfold serve`'s workers do it, model loaded, loads no
    module of the offline code."""
    assert settings.database_url and settings.redis_url
    loaded = _modules_loaded(
        STARTED_APP,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        BILLFOLD_DATA_DIR=str(settings.data_dir),
    )

    assert "billfold.risk.model" in loaded
    assert [name for name in loaded if name.startswith(OFFLINE)] == []


def test_the_command_line_loads_no_offline_code_until_asked() -> None:
    """`billfold` loads `risk` (training) and `bench` only when one of them is asked for."""
    loaded = _modules_loaded("import sys, billfold.cli; print(*sorted(sys.modules))")

    assert "billfold.cli" in loaded
    assert [name for name in loaded if name.startswith(OFFLINE)] == []


def _modules_loaded(code: str, **env: str) -> list[str]:
    """The modules a new interpreter holds after running `code`, which prints them."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
