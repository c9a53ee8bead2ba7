"""The one gate to risk: what the money paths (wallet's P2P transfers, funding's add-funds and
cash-outs) hand the risk engine, what it answers, and the time budget its answer must come within.

Every movement is assessed after its inputs are checked and before money moves. A caller builds
a `Movement`, asks `Gate.assess` and acts on the `Verdict`: allow, step up, review (decline
raises DeclinedByRisk). The engine behind the gate is risk.engine.RulesEngine, or `AllowAll`
with scoring off. This module imports no other context: the ledger's side row is named here by
its shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.platform.coalesce import Coalescer
from billfold.platform.errors import BillfoldError
from billfold.platform.metrics import RISK_ASSESSMENT_DURATION, RISK_TIMEOUTS

log = logging.getLogger(__name__)
# A request claims its idempotency key in Redis for this long (a request that fails removes its
# claim at once). The claim only turns a wait into a clear 409: the ledger alone decides
# exactly-once.
CLAIM_TTL_MS = 30_000
# The device of a request whose X-Device-Id is no valid device token of its user's (unsigned,
# forged, or issued to someone else): a device the user has never used, whatever it claims.
# Never remembered as a known device (risk.engine; and a CHECK in migrations/0017).
UNVERIFIED_DEVICE = "(unverified)"
# A row the ledger writes in its statement with a transfer (ledger.model.SideRow): the name of
# one of its side statements and that row's parameters.
SideRow = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class Origin:
    """What a request tells the risk engine about where it comes from."""

    # The device id inside a valid device token of the caller's (X-Device-Id); UNVERIFIED_DEVICE
    # for any other value; None without the header.
    device_id: str | None
    country: str | None  # X-Client-Country, set by the edge: ISO 3166 alpha-2, else None
    ip: str | None  # the client's address


@dataclass(frozen=True)
class Movement:
    kind: str  # "p2p", later "add_funds", "cash_out", "merchant_payment"
    user_id: str
    counterparty_id: str | None
    amount_minor: int
    currency: str
    ref: str = ""  # the request's idempotency key: a retry is the same movement
    # The device id inside the app's X-Device-Id token; UNVERIFIED_DEVICE for a header that is
    # no valid token of the user's; None without the header.
    device_id: str | None = None
    country: str | None = None  # X-Client-Country, set by the edge
    ip: str | None = None  # the client's address
    rail: str | None = None  # "ach" or "card" for add-funds and cash-out


@dataclass(frozen=True)
class Verdict:
    action: str  # "allow", "step_up", "review", "decline"
    score: float = 0.0
    reasons: tuple[str, ...] = ()
    assessment_id: int | None = None  # the stored assessment, for a movement held on it
    # The assessment, for the ledger to write with the transfer (see ledger.model.SideRow):
    # the caller moving the money hands it on.
    with_transfer: SideRow | None = None


class KeyInFlight(Exception):
    """The claimed key is held by another request, running or finished within CLAIM_TTL_MS:
    the movement was not assessed."""


class DeclinedByRisk(BillfoldError):
    code = "declined_by_risk"
    status = 403
    title = "Declined by risk checks"


class RiskUnavailable(BillfoldError):
    """Scoring overran its budget on a movement too large to let through unscored: nothing
    moved, and the client may try again."""

    code = "risk_unavailable"
    status = 503
    title = "Risk checks unavailable"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


class RiskEngine(Protocol):
    async def assess(
        self,
        movement: Movement,
        claim: str | None = None,
        settle: Callable[[], None] | None = None,
    ) -> Verdict:
        """The verdict on `movement`. With `claim`, first set that Redis key (for
        CLAIM_TTL_MS) unless it is set already, in which case raise KeyInFlight. `settle`, if
        given, is called once the verdict is made and before anything of it is stored: from
        then on the caller's time budget no longer applies (see assess_within_budget)."""
        ...

    async def unscored(self, movement: Movement, reason: str) -> Verdict:
        """`allow` with `reason`, for a movement let through without the engine's verdict (its
        assessment overran the budget), with the engine's record of it: the movement is
        stored with every other, its reason for operators to see (and, if the record was
        written at once, its `assessment_id`)."""
        ...


# KEYS: keys to claim; ARGV[1]: the claims' TTL in ms. 1 for each key this call set, else 0.
_CLAIM_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
    out[i] = redis.call('SET', key, '1', 'NX', 'PX', ARGV[1]) and 1 or 0
