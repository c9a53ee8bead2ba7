"""Money moved over HTTP is told on the event stream, with no card or account number."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from billfold.events.brokers import STREAM
from billfold.events.figures import day_figures

MakePerson = Callable[..., Awaitable[Any]]
ACCOUNT = "000123456789"


async def published(redis: Redis, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The events on the Redis stream that `wanted` picks, waiting up to 5 s for one."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        entries = await redis.xrange(STREAM)
        found = [e for e in (orjson.loads(f["event"]) for _, f in entries) if wanted(e)]
        if found:
            break
        await asyncio.sleep(0.05)
    return found


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
        "from_user_id",
        "to_user_id",
        "legs",
    }
    assert event["data"]["legs"] is None
    metrics = (await client.get("/metrics")).text
    published = [line for line in metrics.splitlines() if line.startswith("billfold_events_pub")]
    assert any(line.startswith("billfold_events_published_total ") for line in published)
    assert float(published[0].split()[-1]) >= 1
    assert "billfold_events_publish_age_seconds_bucket" in metrics
    assert (event["data"]["from_user_id"], event["data"]["to_user_id"]) == (
        alice.user_id,
        bob.user_id,
    )


async def test_the_apps_figures_group_counts_a_transfer(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The app runs the `figures` consumer group: a P2P transfer over HTTP adds, within a few
    seconds, to the day's USD count and volume of transfer.completed and to its P2P decisions."""
    alice, bob = await make_person("100.00"), await make_person()
    today = datetime.now(UTC).date()

    async def usd_completed() -> tuple[int, int, int]:
        figures = await day_figures(app.state.pool, today)
        count, volume = next(
            (
                (f.count, f.volume_minor)
                for f in figures.by_type
                if (f.type, f.currency) == ("billfold.transfer.completed.v1", "USD")
            ),
            (0, 0),
        )
        decisions = next((r.decisions for r in figures.rates if r.currency == "USD"), 0)
        return count, volume, decisions

    before = await usd_completed()
    response = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "12.34"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.text
    after = before
    async with asyncio.timeout(15):
        while after[2] == before[2]:
            await asyncio.sleep(0.1)
            after = await usd_completed()
    assert after[0] > before[0] and after[1] >= before[1] + 1234


async def test_an_ach_add_funds_returned_is_told_pending_then_returned(
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
    redis: Redis,
) -> None:
    """funding.pending when the add-funds is recorded, funding.returned (with its code) when
    the bank returns it; neither holds the bank account's number."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    response = await client.post(
        "/api/v1/wallet/add-funds",
        json={"user_id": person.user_id, "amount": "40.00", "bank_account_id": bank_id},
        headers={**person.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    funding_id = response.json()["transfer_id"]
    returned = await client.post(
        f"/api/v1/sandbox/ach/{funding_id}/return", json={"return_code": "R01"}, headers=person.auth
    )
    assert returned.status_code == 200, returned.text
    events = await published(
        redis,
        lambda e: e.get("subject") == f"funding/{funding_id}" and e["type"].endswith("returned.v1"),
    )
    assert events, "no funding.returned within 5 s"
    told = await published(redis, lambda e: e.get("subject") == f"funding/{funding_id}")
    assert [e["type"] for e in told] == [
        "billfold.funding.pending.v1",
        "billfold.funding.returned.v1",
    ]
    assert told[1]["data"]["return_code"] == "R01"
    assert (told[0]["data"]["amount"], told[0]["data"]["currency"]) == ("40.00", "USD")
    assert all(ACCOUNT not in orjson.dumps(e).decode() for e in told)
