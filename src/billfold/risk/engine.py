"""The risk engine on the money path: signals, rules, verdict, each assessment stored.

For a movement it gathers what is known before it happens, in two round trips: the velocity
counters (Redis, which also records the movement) and one query for the user's known devices
and countries, typical amount, near-threshold amounts, and the recipient. The rules and the
verdict policy (risk.rules) decide; the assessment is stored with its reasons. Two independent
strong signals also freeze the user, audited as the engine's action.

The learned model (risk.model) is not consulted yet: its features are computed offline from a
full history, and their online counterparts are still to be built, so the score is 0.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.platform import db
from billfold.platform.logging import get_logger
from billfold.risk import operators
from billfold.risk.rules import Action, RiskRules, Signals, check_rules, decide
from billfold.risk.velocity import Observation, Velocity
from billfold.wallet.risk import Movement, Verdict

log = get_logger("billfold.risk")

_CONTEXT = """
SELECT (SELECT count(*) FROM user_devices WHERE user_id = $1) AS devices,
       EXISTS (SELECT 1 FROM user_devices WHERE user_id = $1 AND device_id = $2) AS device_known,
       (SELECT count(*) FROM user_countries WHERE user_id = $1) AS countries,
       EXISTS (SELECT 1 FROM user_countries WHERE user_id = $1 AND country = $3) AS country_known,
       last.country AS last_country, last.last_seen_at AS last_country_at,
       recent.typical, recent.near, recent.added_24h, recent.cash_today,
       NOT EXISTS (SELECT 1 FROM risk_assessments
                    WHERE user_id = $1 AND counterparty_id = $4 AND action = 'allow') AS new_payee,
       (SELECT created_at > now() - interval '7 days' FROM users WHERE id = $1) AS sender_new,
       coalesce(r.flagged, false) AS recipient_flagged,
       coalesce(r.created_at > now() - interval '7 days', false) AS recipient_new_account
  FROM (SELECT 1) one
  LEFT JOIN LATERAL (SELECT country, last_seen_at FROM user_countries WHERE user_id = $1
                      ORDER BY last_seen_at DESC LIMIT 1) last ON true
  -- The user's last 30 days of assessments, read once for the three figures drawn from them.
  CROSS JOIN LATERAL (
        SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY amount_minor)
                   FILTER (WHERE kind = $5 AND action = 'allow') AS typical,
               array_agg(amount_minor) FILTER (
                   WHERE created_at > now() - interval '7 days'
                     AND (amount_minor BETWEEN 900000 AND 999999
                          OR amount_minor BETWEEN 270000 AND 299999)) AS near,
               coalesce(sum(amount_minor) FILTER (
                   WHERE kind = 'add_funds' AND action <> 'decline'
                     AND created_at > now() - interval '24 hours'), 0)::bigint AS added_24h,
               coalesce(sum(amount_minor) FILTER (
                   WHERE kind IN ('add_funds', 'cash_out') AND action <> 'decline'
                     AND created_at >= date_trunc('day', now())), 0)::bigint AS cash_today
          FROM risk_assessments
         WHERE user_id = $1 AND created_at > now() - interval '30 days') recent
  LEFT JOIN users r ON r.id = $4
"""

_RECORD = """
INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor, score, action,
                              reasons, aml)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id
"""
# Many at once: text arrays go in as JSON, as unnest can't take arrays of arrays.
_RECORD_MANY = """
INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor, score, action,
                              reasons, aml)
SELECT r.user_id, r.kind, r.ref, r.counterparty_id, r.amount_minor, r.score, r.action,
       ARRAY(SELECT jsonb_array_elements_text(r.reasons::jsonb)),
       ARRAY(SELECT jsonb_array_elements_text(r.aml::jsonb))
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $6::real[],
              $7::text[], $8::text[], $9::text[])
       AS r(user_id, kind, ref, counterparty_id, amount_minor, score, action, reasons, aml)
"""
BATCH_DELAY_S = 0.005
BATCH_MAX = 1000


class AssessmentLog:
    """Assessments written a few milliseconds later, many in one statement: one round trip
    fewer on every allowed or declined movement. (A held one is written at once: its hold
    refers to it.) Rows still buffered when a process dies are lost, the movements are not."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._rows: list[tuple[Any, ...]] = []
        self._flusher: asyncio.Task[None] | None = None

    def add(self, row: tuple[Any, ...]) -> None:
        if len(self._rows) >= BATCH_MAX:
            log.warning("assessment log full; an assessment was not recorded")
            return
        self._rows.append(row)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        rows, self._rows, self._flusher = self._rows, [], None
        if not rows:
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        try:
            await self._pool.execute(_RECORD_MANY, *columns)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("assessments not recorded", count=len(rows), error=str(error))


