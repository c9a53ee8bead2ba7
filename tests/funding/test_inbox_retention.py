"""The bank's applied webhooks are purged after their retention; unapplied ones stay."""

from __future__ import annotations

import uuid

import asyncpg

from billfold.funding.webhooks import purge_inbox

INSERT = """
INSERT INTO webhook_inbox (webhook_id, source, event_type, payload, received_at, applied_at)
VALUES ($1, 'bank', 'test', '{}', now() - make_interval(days => $2),
        CASE WHEN $3 THEN now() END)
"""


async def test_only_applied_webhooks_past_the_retention_go(pool: asyncpg.Pool) -> None:
    """Applied and 31 days old: purged. Applied and recent, or never applied: kept."""
    rows = {
        "old_applied": (31, True),
        "recent_applied": (5, True),
        "old_unapplied": (31, False),
    }
    ids = {name: f"retention-{name}-{uuid.uuid4()}" for name in rows}
    for name, (days, applied) in rows.items():
        await pool.execute(INSERT, ids[name], days, applied)
    assert await purge_inbox(pool, 30, batch=1) >= 1
    left = await pool.fetch(
        "SELECT webhook_id FROM webhook_inbox WHERE webhook_id = ANY($1::text[])",
        list(ids.values()),
    )
    assert {r[0] for r in left} == {ids["recent_applied"], ids["old_unapplied"]}
