"""Transaction history over HTTP: filters, keyset paging under concurrent inserts, privacy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.api.driver import history, pay

MakePerson = Callable[..., Awaitable[Any]]


async def test_history_lists_newest_first_with_counterparty_and_note(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice, bob = await make_person("100.00"), await make_person()
    await pay(client, alice, bob, "1.00", note="coffee")
    await pay(client, alice, bob, "2.00", note="taxi")
    await pay(client, bob, alice, "0.50", note="change")
    body = (await history(client, alice)).json()
    assert body["balance"] == "97.50"
    assert body["next_cursor"] is None
    rows = body["transactions"]
    assert [(r["direction"], r["amount"], r["note"]) for r in rows] == [
        ("in", "0.50", "change"),
        ("out", "2.00", "taxi"),
        ("out", "1.00", "coffee"),
        ("in", "100.00", None),
    ]
    assert rows[0]["counterparty"] == bob.username
    assert rows[0]["type"] == "p2p" and rows[0]["status"] == "COMPLETED"
    assert rows[-1]["type"] == "add_funds" and rows[-1]["counterparty"] is None


async def test_filters_combine(client: httpx.AsyncClient, make_person: MakePerson) -> None:
    alice, bob, carol = await make_person("100.00"), await make_person(), await make_person()
    await pay(client, alice, bob, "5.00", note="rent share")
    await pay(client, alice, carol, "20.00", note="concert")
    await pay(client, bob, alice, "1.00")

    def amounts(response: httpx.Response) -> list[str]:
        return [r["amount"] for r in response.json()["transactions"]]

    assert amounts(await history(client, alice, type="p2p", direction="out")) == ["20.00", "5.00"]
    assert amounts(await history(client, alice, type="add_funds")) == ["100.00"]
    assert amounts(await history(client, alice, counterparty=carol.email)) == ["20.00"]
    assert amounts(await history(client, alice, q="RENT")) == ["5.00"]
    assert amounts(await history(client, alice, q=carol.username[:8])) == ["20.00"]
    assert amounts(
        await history(client, alice, min_amount="2", max_amount="20.00", type="p2p")
    ) == ["20.00", "5.00"]
    assert amounts(await history(client, alice, status="completed", direction="in")) == [
        "1.00",
        "100.00",
    ]
    assert amounts(await history(client, alice, counterparty="nobody_at_all")) == []
    today = (await history(client, alice)).json()["transactions"][0]["timestamp"][:10]
    assert len(amounts(await history(client, alice, **{"from": today, "to": today}))) == 4
    assert amounts(await history(client, alice, to="2001-01-01")) == []
    assert amounts(await history(client, alice, **{"from": "2999-01-01"})) == []


async def test_bad_filters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice = await make_person()
    cases = {
        "type": {"type": "bitcoin"},
        "direction": {"direction": "up"},
        "status": {"status": "weird"},
        "min_amount": {"min_amount": "1.234"},
        "from": {"from": "yesterday"},
        "cursor": {"cursor": "!!!"},
        "limit": {"limit": "500"},
    }
    for field, params in cases.items():
        response = await history(client, alice, **params)
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.text


async def test_paging_during_concurrent_inserts_never_repeats_or_skips(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Pages of 7 read while 30 new transfers land: every old row exactly once, in order."""
    alice, bob = await make_person("1000.00"), await make_person()
    for i in range(40):
        await pay(client, alice, bob, "1.00", note=f"old {i}")
    first = (await history(client, alice, limit=7)).json()
    seen = [r["note"] for r in first["transactions"]]
    cursor = first["next_cursor"]

    async def more_inserts() -> None:
        for i in range(30):
            await pay(client, alice, bob, "1.00", note=f"new {i}")

    inserting = asyncio.create_task(more_inserts())
    while cursor:
        page = (await history(client, alice, limit=7, cursor=cursor)).json()
        seen += [r["note"] for r in page["transactions"]]
        cursor = page["next_cursor"]
        await asyncio.sleep(0)
    await inserting
    assert seen == [f"old {i}" for i in range(39, -1, -1)] + [None]


async def test_another_users_history_is_404(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    alice, eve = await make_person("1.00"), await make_person()
    response = await client.get(f"/api/v1/wallet/{alice.user_id}/transactions", headers=eve.auth)
    assert response.status_code == 404


async def test_q_finds_words_and_word_starts_in_notes_and_names(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """q matches notes holding every word of it (the last may be a word's start), or a
    counterparty whose username starts with it; paging a search goes on to the oldest match."""
    alice, bob = await make_person("100.00"), await make_person()
    for n in range(7):
        await pay(client, alice, bob, f"{n + 1}.00", note=f"Pizza night #{n}")
    await pay(client, alice, bob, "9.00", note="rent share")

    def amounts(response: httpx.Response) -> list[str]:
        return [r["amount"] for r in response.json()["transactions"]]

    assert amounts(await history(client, alice, q="sha")) == ["9.00"]
    assert amounts(await history(client, alice, q="pizza 3")) == ["4.00"]
    assert amounts(await history(client, alice, q="pizza rent")) == []
    assert amounts(await history(client, alice, q="piz night")) == []
    assert amounts(await history(client, alice, q="#?!")) == []
    assert len(amounts(await history(client, alice, q=f"@{bob.username}"))) == 8
    first = (await history(client, alice, q="pizza", limit="4")).json()
    second = (
        await history(client, alice, q="pizza", limit="4", cursor=first["next_cursor"])
    ).json()
    seen = [r["amount"] for r in first["transactions"] + second["transactions"]]
    assert seen == ["7.00", "6.00", "5.00", "4.00", "3.00", "2.00", "1.00"]
    assert second["next_cursor"] is None
