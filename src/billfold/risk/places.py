"""Where a user acts from: the devices, countries, address blocks and exact addresses that become
known for them at sign-up and with each movement that goes ahead (the features read them as
"seen before", and the rules the accounts that share an address)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.platform import db
from billfold.risk.gate import UNVERIFIED_DEVICE, Movement
from billfold.risk.history import address_of, ip_prefix
from billfold.risk.past_sql import REMEMBER


async def remember(pool: asyncpg.Pool, movement: Movement, at: datetime | None = None) -> None:
    """The device, country and address block of a movement that went ahead become known."""
    await db.execute(pool, REMEMBER, *places_of(movement, at or datetime.now(UTC)))


async def remember_places(
    pool: asyncpg.Pool,
    user_id: str,
    device_id: str | None,
    country: str | None,
    ip: str | None,
    at: datetime | None = None,
) -> None:
    """Where a user acts from becomes known for them: at signup, and after each movement."""
    places = where_of(user_id, device_id, country, ip, at or datetime.now(UTC))
    await db.execute(pool, REMEMBER, *places)


def places_of(movement: Movement, at: datetime) -> tuple[Any, ...]:
    """REMEMBER's arguments for a movement."""
    return where_of(movement.user_id, movement.device_id, movement.country, movement.ip, at)


def where_of(
    user_id: str, device_id: str | None, country: str | None, ip: str | None, at: datetime
) -> tuple[Any, ...]:
    # An unverified device is no place to remember: the next request claiming it is no more
    # the user's than this one.
    device = None if device_id == UNVERIFIED_DEVICE else device_id
    prefix = ip_prefix(ip) if ip else None
    return (uuid.UUID(user_id), device, country, prefix, at, address_of(ip))


async def known_places(pool: asyncpg.Pool, user_id: uuid.UUID, limit: int = 50) -> dict[str, Any]:
    """The devices and countries known for a user, most recently seen first (for operators)."""
    async with pool.acquire() as conn:
        devices = await conn.fetch(
            """SELECT device_id, first_seen_at, last_seen_at FROM user_devices
                WHERE user_id = $1 ORDER BY last_seen_at DESC LIMIT $2""",
            user_id,
            limit,
        )
        countries = await conn.fetch(
            """SELECT country, first_seen_at, last_seen_at FROM user_countries
                WHERE user_id = $1 ORDER BY last_seen_at DESC LIMIT $2""",
            user_id,
            limit,
        )
    return {"devices": [dict(r) for r in devices], "countries": [dict(r) for r in countries]}
