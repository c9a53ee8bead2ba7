"""Daily figures of the stream, for the operator console: per day (UTC), event type and currency,
how many events and their volume; and the day's hold and decline rates of person-to-person
transfers. Kept in `event_figures` by the consumer group `figures` (one member a process).

Delivery is at least once, so each event is counted once by its id: the batch's ids go into
`event_figures_seen` in the transaction that adds their figures, and an id already there adds
nothing. The ids are kept for HORIZON past the outbox's retention (all a relay may publish
again, `billfold events replay` included); an event older than that is not counted at all, so
that a pruned id cannot count twice (a new group meeting an old stream counts its recent past).

The rates' denominator is the risk gate's first decision on each P2P transfer: completed at
once (`transfer.completed` of kind `transfer` and code `p2p`), held (`transfer.held`), or
declined before any hold (`transfer.declined` without a transfer). The hold rate is the day's
holds over it, the decline rate the day's declines (after a hold too) over it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.events.consumer import CloudEvent, Consumer
from billfold.platform.currency import minor_units

GROUP = "figures"
# How long past the outbox's retention an event's id is kept (and the oldest event counted).
HORIZON = timedelta(hours=24)
PRUNE_EVERY_S = 60.0
PRUNE_MAX = 10_000
P2P_CODE = "p2p"  # the ledger code of a person-to-person transfer (wallet.transfers.P2P)

SEE = """
INSERT INTO event_figures_seen (event_id, time)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
    ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
# Rows in key order: two members adding to the same rows lock them in one order.
ADD = """
INSERT INTO event_figures AS f (day, type, currency, count, volume_minor, decisions)
SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
    ON CONFLICT (day, type, currency) DO UPDATE
   SET count = f.count + excluded.count,
       volume_minor = f.volume_minor + excluded.volume_minor,
       decisions = f.decisions + excluded.decisions
"""
PRUNE = """
DELETE FROM event_figures_seen WHERE event_id IN (
    SELECT event_id FROM event_figures_seen WHERE time < $1 LIMIT $2)
"""
OF_DAY = """
SELECT type, currency, count, volume_minor, decisions FROM event_figures
 WHERE day = $1 ORDER BY type, currency
"""


@dataclass(frozen=True, slots=True)
class TypeFigure:
    type: str
    currency: str  # '' for an event with no amount
    count: int
    volume_minor: int


@dataclass(frozen=True, slots=True)
class Rates:
    """A day's P2P transfers in one currency: the gate's decisions, the holds, the declines."""

    currency: str
    decisions: int
    held: int
    declined: int

    @property
    def hold_rate(self) -> float | None:
        return self.held / self.decisions if self.decisions else None

    @property
    def decline_rate(self) -> float | None:
        return self.declined / self.decisions if self.decisions else None


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: date
    by_type: list[TypeFigure]
    rates: list[Rates]


def consumer(pool: asyncpg.Pool, settings: Settings) -> Consumer:
    """The `figures` group's member, as the app starts it (billfold.app._consumers)."""
    return Consumer(GROUP, Figures(pool, settings.events_retention_h).handle)


class Figures:
    def __init__(self, pool: asyncpg.Pool, retention_h: float) -> None:
        self._pool = pool
        self._keep = timedelta(hours=retention_h) + HORIZON
        self._pruned_at = 0.0

    async def handle(self, events: Sequence[CloudEvent]) -> None:
        """Count the events not counted yet (by id), in one transaction. An event that cannot
        be read (no id, a bad amount) raises: the consumer tries it alone, then gives it up."""
        oldest = datetime.now(UTC) - self._keep
        fresh: dict[uuid.UUID, tuple[datetime, CloudEvent]] = {}
        for event in events:
            at = datetime.fromisoformat(event["time"]).astimezone(UTC)
            if at >= oldest:
                fresh.setdefault(uuid.UUID(event["id"]), (at, event))
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            await self._pool.execute(PRUNE, oldest, PRUNE_MAX)
        if not fresh:
            return
        ids = sorted(fresh)  # in one order for every member: their inserts wait, never deadlock
        async with self._pool.acquire() as conn, conn.transaction():
            seen = await conn.fetch(SEE, ids, [fresh[i][0] for i in ids])
            tally = _tally(fresh[r["event_id"]] for r in seen)
            if tally:
                keys = sorted(tally)
                counts = [tally[k] for k in keys]
                await conn.execute(
                    ADD,
                    *([k[n] for k in keys] for n in range(3)),
                    *([c[n] for c in counts] for n in range(3)),
                )


def _tally(events: Iterable[tuple[datetime, CloudEvent]]) -> dict[tuple[date, str, str], list[int]]:
    """(day, type, currency) -> [count, volume in minor units, decisions]."""
    tally: dict[tuple[date, str, str], list[int]] = {}
    for at, event in events:
        data = event.get("data") or {}
        currency = data.get("currency") or ""
        volume = _minor(data["amount"], currency) if data.get("amount") is not None else 0
        row = tally.setdefault((at.date(), event["type"], currency), [0, 0, 0])
        row[0] += 1
        row[1] += volume
        row[2] += _is_decision(event["type"], data)
    return tally


def _minor(amount: str, currency: str) -> int:
    """An event's decimal amount in minor units ('12.50' USD is 1250); raises if it has more
    decimals than the currency."""
    minor = Decimal(amount).scaleb(minor_units(currency))
    if minor != minor.to_integral_value():
        raise ValueError(f"amount {amount!r} has too many decimal places for {currency}")
    return int(minor)


def kind_of(event_type: str) -> str:
    """`billfold.transfer.held.v1` is `transfer.held`."""
    return event_type.removeprefix("billfold.").rsplit(".v", 1)[0]


def _is_decision(event_type: str, data: dict[str, Any]) -> bool:
    kind = kind_of(event_type)
    if kind == "transfer.completed":
        return data.get("kind") == "transfer" and data.get("code") == P2P_CODE
    if kind == "transfer.declined":
        return data.get("transfer_id") is None
    return kind == "transfer.held"


async def day_figures(pool: asyncpg.Pool, day: date) -> DayFigures:
    """The figures of a day (UTC): by type and currency, and the P2P rates by currency."""
    rows = await pool.fetch(OF_DAY, day)
    by_type = [TypeFigure(r["type"], r["currency"], r["count"], r["volume_minor"]) for r in rows]
    rates: dict[str, list[int]] = {}
    for r in rows:
        kind = kind_of(r["type"])
        if r["decisions"] or kind in ("transfer.held", "transfer.declined"):
            row = rates.setdefault(r["currency"], [0, 0, 0])
            row[0] += r["decisions"]
            row[1] += r["count"] if kind == "transfer.held" else 0
            row[2] += r["count"] if kind == "transfer.declined" else 0
    return DayFigures(day, by_type, [Rates(c, *counts) for c, counts in sorted(rates.items())])
