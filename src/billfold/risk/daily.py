"""The risk engine's days, for the operator console's charts: per day (UTC) of the last 30, how
many movements it assessed, their money less what was declined (by the engine, by a
review, by wrong PINs or refused later), and how many the engine declined. Read from
risk_assessments by its time index (migration 0018), days without a movement included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

MAX_DAYS = 90
_DAYS = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS movements,
       coalesce(sum(amount_minor) FILTER (WHERE action <> 'decline' AND NOT declined_later),
                0)::bigint AS volume_minor,
       count(*) FILTER (WHERE action = 'decline') AS declined
  FROM risk_assessments
 WHERE created_at >= $1 AND created_at < $2
 GROUP BY 1
"""


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    movements: int  # assessed
    # Moved, or held and still waiting: every movement but those declined (at once or later).
    volume_minor: int
    declined: int

    @property
    def decline_rate(self) -> float | None:
        return self.declined / self.movements if self.movements else None


async def daily_decisions(
    pool: asyncpg.Pool, days: int = 30, today: date | None = None
) -> list[Day]:
    """The last `days` days (1 to MAX_DAYS) up to `today` (UTC) included, oldest first."""
    days = max(1, min(days, MAX_DAYS))
    last = today or datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), UTC)
    rows = await pool.fetch(_DAYS, start, start + timedelta(days=days))
    found = {r["day"]: r for r in rows}
    out = []
    for n in range(days):
        day = first + timedelta(days=n)
        row = found.get(day)
        out.append(
            Day(day, row["movements"], row["volume_minor"], row["declined"])
            if row is not None
            else Day(day, 0, 0, 0)
        )
    return out
