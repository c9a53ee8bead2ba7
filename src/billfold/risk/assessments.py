"""How risk assessments are stored: one at once (a held movement refers to it), many in one
statement a few milliseconds later (AssessmentLog), or in the ledger's statement with the
transfer they judge (RECORD_WITH_TRANSFER, a ledger side row)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from billfold.events import outbox
from billfold.platform import db
from billfold.platform.logging import get_logger
from billfold.risk import serving
from billfold.risk.gate import Movement, Verdict
from billfold.risk.history import ip_prefix
from billfold.risk.model import Pushed

log = get_logger("billfold.risk")

_COLUMNS = """user_id, kind, ref, counterparty_id, amount_minor, score, action, created_at,
                              device_id, country, ip_prefix, rail, new_payee, sender_new,
                              model_version, top_features, reasons, aml"""
# top_features comes as JSON text (see explained), in every statement: the ledger's side rows
# are text anyway, and asyncpg's jsonb codec would encode a str as a JSON string.
RECORD = f"""
INSERT INTO risk_assessments ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, ($16::text)::jsonb,
        $17, $18)
RETURNING id
"""
# Many at once. unnest can't take arrays of arrays, so each row's reasons (and AML flags) go
# in as one text, joined by the ASCII unit separator, which no reason holds (SEPARATOR).
SEPARATOR = "\x1f"
_RECORD_MANY_SQL = """
INSERT INTO risk_assessments ({columns})
SELECT r.user_id, r.kind, r.ref, r.counterparty_id, r.amount_minor, r.score, r.action,
       r.created_at, r.device_id, r.country, r.ip_prefix, r.rail, r.new_payee, r.sender_new,
       r.model_version, r.top_features::jsonb,
       string_to_array(r.reasons, E'\\x1f'), string_to_array(r.aml, E'\\x1f'){refused}
  FROM unnest($1::{t}uuid[], $2::{t}text[], $3::{t}text[], $4::{t}uuid[], $5::{t}bigint[],
              $6::{t}real[], $7::{t}text[], $8::{t}timestamptz[], $9::{t}text[], $10::{t}text[],
              $11::{t}text[], $12::{t}text[], $13::{t}boolean[], $14::{t}boolean[],
              $15::{t}text[], $16::{t}text[], $17::{t}text[], $18::{t}text[]{refused_parameter})
       AS r(user_id, kind, ref, counterparty_id, amount_minor, score, action, created_at,
            device_id, country, ip_prefix, rail, new_payee, sender_new, model_version,
            top_features, reasons, aml{refused_alias})
