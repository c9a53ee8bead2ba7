"""An ordinary past for users who have none: for the demo, and for tests of the model.

The learned model judges a movement against the user's past (risk.serving), and an account
minutes old that sends money at once looks like the fraud it learned. `give_ordinary_past`
writes, through the risk engine's own `prepare` and `record`, what months of ordinary use would
have left: the accounts signed up a year ago from one phone each at home, then a friend group
paying each other $20-$55 every other day and one of them adding $500 from the bank every two
weeks. Each phone's device id is random, as a device token's is (platform.security): nothing
about a user tells it. It writes only the risk engine's memory (assessments, known devices,
countries and address blocks), never money: the ledger is untouched.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from billfold.platform.security import new_device_id
from billfold.risk.engine import RulesEngine
from billfold.risk.gate import Movement
from billfold.risk.places import remember_places
from billfold.risk.rules import Action, Verdict

ALLOWED = Verdict(Action.ALLOW, 0.0, ())


async def give_ordinary_past(
    pool: asyncpg.Pool,
    engine: RulesEngine,
    user_ids: Sequence[str],
    *,
    days: int = 60,
    country: str = "US",
    address: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Backdates `user_ids` (at least two) by a year and records `days` days of them paying each
    other. The first user also adds money by ACH every 14 days. Runs once per user: a user who
    already has assessments is left as they are. Gives each user's home phone (its device id;
    a device token of it makes a request come from it)."""
    if len(user_ids) < 2:
        raise ValueError("an ordinary past needs at least two users, to pay each other")
    ids = [uuid.UUID(user_id) for user_id in user_ids]
    if await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM risk_assessments WHERE user_id = ANY($1))", ids
    ):
        return await _home_phones(pool, ids)
    now = now or datetime.now(UTC)
    signup = now - timedelta(days=365)
    await pool.execute("UPDATE users SET created_at = $2 WHERE id = ANY($1)", ids, signup)
    phones = {user_id: new_device_id() for user_id in user_ids}
    for user_id in user_ids:
        await remember_places(pool, user_id, phones[user_id], country, address, signup)
    for day in range(days, 0, -1):
        at = now - timedelta(days=day, hours=5)
        payer = user_ids[day % len(user_ids)]
        payee = user_ids[(day + 1) % len(user_ids)]
        moves = [Movement("p2p", payer, payee, 2_000 + 700 * (day % 6), "USD")]
        if day % 14 == 0:
            moves.append(Movement("add_funds", user_ids[0], None, 500_00, "USD", rail="ach"))
        for n, move in enumerate(moves):
            placed = Movement(
                move.kind,
                move.user_id,
                move.counterparty_id,
                move.amount_minor,
                "USD",
                ref=f"past-{day}-{n}",
                device_id=phones[move.user_id],
                country=country,
                ip=address,
                rail=move.rail,
            )
            stamp = at + timedelta(minutes=10 * n)
            await engine.record(placed, stamp, await engine.prepare(placed, stamp), ALLOWED)
    await engine.log.flush()
    return phones


async def _home_phones(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[str, str]:
    """Each user's first known device: their home phone, when they were given a past."""
    rows = await pool.fetch(
        """SELECT DISTINCT ON (user_id) user_id, device_id FROM user_devices
            WHERE user_id = ANY($1) ORDER BY user_id, first_seen_at""",
        ids,
    )
    return {str(row["user_id"]): row["device_id"] for row in rows}
