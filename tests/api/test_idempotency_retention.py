"""A P2P retry over HTTP replays within the idempotency window; once the key is purged, the
same request is a new transfer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from billfold.ledger.retention import purge_idempotency_keys

MakePerson = Callable[..., Awaitable[Any]]


async def test_a_retry_replays_and_after_the_purge_moves_the_money_again(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Same key: within 24 hours the first answer, replayed; after the purge, a second move."""
    alice, bob = await make_person("10.00"), await make_person()
    headers = {**alice.auth, "Idempotency-Key": "retention-1"}
    body = {"sender_id": alice.user_id, "recipient": bob.username, "amount": "3.00"}
    first = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["transfer_id"] == first.json()["transfer_id"]

    pool = app.state.pool
    await pool.execute(
        """UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'
            WHERE client_id = $1 AND key = 'retention-1'""",
        f"user:{alice.user_id}",
    )
    assert await purge_idempotency_keys(pool, 24, batch=100) >= 1
    # A day later the request's claim in Redis is long gone too (it lives 30 seconds).
    await app.state.redis.delete(f"in-flight:user:{alice.user_id}:retention-1")

    later = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert later.status_code == 201, later.text
    assert "Idempotent-Replayed" not in later.headers
    assert later.json()["transfer_id"] != first.json()["transfer_id"]
    wallet = await client.get(f"/api/v1/wallet/{alice.user_id}", headers=alice.auth)
    assert wallet.json()["balance"] == "4.00"
