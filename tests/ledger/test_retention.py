"""The purge of idempotency keys: a retry within the retention window replays; after the purge
it is a new transfer; the service's own clients' keys are never purged."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from billfold.ledger.accounts import get_account
from billfold.ledger.engine import Ledger
from billfold.ledger.retention import purge_idempotency_keys

OpenWallet = Callable[..., Awaitable[int]]


async def _age(pool: asyncpg.Pool, client: str, key: str, hours: float) -> None:
    await pool.execute(
        """UPDATE idempotency_keys SET created_at = created_at - make_interval(secs => $3)
            WHERE client_id = $1 AND key = $2""",
        client,
        key,
        hours * 3600,
    )


def _move(ledger: Ledger, client: str, key: str, debit: int, credit: int) -> Awaitable[object]:
    return ledger.move(
        client, key, debit_account_id=debit, credit_account_id=credit, amount_minor=100,
        currency="USD", code="p2p",
    )  # fmt: skip


async def test_a_retry_replays_within_the_window_and_is_new_after_the_purge(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Within 24 hours the same key replays the first transfer; once purged, it moves again."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    client, key = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    first = await _move(ledger, client, key, alice, bob)
    await _age(pool, client, key, 23)
    assert await purge_idempotency_keys(pool, 24, batch=10) == 0
    replay = await _move(ledger, client, key, alice, bob)
    assert (replay.id, replay.replayed) == (first.id, True)  # type: ignore[attr-defined]
    assert (await get_account(pool, alice)).posted_minor == 900

    await _age(pool, client, key, 2)
    assert await purge_idempotency_keys(pool, 24, batch=10) >= 1
    again = await _move(ledger, client, key, alice, bob)
    assert again.id != first.id and not again.replayed  # type: ignore[attr-defined]
    assert (await get_account(pool, alice)).posted_minor == 800
    assert (await get_account(pool, bob)).posted_minor == 200


async def test_the_purge_keeps_the_service_clients_keys_and_goes_in_batches(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Keys of funding, risk, system and merchants stay (days-long processes look them up);
    people's old keys all go, a batch at a time."""
    alice, bob = await open_wallet(10_000), await open_wallet()
    kept = [("funding", str(uuid.uuid4())), (f"merchant:{uuid.uuid4()}", str(uuid.uuid4()))]
    people = [(f"user:{uuid.uuid4()}", str(uuid.uuid4())) for _ in range(7)]
    for client, key in kept + people:
        await _move(ledger, client, key, alice, bob)
        await _age(pool, client, key, 48)
    assert await purge_idempotency_keys(pool, 24, batch=3) >= 7
    left = await pool.fetch(
        "SELECT client_id, key FROM idempotency_keys WHERE key = ANY($1::text[])",
        [key for _, key in kept + people],
    )
    assert sorted(tuple(r) for r in left) == sorted(kept)