end
return out
"""


class AllowAll:
    """No scoring: every movement is allowed. The claims of concurrent requests go to Redis
    together, in one script call (platform.coalesce)."""

    def __init__(self, redis: Redis | None = None) -> None:
        self._redis = redis
        if redis is not None:
            self._claim_many = redis.register_script(_CLAIM_MANY)
            self._claims = Coalescer(self._set_claims)

    async def assess(
        self,
        movement: Movement,
        claim: str | None = None,
        settle: Callable[[], None] | None = None,
    ) -> Verdict:
        if claim is not None and self._redis is not None:
            try:
                held_elsewhere = not await self._claims(claim)
            except RedisError:
                held_elsewhere = False  # Redis unreachable: the ledger alone decides
            if held_elsewhere:
                raise KeyInFlight(claim)
        return Verdict("allow")

    async def unscored(self, movement: Movement, reason: str) -> Verdict:
        return Verdict("allow", reasons=(reason,))  # nothing is scored, nothing recorded

    async def warm_up(self) -> None:
        """Loads the claim script into Redis before the first request needs it."""
        if self._redis is not None:
            try:
                await self._claim_many(keys=[], args=[CLAIM_TTL_MS])
            except RedisError as error:
                log.warning("claim script not loaded at start: %s", error)

    async def _set_claims(self, keys: list[str]) -> list[bool]:
        return [bool(set_) for set_ in await self._claim_many(keys=keys, args=[CLAIM_TTL_MS])]


async def release_key(redis: Redis, key: str) -> None:
    with contextlib.suppress(RedisError):
        await redis.delete(key)


async def assess_within_budget(
    engine: RiskEngine,
    movement: Movement,
    budget_ms: float,
    claim: str | None = None,
    slots: asyncio.Semaphore | None = None,
    fail_closed_minor: int = 0,
) -> Verdict:
    """The engine's verdict, or `allow` with reason `risk_timeout` if it overruns its budget
    (recorded by the engine as the movement's assessment: RiskEngine.unscored).

    Failing open keeps payments flowing when scoring is slow; the timeout is recorded as a
    reason, so that operators see it. A movement of at least `fail_closed_minor` (when above 0)
    fails closed instead: RiskUnavailable, nothing moves, the client tries again. Otherwise
    loading the service until scoring overruns would be a way past it for large sums.
    `claim`: see RiskEngine.assess. `slots`: at most that many movements are scored at once;
    the others wait their turn before their budget starts, so that the budget measures the
    scoring and not the queue of a saturated process.

    The budget ends where the verdict is made (the engine calls `settle`). Storing it, and what
    it entails (a held transfer's assessment, a freeze), is not cut off: a verdict half stored
    and then overridden by `risk_timeout` would let through a movement the engine had held or
    declined, beside the record saying it did."""
    async with slots or contextlib.nullcontext():
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget_ms / 1000) as budget:

                def settle() -> None:
                    if not budget.expired():
                        budget.reschedule(None)

                verdict = await engine.assess(movement, claim, settle)
        except TimeoutError:
            RISK_TIMEOUTS.labels(movement.kind).inc()
            log.warning("risk assessment overran its %s ms budget", budget_ms)
            if 0 < fail_closed_minor <= movement.amount_minor:
                raise RiskUnavailable(
                    "risk checks did not answer in time; nothing moved, try again"
                ) from None
            return await engine.unscored(movement, "risk_timeout")
        finally:
            RISK_ASSESSMENT_DURATION.labels(movement.kind).observe(time.perf_counter() - started)
    if verdict.action == "decline":
        # The reasons stay with the assessment, for operators: telling a fraudster which rule
        # caught them would teach them to step around it.
        raise DeclinedByRisk("the transfer was declined by risk checks")
    return verdict


@dataclass(frozen=True)
class Gate:
    """The risk engine as the money paths call it: with the time budget its verdict must come
    within (config.risk_budget_ms), the size from which an overrun fails closed
    (config.risk_fail_closed_minor) and the slots that bound how many movements are scored at
    once (config.risk_concurrency). Built from the process's settings as they stand when a
    request comes in."""

    engine: RiskEngine
    redis: Redis
    budget_ms: float
    fail_closed_minor: int = 0
    slots: asyncio.Semaphore | None = None

    def admission(self) -> AbstractAsyncContextManager[Any]:
        """A slot among the movements scored at once (nothing to wait for when unbounded), for a
        caller that holds it beyond the scoring (a P2P transfer: from its checks to the
        ledger's answer). Its budget starts once it has the slot."""
        return self.slots or contextlib.nullcontext()

    async def assess(
        self, movement: Movement, claim: str | None = None, *, admitted: bool = False
    ) -> Verdict:
        """The verdict on `movement` within the budget (assess_within_budget); `claim`: see
        RiskEngine.assess. `admitted`: the caller holds a slot already (admission); otherwise
        the movement waits for one before its budget starts."""
        return await assess_within_budget(
            self.engine,
            movement,
            self.budget_ms,
            claim,
            slots=None if admitted else self.slots,
            fail_closed_minor=self.fail_closed_minor,
        )

    async def release(self, claim: str) -> None:
        """Give up a claim whose request stored nothing: a retry may then run at once."""
        await release_key(self.redis, claim)


def country_code(value: str | None) -> str | None:
    """X-Client-Country as an ISO 3166 alpha-2 code; anything else is no signal."""
    code = (value or "").strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None
