"""Admission control: past the bound on API requests in flight, a 503 `overloaded` at once,
before any work, so that a retry with the same Idempotency-Key is safe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.types import Receive, Scope, Send

from billfold.api.admission import Admission
from billfold.api.middleware import RequestContextMiddleware
from billfold_bench.rules import LOAD_TEST_RULES

MakePerson = Callable[..., Awaitable[Any]]
BOUND = 2
SENT = 40


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """The engine as `bench api` runs it, and room for BOUND requests at once."""
    async with running(risk_rules=LOAD_TEST_RULES, requests_in_flight_max=BOUND) as app:
        yield app


def transfer(client: httpx.AsyncClient, sender: Any, recipient: Any, n: int, key: str) -> Any:
    body = {"sender_id": sender.user_id, "recipient": recipient.username, "amount": f"{n}.00"}
    headers = {**sender.auth, "Idempotency-Key": key, "X-Device-Id": sender.device()}
    return client.post("/api/v1/transfers", json=body, headers=headers)


async def test_refused_transfers_retried_with_their_keys_each_move_money_once(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A concurrent flood past a bound of 2 is partly refused with a clean 503 `overloaded`; the
    refused ones, retried with the same keys, are then each done once: scored once, counted once
    by the velocity counters, moved once, and the balances are the sum."""
    alice, bob = await make_person("1000.00"), await make_person()
    keys = [str(uuid.uuid4()) for _ in range(SENT)]
    shed_before = REGISTRY.get_sample_value("billfold_requests_shed_total") or 0.0
    flood = await asyncio.gather(
        *(transfer(client, alice, bob, n, key) for n, key in enumerate(keys, 1))
    )
    refused = [
        (n, key)
        for n, (key, r) in enumerate(zip(keys, flood, strict=True), 1)
        if r.status_code == 503
    ]
    assert {r.status_code for r in flood} == {201, 503}
    for response in (r for r in flood if r.status_code == 503):
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "overloaded"
        assert response.json()["retry_after_s"] == 1
    shed_after = REGISTRY.get_sample_value("billfold_requests_shed_total") or 0.0
    assert shed_after - shed_before == len(refused)

    retried = [await transfer(client, alice, bob, n, key) for n, key in refused]
    assert [r.status_code for r in retried] == [201] * len(refused)
    assert [r.headers.get("idempotent-replayed") for r in retried] == [None] * len(refused)
    again = [await transfer(client, alice, bob, n, key) for n, key in enumerate(keys, 1)]
    assert [r.headers.get("idempotent-replayed") for r in again] == ["true"] * SENT

    total = SENT * (SENT + 1) // 2
    pool, redis = app.state.pool, app.state.redis
    moved = await pool.fetchval(
        "SELECT count(DISTINCT transfer_id) FROM idempotency_keys WHERE key = ANY($1::text[])",
        keys,
    )
    scored = await pool.fetch(
        "SELECT ref, count(*) AS n FROM risk_assessments WHERE ref = ANY($1::text[]) GROUP BY ref",
        keys,
    )
    assert moved == SENT
    assert sorted((row["ref"], row["n"]) for row in scored) == sorted((key, 1) for key in keys)
    assert await redis.zcard(f"vel:u:{alice.user_id}:t") == SENT
    alice_wallet = await client.get(f"/api/v1/wallet/{alice.user_id}", headers=alice.auth)
    bob_wallet = await client.get(f"/api/v1/wallet/{bob.user_id}", headers=bob.auth)
    assert alice_wallet.json()["balance"] == f"{1000 - total}.00"
    assert bob_wallet.json()["balance"] == f"{total}.00"


async def test_health_metrics_and_docs_are_never_shed_and_a_finished_request_frees_its_place() -> (
    None
):
    """With the one place taken by a request still running, another API request is refused,
    while /healthz, /readyz, /metrics and /docs are answered; a request that fails frees its
    place as one that succeeds does."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/api/v1/slow":
            entered.set()
            await release.wait()
        if scope["path"] == "/api/v1/fails":
            raise RuntimeError("the endpoint failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    admission = Admission(inner, limit=1)
    transport = httpx.ASGITransport(app=RequestContextMiddleware(admission))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        slow = asyncio.create_task(client.get("/api/v1/slow"))
        await entered.wait()
        labels = {"method": "POST", "route": "shed", "status": "503"}
        counted = REGISTRY.get_sample_value("billfold_http_requests_total", labels) or 0.0
        refused = await client.post("/api/v1/transfers", json={})
        assert refused.status_code == 503
        assert refused.json()["code"] == "overloaded"
        # Counted apart from the routes it never reached.
        assert REGISTRY.get_sample_value("billfold_http_requests_total", labels) == counted + 1
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        release.set()
        assert (await slow).status_code == 200
        assert (await client.get("/api/v1/fails")).status_code == 500
        assert admission.in_flight == 0
        assert (await client.get("/api/v1/wallet")).status_code == 200