"""
RECORD_MANY = _RECORD_MANY_SQL.format(
    columns=_COLUMNS, t="", refused="", refused_parameter="", refused_alias=""
)
# With `with_transfers`, an allowed P2P transfer's assessment is written by the ledger, in its
# batch's statement with the transfer (ledger.model.SideRow): no round trip of its own, stored
# if and only if the transfer's outcome is, and once, whatever the retries. Its parameters are
# RECORD_MANY's, sent as text (as the ledger sends its own), and the ledger's last one: whether
# it refused the transfer (insufficient funds, a frozen wallet). A refused transfer's assessment
# is stored as declined later: money that never moved is no history for the features.
WITH_TRANSFER = "billfold_record_assessments"
RECORD_WITH_TRANSFER = _RECORD_MANY_SQL.format(
    columns=f"{_COLUMNS}, declined_later",
    t="text::",
    refused=", r.refused",
    refused_parameter=", $19::text::boolean[]",
    refused_alias=", refused",
)
BATCH_DELAY_S = 0.005
BATCH_MAX = 1000


async def never_moved(pool: asyncpg.Pool, assessment_id: int) -> None:
    """The movement assessed was not made: the ledger or its rail refused it, or its request
    was answered by an earlier one's movement (a late or concurrent retry). Stored as declined
    later, as migration 0012's triggers mark a held movement declined: money that never moved
    is no history for the features and rules (risk.serving). The verdict stays as given."""
    await pool.execute(
        "UPDATE risk_assessments SET declined_later = true WHERE id = $1", assessment_id
    )


class AssessmentLog:
    """Assessments written a few milliseconds later, many in one statement, with the places
    (device, country, address block) of the allowed ones: two round trips and a commit fewer on
    every declined P2P transfer, and on every allowed one unless the ledger writes its
    assessment (RulesEngine's `with_transfers`; its places still come here). (A held one is
    written at once: its hold refers to it.) Rows still buffered when a process dies are lost,
    the movements are not.

    A declined transfer's event (`transfer.declined`: nothing else of it is written) is
    written in the transaction that writes its assessment, so that it is told if and only if
    its refusal is recorded."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._rows: list[tuple[Any, ...]] = []
        self._places: list[tuple[Any, ...]] = []
        self._events: list[outbox.Event] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    def add(
        self,
        row: tuple[Any, ...] | None,
        places: tuple[Any, ...] | None = None,
        event: outbox.Event | None = None,
    ) -> None:
        """An assessment to write (RECORD_MANY's columns), the places to remember, or both;
        with the assessment, the event that tells of it."""
        if len(self._rows) + len(self._places) >= BATCH_MAX:
            log.warning("assessment log full; an assessment was not recorded")
            return
        if row is not None:
            self._rows.append(row)
            if event is not None:
                self._events.append(event)
        if places is not None:
            self._places.append(places)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        """Writes what is buffered; returns once everything added before the call is written
        (a write already under way included)."""
        async with self._writing:
            rows, self._rows, self._flusher = self._rows, [], None
            places, self._places = self._places, []
            events, self._events = self._events, []
            if not rows and not places:
                return
            columns = [list(column) for column in zip(*rows, strict=True)]
            try:
                if not places and not events:  # most flushes: one statement, no transaction
                    await db.execute(self._pool, RECORD_MANY, *columns)
                    return
                async with self._pool.acquire() as conn, conn.transaction():
                    if rows:
                        await conn.execute(RECORD_MANY, *columns)
                    await outbox.write(conn, events)
                    if places:
                        await conn.executemany(serving.REMEMBER, places)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("assessments not recorded", count=len(rows), error=str(error))


def row_of(
    movement: Movement,
    at: datetime,
    recipient: uuid.UUID | None,
    decided: Verdict,
    new_payee: bool | None,
    sender_new: bool | None,
    model_version: str | None = None,
    top_features: list[Pushed] | None = None,
) -> tuple[Any, ...]:
    """An assessment's row, RECORD's first 16 columns: what was assessed, the verdict, the
    context later features read, and what operators see of the model (its version, and for a
    held or declined movement the features that pushed its score most)."""
    return (
        uuid.UUID(movement.user_id),
        movement.kind,
        movement.ref,
        recipient,
        movement.amount_minor,
        decided.score,
        decided.action.value,
        at,
        movement.device_id,
        movement.country,
        ip_prefix(movement.ip) if movement.ip else None,
        movement.rail,
        new_payee,
        sender_new,
        model_version,
        explained(top_features),
    )


def explained(top_features: list[Pushed] | None) -> str | None:
    """The top features as the top_features column's JSON text (None: not computed)."""
    if top_features is None:
        return None
    return orjson.dumps(top_features).decode()  # orjson writes dataclasses as objects


def as_text(row: tuple[Any, ...], decided: Verdict) -> tuple[Any, ...]:
    """An assessment's row as RECORD_WITH_TRANSFER takes it: what the ledger's array literals
    can write (ids as text, the score as a Python float)."""
    user, kind, ref, recipient, amount, score, *rest = row
    return (
        str(user),
        kind,
        ref,
        str(recipient) if recipient is not None else None,
        amount,
        float(score),
        *rest,
        joined(decided.reasons),
        joined(decided.aml),
    )


def joined(texts: tuple[str, ...]) -> str:
    """Texts as one, for RECORD_MANY (which splits them again)."""
    return SEPARATOR.join(text.replace(SEPARATOR, " ") for text in texts)
