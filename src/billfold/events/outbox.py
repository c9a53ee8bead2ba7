"""The outbox: events written in the transaction of the change they tell of, so that an event
exists if and only if its change committed (never sent straight to a broker). Every context
writes here (a low layer: this package imports only platform and config); the relay publishes.

An event is a CloudEvents 1.0 message: `type` is versioned (`billfold.transfer.completed.v1`),
`subject` names the thing changed, amounts are decimal strings with their currency, and no card
or full account number is ever put in `data`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from billfold.platform.currency import format_amount, places_sql
from billfold.platform.db import OUTBOX_SETTING, PARTITIONS_SETTING

SOURCE = "/billfold"
VERSION = 1

# Whether events are written (config.outbox) and into how many relay partitions
# (config.events_partitions) are session parameters of every connection the service opens
# (platform.db.server_settings): a producer writes without being handed the settings, and
# BILLFOLD_OUTBOX=false means that no producer writes a row.
_ON = f"coalesce(current_setting('{OUTBOX_SETTING}', true), '') <> 'off'"
_PARTITIONS = f"nullif(current_setting('{PARTITIONS_SETTING}', true), '')::integer"

# A month of the outbox is detached (platform.partitions) only once every event in it was
# published.
DETACH_GUARD = "published_at IS NULL"

# An event's row from a context's own transaction (`write`); $8: the partitions, if not the
# session's. The data comes as JSON text, parsed here: the pool's jsonb codec would store a
# str as a JSON string.
WRITE = f"""
INSERT INTO outbox (event_id, type, source, subject, ordering_key, partition, time, data)
SELECT u.event_id, u.type, u.source, u.subject, u.ordering_key,
       outbox_partition(u.ordering_key, coalesce($8, {_PARTITIONS}, 1)), u.time, u.data::jsonb
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
              $7::text[]) WITH ORDINALITY
       AS u(event_id, type, source, subject, ordering_key, time, data, n)
 WHERE {_ON}
 ORDER BY u.n
"""

# Events that ride with a ledger command (ledger.model.SideRow, `with_command`): written by the
# command's batch, in its statement, if and only if the ledger committed the command and did
# not refuse it, and once whatever its retries (a replay writes no side row). The parameters
# come as text, as the ledger sends its own; the last one is the ledger's (refused or not).
WITH_COMMAND_NAME = "billfold_write_events"
WITH_COMMAND = f"""
INSERT INTO outbox (event_id, type, source, subject, ordering_key, partition, time, data)
SELECT u.event_id, u.type, '{SOURCE}', u.subject, u.ordering_key,
       outbox_partition(u.ordering_key, coalesce({_PARTITIONS}, 1)), u.time, u.data
  FROM unnest($1::text::uuid[], $2::text::text[], $3::text::text[], $4::text::text[],
              $5::text::timestamptz[], $6::text::jsonb[], $7::text::boolean[]) WITH ORDINALITY
       AS u(event_id, type, subject, ordering_key, time, data, refused, n)
 WHERE NOT u.refused AND {_ON}
 ORDER BY u.n
