"""Checkout sessions (merchants.checkout): of concurrent payers one claims a session; a claim
lapses after its window unless its payment is held; sweeps in many processes expire each
session once."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import asyncpg
import pytest

from billfold.merchants import checkout, profiles
from billfold.merchants.profiles import Merchant
from billfold.wallet.users import User, check_sign_up, do_create_user

_phones = itertools.count(5_900_000)  # away from the API tests' and tests/world.py's


async def person(pool: asyncpg.Pool) -> User:
    tag = uuid.uuid4().hex[:10]
    phone = f"+1415{next(_phones)}"
    sign_up = check_sign_up(f"c_{tag}", f"{tag}@example.com", phone, "correct horse battery")
    return await do_create_user(pool, sign_up)


async def shop(pool: asyncpg.Pool) -> Merchant:
    new = profiles.check_create_merchant("Kiosk", "5814", "Oakland", "US")
    return await profiles.do_create_merchant(pool, (await person(pool)).id, new)


async def opened(pool: asyncpg.Pool, merchant: Merchant, *, due: bool = False) -> uuid.UUID:
    """A new open session of the merchant's ($2.00), past its time if `due`."""
    new = checkout.check_create_session(merchant, "2.00", None, None, uuid.uuid4().hex)
    view, _ = await checkout.do_create_session(pool, merchant, new)
    session_id = uuid.UUID(view["session_id"])
    if due:
        await pool.execute(
            "UPDATE checkout_sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
            session_id,
        )
    return session_id


async def expired_told(pool: asyncpg.Pool, session_id: uuid.UUID) -> int:
    return int(
        await pool.fetchval(
            """SELECT count(*) FROM outbox
                WHERE type = 'billfold.checkout.session.expired.v1' AND subject = $1""",
            f"checkout-session/{session_id}",
        )
    )


async def test_sweeps_running_at_once_expire_each_session_once(pool: asyncpg.Pool) -> None:
    """Six processes' sweeps, seven sessions a round, over 40 sessions past their time: each
    expired and told once."""
    merchant = await shop(pool)
    ids = [await opened(pool, merchant, due=True) for _ in range(40)]
    total = 0
    while True:
        rounds = await asyncio.gather(*(checkout.expire_due(pool, 7) for _ in range(6)))
        total += sum(rounds)
        if not any(rounds):
            break
    assert total >= 40
    statuses = await pool.fetch("SELECT status FROM checkout_sessions WHERE id = ANY($1)", ids)
    assert {row["status"] for row in statuses} == {"expired"}
    assert [await expired_told(pool, i) for i in ids] == [1] * 40


async def test_of_payers_claiming_at_once_one_claims_the_session(pool: asyncpg.Pool) -> None:
    """Twenty claims at once: one succeeds, nineteen are told the session is being paid; the
    claimer may claim again with its own key, not with another."""
    merchant = await shop(pool)
    session_id = await opened(pool, merchant)
    payers = [await person(pool) for _ in range(20)]
    claims = await asyncio.gather(
        *(checkout.claim_session(pool, session_id, p.id, "key") for p in payers),
        return_exceptions=True,
    )
    won = [p for p, c in zip(payers, claims, strict=True) if isinstance(c, checkout.Session)]
    lost = [c for c in claims if isinstance(c, checkout.SessionNotOpen)]
    assert (len(won), len(lost)) == (1, 19)
    assert {c.fields["session_status"] for c in lost} == {"open"}
    await checkout.claim_session(pool, session_id, won[0].id, "key")
    with pytest.raises(checkout.SessionNotOpen):
        await checkout.claim_session(pool, session_id, won[0].id, "another key")


async def test_a_lapsed_claim_frees_the_session_but_a_held_payment_keeps_it(
    pool: asyncpg.Pool,
) -> None:
    """A claim older than the window (its payer gone) is taken over; one whose payment waits
    for the risk checks is not, and its session does not expire while it waits."""
    merchant = await shop(pool)
    session_id = await opened(pool, merchant)
    first, second, third = await person(pool), await person(pool), await person(pool)
    await checkout.claim_session(pool, session_id, first.id, "k")
    await pool.execute(
        "UPDATE checkout_sessions SET claimed_at = now() - interval '61 seconds' WHERE id = $1",
        session_id,
    )
    await checkout.claim_session(pool, session_id, second.id, "k")
    # The second payer's payment is held (as merchants.records writes one with its hold).
    await pool.execute(
        """INSERT INTO merchant_payments (id, merchant_id, payer_id, session_id, transfer_id,
               amount_minor, fee_minor, currency, status, idempotency_key)
           VALUES ($1, $2, $3, $4, $5, 200, 14, 'USD', 'PENDING_REVIEW', 'k')""",
        uuid.uuid4(),
        merchant.id,
        second.id,
        session_id,
        -int(uuid.uuid4().int % 10**12),
    )
    await pool.execute(
        """UPDATE checkout_sessions SET claimed_at = now() - interval '1 hour',
                  expires_at = now() - interval '1 second' WHERE id = $1""",
        session_id,
    )
    with pytest.raises(checkout.SessionNotOpen):
        await checkout.claim_session(pool, session_id, third.id, "k")
    await checkout.release_claim(pool, session_id, second.id, "k")
    await checkout.expire_due(pool)
    shown = await checkout.show_session(pool, merchant, str(session_id))
    assert shown["status"] == "open"
    assert await expired_told(pool, session_id) == 0
