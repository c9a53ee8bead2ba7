"""What the producers' tests read and do to the outbox: the events told to a person, read straight
from the table (not through the relay), and a commit that fails after a change and its event
were written, to prove the two are one transaction."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

_REFUSE = """
CREATE OR REPLACE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'commit refused by the test (%)', NEW.type;
END $$
"""


@dataclass(frozen=True)
class Told:
    kind: str  # the type without prefix and version: transfer.held
    subject: str
    ordering_key: str
    data: dict[str, Any]


async def told_to(pool: asyncpg.Pool, user_id: uuid.UUID, *kinds: str) -> list[Told]:
    """The events told to the person (their `user_id`), of `kinds` if given, in outbox order."""
    rows = await pool.fetch(
        "SELECT type, subject, ordering_key, data FROM outbox WHERE data->>'user_id' = $1"
        " ORDER BY id",
        str(user_id),
    )
    found = [
        Told(r["type"].removeprefix("billfold.").rsplit(".v", 1)[0], *tuple(r)[1:]) for r in rows
    ]
    return [t for t in found if not kinds or t.kind in kinds]


async def about(pool: asyncpg.Pool, subject: str) -> list[str]:
    """The kinds of the events about `subject` (transfer/1234, funding/<uuid>), in order."""
    rows = await pool.fetch("SELECT type FROM outbox WHERE subject = $1 ORDER BY id", subject)
    return [r["type"].removeprefix("billfold.").rsplit(".v", 1)[0] for r in rows]


@contextlib.asynccontextmanager
async def commit_refused(
    pool: asyncpg.Pool, user_id: uuid.UUID, kind: str | None = None
) -> AsyncIterator[None]:
    """Within it, a transaction that writes an event told to `user_id` (of `kind`, if given)
    fails at its COMMIT (a deferred constraint trigger on the outbox), once everything in it
    was written: the change is rolled back with its event, or, if it was made in another
    transaction, stays alone."""
    name = f"test_refuse_{secrets.token_hex(4)}"
    of_kind = f" AND NEW.type = 'billfold.{kind}.v1'" if kind else ""
    await pool.execute(_REFUSE)
    await pool.execute(
        f"""CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON outbox
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN (NEW.data->>'user_id' = '{user_id}'{of_kind})
            EXECUTE FUNCTION test_refuse_commit()"""
    )
    try:
        yield
    finally:
        await pool.execute(f"DROP TRIGGER {name} ON outbox")
