"""The outbox: events written in the transaction of the change they tell of, so that an event
exists if and only if its change committed (never sent straight to a broker). Every context
writes here (a low layer: this package imports only platform and config); the relay publishes.

An event is a CloudEvents 1.0 message: `type` is versioned (`billfold.transfer.completed.v1`),
`subject` names the thing changed, amounts are decimal strings with their currency, and no card
or full account number is ever put in `data`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson

SOURCE = "/billfold"
VERSION = 1
# Currencies with no minor unit; every other one the service meets has two decimal places.
ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})

# The outbox row of an event, written as the ledger writes its batch (ledger.store): prepared by
# name on the batch's connection, its parameters arrays sent as text, in the batch's statement.
WRITE_NAME = "billfold_write_outbox"
WRITE = """
INSERT INTO outbox (event_id, type, source, subject, ordering_key, partition, time, data)
SELECT * FROM unnest($1::text::uuid[], $2::text::text[], $3::text::text[], $4::text::text[],
                     $5::text::text[], $6::text::smallint[], $7::text::timestamptz[],
                     $8::text::jsonb[])
"""
# The same from a context's own transaction, with asyncpg's encoding.
WRITE_NATIVE = """
INSERT INTO outbox (event_id, type, source, subject, ordering_key, partition, time, data)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::smallint[], $7::timestamptz[], $8::jsonb[])
"""


def amount(minor: int, currency: str) -> str:
    """An amount in minor units as a decimal string: 1234 USD is '12.34'."""
    if currency in ZERO_DECIMAL:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def partition_of(ordering_key: str, partitions: int) -> int:
    """The relay partition of a key: one relay at a time publishes a partition, in id order."""
    return zlib.crc32(ordering_key.encode()) % partitions if partitions > 1 else 0


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

    def row(self, partitions: int) -> tuple[Any, ...]:
        """The outbox row's columns, in WRITE's order."""
        return (
            str(self.id),
            self.type,
            SOURCE,
            self.subject,
            self.ordering_key,
            partition_of(self.ordering_key, partitions),
            self.time,
            dict(self.data),
        )


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


async def write(conn: asyncpg.Connection, events: Sequence[Event], partitions: int = 1) -> None:
    """Write events in the caller's transaction (the caller holds it open: they commit with
    the change or not at all)."""
    if not events:
        return
    rows = [event.row(partitions) for event in events]
    columns = [list(column) for column in zip(*rows, strict=True)]
    columns[0] = [UUID(value) for value in columns[0]]
    columns[7] = [orjson.dumps(value).decode() for value in columns[7]]
    await conn.execute(WRITE_NATIVE, *columns)
