"""The risk engine on the money path: signals, rules, the model, a verdict, each one stored.

For a movement it gathers what is known before it happens, in two round trips: the velocity
counters (Redis, which also records the movement, for the hard rules' exact windows) and one
query for the user's and the recipient's past (risk.serving). From that past the learned model's
features are computed by the same code that computed them for training, and the model scores
them in-process. The rules and the verdict policy (risk.rules) decide; the assessment is stored
with the context the next movement's features will read. Two independent strong signals also
freeze the user, audited as the engine's action.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.events import outbox
from billfold.platform import db
from billfold.platform.coalesce import Coalescer
from billfold.platform.errors import WalletFrozen
from billfold.platform.logging import get_logger
from billfold.risk import lockout, serving
from billfold.risk.assessments import (
    RECORD,
    WITH_TRANSFER,
    AssessmentLog,
    as_text,
    joined,
    row_of,
)
from billfold.risk.events import declined_at_once
from billfold.risk.features import FEATURE_NAMES
from billfold.risk.gate import (
    CLAIM_TTL_MS,
    Action,
    FreezeUser,
    KeyInFlight,
    Movement,
    SideRow,
    Verdict,
)
from billfold.risk.history import address_of, ip_prefix
from billfold.risk.model import Pushed, Scorer
from billfold.risk.places import places_of
from billfold.risk.rules import RiskRules, Signals, check_rules, decide
from billfold.risk.velocity import Observation, Velocity

log = get_logger("billfold.risk")

# Past queries in flight at once, each on a connection of its own (RulesEngine pasts).
PAST_CONNECTIONS = 4
# How the connections the past queries run on are made (platform.db.create_pool's options):
# PAST_MANY with a generic plan, made once per connection, costs 100-170 µs a movement in
# PostgreSQL; planned for each batch of the few movements that meet under load, 230-350 µs
# (docs/decisions.md). The plan needs no values: every index of the tables it reads leads with
# the person a lookup names (migration 0013), so whatever the statistics when it is made, each
# lookup is a range scan of their rows.
PAST_POOL: dict[str, Any] = {"size": PAST_CONNECTIONS, "generic_plans": True}


@dataclass(frozen=True)
class Known:
    past: serving.Past
    request: serving.Request  # the movement as the features read it
    recipient: uuid.UUID | None
    signals: Signals
    features: list[float]  # empty without a model


@dataclass(frozen=True)
class Recorded:
    """Where an assessment went: written at once (its id: a held movement refers to it), handed
    back for the ledger to write with the transfer (WITH_TRANSFER), or neither (buffered)."""

    assessment_id: int | None = None
    with_transfer: SideRow | None = None


class RulesEngine:
    """Rules and, given a `Scorer`, the learned model: the stricter verdict of the two wins."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        rules: RiskRules,
        scorer: Scorer | None = None,
        *,
        freeze: FreezeUser,
        pasts: asyncpg.Pool | None = None,
        with_transfers: bool = False,
    ) -> None:
        """`freeze`: how a user the engine decides to freeze is frozen (the wallet's:
        wallet.standing.engine_freezer). `pasts`: a pool of PAST_CONNECTIONS with generic
        plans (PAST_POOL) for the past queries; without it, they run on `pool`, planned anew
        for each batch.
        `with_transfers`: the verdict on an allowed P2P transfer carries its assessment for the
        ledger to write with the transfer (WITH_TRANSFER, which the ledger must have been given
        as a side statement); the caller must hand it on. Otherwise it is buffered here."""
        self._pool = pool
        self._freeze = freeze
        self._with_transfers = with_transfers
        self._past_pool = pasts or pool
        self._velocity = Velocity(redis)
        self._declines = lockout.Declines(redis)
        self.scorer = scorer
        self.rules = rules.with_model_bands(scorer.bands) if scorer else rules
        self.log = AssessmentLog(pool)
        # The past queries and velocity scripts of concurrent requests go out in batches: one
        # round trip each for many movements (platform.coalesce).
        self._pasts = Coalescer(self._read_pasts, concurrency=PAST_CONNECTIONS)
        self._observations = Coalescer(self._velocity.observe_many)
        # And the model scores them in a row: its trees, evicted from the CPU's caches by the
        # rest of a request's work, are read from memory once for the batch, not once per
        # movement (46 µs a movement one at a time under load, 9 µs in a row).
        self._scores = Coalescer(self._score_many)

    async def warm_up(self) -> None:
        """Pays, before the first movement does, what the first use of each part costs: every
        past connection plans PAST_MANY (a generic plan: its first execution) and learns its
        types, the velocity script is loaded into Redis over its pipe, and the model's
        predictor is made and its trees read once. Without it, the movements of the first busy
        second after a start overran their budget by the dozen and went on unscored. A part
        that fails (Redis down) is logged; its first use pays for it then."""
        if self._past_pool is not self._pool:
            # All at once, so that each plans on a connection of its own.
            connections: list[asyncpg.Connection] = []
            try:
                for _ in range(PAST_CONNECTIONS):
                    connections.append(await self._past_pool.acquire())
                for conn in connections:
                    await conn.fetch(serving.PAST_MANY, [], [], [], [], [], [])
            finally:
                for conn in connections:
                    await self._past_pool.release(conn)
        try:
            await self._velocity.observe_many([])
        except RedisError as error:
            log.warning("velocity script not loaded at start", error=str(error))
        if self.scorer is not None:
            self.scorer.score([math.nan] * len(FEATURE_NAMES))

    async def assess(
        self,
        movement: Movement,
        claim: str | None = None,
        settle: Callable[[], None] | None = None,
        at: datetime | None = None,
    ) -> Verdict:
        """The verdict on `movement`, made and stored as of `at` (default: now). `claim` and
        `settle`: see risk.gate.RiskEngine; the velocity script sets the claim, in the same
        round trip."""
        at = at or datetime.now(UTC)
        known = await self.prepare(movement, at, claim)
        score = await self._scores(known.features) if self.scorer is not None else 0.0
        decided = decide(check_rules(known.signals, self.rules), score, known.signals, self.rules)
        if settle is not None:
            settle()
        recorded = await self.record(movement, at, known, decided)
        return replace(
            decided, assessment_id=recorded.assessment_id, with_transfer=recorded.with_transfer
        )

    async def prepare(self, movement: Movement, at: datetime, claim: str | None = None) -> Known:
        """What is known before `movement` happens at `at`: the rules' signals (the velocity
        counters record it) and the model's features. Raises KeyInFlight if `claim` is held."""
        past, request, recipient = await self.past(movement, at)
        if past.frozen and (
            movement.kind in serving.OUTGOING
            or (movement.kind == "add_funds" and movement.rail == "card")
        ):
            # Frozen: the ledger would refuse outgoing money anyway, and a card charge is how a
            # card tester the engine froze would go on testing cards. Said before scoring, so
            # that a frozen user's attempts are neither counted nor declined again, and the
            # client learns why (a user the transfer path has cached as active gets here too).
            raise WalletFrozen("your wallet is frozen")
        counts = await self._counts(movement, at, past.sender_new(at), claim)
        return Known(
            past,
            request,
            recipient,
            serving.signals(past, request, counts),
            serving.features(past, request, recipient) if self.scorer is not None else [],
        )

    async def record(
        self, movement: Movement, at: datetime, known: Known, decided: Verdict
    ) -> Recorded:
        """Stores the assessment (or, see `with_transfers`, hands it back), with the context
        later movements' features read; remembers where an allowed movement came from; freezes
        on two independent strong signals."""
        new_payee = known.past.times_paid == 0 if known.recipient else None
        row = row_of(
            movement,
            at,
            known.recipient,
            decided,
            new_payee,
            known.past.sender_new(at),
            self.scorer.version if self.scorer is not None else None,
            await self._top_features(known, decided),
        )
        recorded = Recorded()
        places = None
        if decided.action is Action.ALLOW:
            remembering = known.past.places_to_remember(known.request)
            if remembering == "new":
                # A place seen for the first time is known before the next movement is scored
                # (a first device is where a user starts from; a second one is news).
                await db.execute(self._pool, serving.REMEMBER, *places_of(movement, at))
            elif remembering == "later":
                places = places_of(movement, at)
        # Allowed and declined P2P transfers, the volume: handed to the ledger (allowed ones,
        # with `with_transfers`) or batched. Written at once: held ones (their hold refers to
        # them) and funding movements, which the next movement's rules read within milliseconds
        # (money in, then straight out).
        if decided.action in (Action.STEP_UP, Action.REVIEW) or movement.kind != "p2p":
            recorded = Recorded(assessment_id=await self._write(row, decided))
            if places is not None:
                self.log.add(None, places)  # a known place's last-seen time: no hurry
        else:
            told = declined_at_once(movement, at) if decided.action is Action.DECLINE else None
            recorded = self._later(movement.kind, row, decided, places, told)
        if decided.freeze:
            await self._freeze(movement.user_id, "risk engine: " + "; ".join(decided.reasons)[:450])
        elif decided.action is Action.DECLINE and self.rules.declines_to_lock > 0:
            await lockout.count_decline(self._freeze, self._declines, self.rules, movement, at)
        return recorded

    async def unscored(self, movement: Movement, reason: str) -> Verdict:
        """`allow` with `reason` for a movement let through unscored, its assessment recorded as
        an allowed one's is: a P2P transfer's handed to the ledger (with `with_transfers`), an
        add-funds' or cash-out's written at once, with its id, so that the caller can mark it
        declined later if the movement is then refused (as `record` does). Its money moves, so
        it is part of the past the next movements' features read; what its own past would
        have said is unknown (new payee and new sender are left empty), and no place is
        remembered. A write that fails (the database is why the budget ran out) is buffered
        instead: the movement goes on, as it would have with its assessment written."""
        decided = Verdict(Action.ALLOW, 0.0, (reason,))
        recipient = uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None
        row = row_of(movement, datetime.now(UTC), recipient, decided, None, None)
        if movement.kind != "p2p":
            try:
                written = await self._write(row, decided)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("unscored assessment buffered", kind=movement.kind, error=str(error))
            else:
                return replace(decided, assessment_id=written)
        recorded = self._later(movement.kind, row, decided)
        return replace(decided, with_transfer=recorded.with_transfer)

    async def _write(self, row: tuple[Any, ...], decided: Verdict) -> int:
        """Writes an assessment at once (RECORD); its id."""
        written = await db.fetchrow(
            self._pool, RECORD, *row, list(decided.reasons), list(decided.aml)
        )
        assert written is not None
        return int(written["id"])

    def _later(
        self,
        kind: str,
        row: tuple[Any, ...],
        decided: Verdict,
        places: tuple[Any, ...] | None = None,
        told: outbox.Event | None = None,
    ) -> Recorded:
        """An assessment not written at once: an allowed P2P transfer's handed back for the
        ledger to write with the transfer (with `with_transfers`; its places still buffered),
        any other buffered with its places and the event `told` of it (AssessmentLog)."""
        if self._with_transfers and kind == "p2p" and decided.action is Action.ALLOW:
            if places is not None:
                self.log.add(None, places)
            return Recorded(with_transfer=(WITH_TRANSFER, as_text(row, decided)))
        self.log.add((*row, joined(decided.reasons), joined(decided.aml)), places, told)
        return Recorded()

    async def past(
        self, movement: Movement, at: datetime
    ) -> tuple[serving.Past, serving.Request, uuid.UUID | None]:
        """The user's and the recipient's past as of `at`, the movement as the features read
        it, and the recipient's id."""
        request = request_of(movement, at)
        recipient = uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None
        row = await self._pasts(
            (
                uuid.UUID(movement.user_id),
                recipient,
                movement.device_id,
                request.ts,
                ip_prefix(movement.ip) if movement.ip else None,
                address_of(movement.ip),
            )
        )
        return serving.Past.of(row), request, recipient

    async def _top_features(self, known: Known, decided: Verdict) -> list[Pushed] | None:
        """What pushed the score of a movement held or declined, for operators; None for an
        allowed one. TreeSHAP costs about 2.4 ms a row on the shipped model (80 times the
        score), too much for every movement, and it runs after the verdict, outside the
        budget, in a thread (LightGBM's C call lets the event loop go on meanwhile)."""
        if self.scorer is None or not known.features or decided.action is Action.ALLOW:
            return None
        return await asyncio.to_thread(self.scorer.top_features, known.features)

    async def _score_many(self, rows: list[list[float]]) -> list[float]:
        assert self.scorer is not None
        return [self.scorer.score(row) for row in rows]

    async def _read_pasts(
        self, movements: list[tuple[Any, ...]]
    ) -> list[asyncpg.Record | BaseException]:
        """The past of each of a batch of (user, recipient, device, time, address block,
        address), by PAST_MANY; on a pool without generic plans, a batch of one by PAST, which
        PostgreSQL plans once per connection by itself, while it plans PAST_MANY, whose arrays
        it can't size in advance, on every call: about 1 ms (docs/decisions.md)."""
        # Plain reads: given back to the pool without the reset round trip (platform.db).
        if len(movements) == 1 and self._past_pool is self._pool:
            row = await db.fetchrow(self._pool, serving.PAST, *movements[0])
            return [row or LookupError(f"user {movements[0][0]} does not exist")]
        columns = [list(column) for column in zip(*movements, strict=True)]
        found = await db.fetch(self._past_pool, serving.PAST_MANY, *columns)
        rows = {row["n"]: row for row in found}
        return [
            rows.get(n) or LookupError(f"user {movement[0]} does not exist")
            for n, movement in enumerate(movements, start=1)
        ]

    async def _counts(
        self, movement: Movement, now: datetime, sender_new: bool, claim: str | None
    ) -> tuple[int, int, int]:
        """The velocity windows (setting `claim` first, or raising KeyInFlight); without Redis,
        none and no claim (the hard rules then can't fire, which is logged: Redis holds no
        money, and payments go on)."""
        try:
            counters = await self._observations(
                Observation(
                    event_id=movement.ref or f"{movement.user_id}:{time.time_ns()}",
                    sender_id=movement.user_id,
                    amount_minor=movement.amount_minor,
                    now_ms=int(now.timestamp() * 1000),
                    recipient_id=movement.counterparty_id,
                    sender_is_new=sender_new,
                    claim=claim,
                    claim_ttl_ms=CLAIM_TTL_MS,
                )
            )
        except RedisError as error:
            log.warning("velocity counters unavailable", error=str(error))
            return 0, 0, 0
        if isinstance(counters, KeyInFlight):
            raise counters
        return (
            counters.sender_count_1m,
            counters.sender_count_1h,
            counters.recipient_new_senders_24h,
        )


def load_scorer(risk_model: str) -> Scorer | None:
    """The model config.risk_model names, or None when it is "off"."""
    if risk_model == "off":
        return None
    directory = None if risk_model == "shipped" else Path(risk_model)
    scorer = Scorer.load(directory)
    log.info("risk model loaded", version=scorer.version, bands=scorer.bands)
    return scorer


def request_of(movement: Movement, at: datetime) -> serving.Request:
    return serving.Request(
        ts=at,
        kind=movement.kind,
        amount_minor=movement.amount_minor,
        rail=movement.rail,
        device_id=movement.device_id or "",
        country=movement.country or "",
        ip=movement.ip or "",
        counterparty_id=serving.THEM if movement.counterparty_id else None,
    )