"""

# The `transfer.completed` events of a ledger batch's transfers, written in the batch's own
# statement (a side statement: ledger.model.SideRow) after its transfers: given only the ids,
# times and the two accounts of each, it reads the rest from the rows just written, so that the
# ledger's process spends next to nothing on them. The people on either side are the owners of
# the two accounts when they are wallets (`user:<uuid>`), read by primary key from rows the
# batch has just locked and updated; null for any other account. Rows are numbered in the
# batch's order.
TRANSFERS_COMPLETED_NAME = "billfold_write_outbox"
_TRANSFERS_COMPLETED = """
INSERT INTO outbox (type, source, subject, ordering_key, partition, time, data)
SELECT 'billfold.transfer.completed.v{version}', '{source}', 'transfer/' || t.id,
       'account/' || u.debit, outbox_partition('account/' || u.debit, {partitions}),
       t.created_at,
       jsonb_build_object(
           'transfer_id', t.id::text, 'kind', t.kind, 'code', t.code,
           'amount', round(t.amount_minor::numeric / power(10::numeric, {places}), {places})::text,
           'currency', t.currency,
           'debit_account_id', u.debit::text, 'credit_account_id', u.credit::text,
           'from_user_id', CASE WHEN d.kind = 'wallet' AND d.owner LIKE 'user:%'
                                THEN substr(d.owner, 6) END,
           'to_user_id', CASE WHEN c.kind = 'wallet' AND c.owner LIKE 'user:%'
                              THEN substr(c.owner, 6) END,
           'legs', u.legs::jsonb)
  FROM unnest($1::text::bigint[], $2::text::bigint[], $3::text::bigint[], $4::text::text[],
              $5::text::timestamptz[])
       WITH ORDINALITY AS u(id, debit, credit, legs, at, n)
  -- The transfer's time names its month: one partition probed a transfer.
  JOIN transfers t ON t.id = u.id AND t.created_at = u.at
  JOIN accounts d ON d.id = u.debit
  JOIN accounts c ON c.id = u.credit
 ORDER BY u.n
"""


def transfers_completed(partitions: int) -> str:
    """The statement of TRANSFERS_COMPLETED_NAME for a number of relay partitions."""
    return _TRANSFERS_COMPLETED.format(
        version=VERSION,
        source=SOURCE,
        partitions=int(partitions),
        places=places_sql("t.currency"),
    )


def amount(minor: int, currency: str) -> str:
    """An amount in minor units as a decimal string: 1234 USD is '12.34'."""
    return format_amount(minor, currency)


@dataclass(frozen=True, slots=True)
class Event:
    """One event. `kind` is the type without prefix or version (`transfer.completed`);
    `ordering_key` (an account) is what the relay keeps the order of."""

    kind: str
    subject: str
    ordering_key: str
    time: datetime
    data: Mapping[str, Any]
    id: UUID = field(default_factory=uuid4)

    @property
    def type(self) -> str:
        return f"billfold.{self.kind}.v{VERSION}"

    def row(self) -> tuple[Any, ...]:
        """The outbox row's columns, in WRITE's order."""
        data = orjson.dumps(dict(self.data)).decode()
        return (self.id, self.type, SOURCE, self.subject, self.ordering_key, self.time, data)


def cloudevent(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents 1.0 JSON of an outbox row."""
    data = row["data"]
    return {
        "specversion": "1.0",
        "id": str(row["event_id"]),
        "source": row["source"],
        "type": row["type"],
        "subject": row["subject"],
        "time": row["time"].isoformat(),
        "datacontenttype": "application/json",
        "data": orjson.loads(data) if isinstance(data, str | bytes) else data,
    }


def with_command(event: Event) -> tuple[str, tuple[Any, ...]]:
    """The event as a side row of a ledger command (ledger.model.SideRow; WITH_COMMAND): it is
    written with the command's outcome, unless the ledger refuses the command."""
    data = orjson.dumps(dict(event.data)).decode()
    row = (str(event.id), event.type, event.subject, event.ordering_key, event.time, data)
    return WITH_COMMAND_NAME, row


async def write(
    conn: asyncpg.Connection, events: Sequence[Event], partitions: int | None = None
) -> None:
    """Write events in the caller's transaction (the caller holds it open: they commit with
    the change or not at all). `partitions`: the relay partitions, if not the session's
    (config.events_partitions); nothing is written when the session's outbox is off."""
    if not events:
        return
    columns = [list(column) for column in zip(*(e.row() for e in events), strict=True)]
    await conn.execute(WRITE, *columns, partitions)


async def backlog(pool: asyncpg.Pool) -> dict[str, Any]:
    """What the relay has not published yet (for operators): how many rows, and the time of the
    oldest (None when none waits). Reads the relay's partial index."""
    row = await pool.fetchrow(
        "SELECT count(*) AS unpublished, min(time) AS oldest FROM outbox WHERE published_at IS NULL"
    )
    return {"unpublished": row["unpublished"], "oldest": row["oldest"]}
