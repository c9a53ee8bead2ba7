"""A P2P transfer over HTTP is told on the event stream, with no card or account number."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from billfold.events.brokers import STREAM

MakePerson = Callable[..., Awaitable[Any]]


async def test_a_transfer_is_published_as_transfer_completed(
    client: httpx.AsyncClient, make_person: MakePerson, redis: Redis
) -> None:
    """The app's relay puts a CloudEvent `billfold.transfer.completed.v1` for the transfer on
    the Redis stream: its amount a decimal string with the currency, no card or bank number."""
    alice, bob = await make_person("100.00"), await make_person()
    response = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "12.50"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    transfer_id = response.json()["transfer_id"]
    found: list[dict[str, Any]] = []
    for _ in range(100):
        entries = await redis.xrange(STREAM)
        events = [orjson.loads(fields["event"]) for _, fields in entries]
        found = [e for e in events if e.get("data", {}).get("transfer_id") == str(transfer_id)]
        if found:
            break
        await asyncio.sleep(0.05)
    assert found, "no event for the transfer within 5 s"
    event = found[0]
    assert event["specversion"] == "1.0" and event["type"] == "billfold.transfer.completed.v1"
    assert event["subject"] == f"transfer/{transfer_id}" and event["id"] and event["time"]
    assert (event["data"]["amount"], event["data"]["currency"]) == ("12.50", "USD")
    assert set(event["data"]) == {
        "transfer_id",
        "kind",
        "code",
        "amount",
        "currency",
        "debit_account_id",
        "credit_account_id",
    }