class RulesEngine:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, rules: RiskRules) -> None:
        self._pool = pool
        self._velocity = Velocity(redis)
        self.rules = rules
        self.log = AssessmentLog(pool)

    async def assess(self, movement: Movement) -> Verdict:
        signals = await self._signals(movement)
        hits = check_rules(signals, self.rules)
        decided = decide(hits, 0.0, signals, self.rules)
        row = (
            uuid.UUID(movement.user_id),
            movement.kind,
            movement.ref,
            uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None,
            movement.amount_minor,
            decided.score,
            decided.action.value,
        )
        assessment_id = None
        # Batched: allowed and declined P2P transfers, the volume. Written at once: held ones
        # (their hold refers to them) and funding movements, which the next movement's rules
        # read within milliseconds (money in, then straight out).
        if decided.action in (Action.STEP_UP, Action.REVIEW) or movement.kind != "p2p":
            assessment_id = await self._pool.fetchval(
                _RECORD, *row, list(decided.reasons), list(decided.aml)
            )
        else:
            self.log.add(
                (*row, orjson.dumps(decided.reasons).decode(), orjson.dumps(decided.aml).decode())
            )
        if decided.action is Action.ALLOW:
            await remember(self._pool, movement)
        if decided.freeze:
            await operators.do_user_action(
                self._pool,
                None,
                "freeze",
                movement.user_id,
                "risk engine: " + "; ".join(decided.reasons)[:450],
            )
        return Verdict(decided.action.value, decided.score, decided.reasons, assessment_id)

    async def _signals(self, movement: Movement) -> Signals:
        now = datetime.now(UTC)
        user_id = uuid.UUID(movement.user_id)
        recipient = uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None
        # A plain read: given back to the pool without the reset round trip (platform.db).
        context = await db.fetchrow(
            self._pool,
            _CONTEXT,
            user_id,
            movement.device_id,
            movement.country,
            recipient,
            movement.kind,
        )
        assert context is not None
        counts = await self._counts(movement, now, bool(context["sender_new"]))
        return Signals(
            kind=movement.kind,
            amount_minor=movement.amount_minor,
            at=now,
            count_1m=counts[0],
            count_1h=counts[1],
            typical_amount_minor=context["typical"],
            # A first device or country is where the user starts from, not a change.
            device_known=None
            if movement.device_id is None
            else (context["device_known"] or context["devices"] == 0),
            country=movement.country,
            country_known=None
            if movement.country is None
            else (context["country_known"] or context["countries"] == 0),
            last_country=context["last_country"],
            last_country_at=context["last_country_at"],
            recipient_flagged=context["recipient_flagged"],
            recipient_is_new_payee=recipient is not None and context["new_payee"],
            recipient_is_new_account=context["recipient_new_account"],
            recipient_new_senders_24h=counts[2],
            added_funds_24h_minor=context["added_24h"],
            near_threshold_7d=list(context["near"] or []),
            cash_equivalent_today_minor=context["cash_today"],
        )

    async def _counts(
        self, movement: Movement, now: datetime, sender_new: bool
    ) -> tuple[int, int, int]:
        """The velocity windows; without Redis, none (the hard rules then can't fire, which
        is logged: Redis holds no money, and payments go on)."""
        try:
            counters = await self._velocity.observe(
                Observation(
                    event_id=movement.ref or f"{movement.user_id}:{time.time_ns()}",
                    sender_id=movement.user_id,
                    amount_minor=movement.amount_minor,
                    now_ms=int(now.timestamp() * 1000),
                    recipient_id=movement.counterparty_id,
                    device_id=movement.device_id,
                    sender_is_new=sender_new,
                )
            )
        except RedisError as error:
            log.warning("velocity counters unavailable", error=str(error))
            return 0, 0, 0
        return (
            counters.sender_count_1m,
            counters.sender_count_1h,
            counters.recipient_new_senders_24h,
        )


async def remember(pool: asyncpg.Pool, movement: Movement) -> None:
    """The device and country of a movement that went through become known for the user."""
    user_id = uuid.UUID(movement.user_id)
    if movement.device_id is not None:
        await pool.execute(
            """INSERT INTO user_devices (user_id, device_id) VALUES ($1, $2)
               ON CONFLICT (user_id, device_id) DO UPDATE SET last_seen_at = now()""",
            user_id,
            movement.device_id,
        )
    if movement.country is not None:
        await pool.execute(
            """INSERT INTO user_countries (user_id, country) VALUES ($1, $2)
               ON CONFLICT (user_id, country) DO UPDATE SET last_seen_at = now()""",
            user_id,
            movement.country,
        )
