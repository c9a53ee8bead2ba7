"""The risk hook: a verdict within the budget decides; an overrun lets the movement go on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from billfold.risk.gate import (
    CLAIM_TTL_MS,
    AllowAll,
    DeclinedByRisk,
    KeyInFlight,
    Movement,
    RiskUnavailable,
    Verdict,
    assess_within_budget,
    release_key,
)

MOVEMENT = Movement("p2p", "u1", "u2", 100, "USD")
Settle = Callable[[], None]


class LetsThrough:
    """What an engine lets through unscored (RiskEngine.unscored), recording nothing."""

    async def unscored(self, movement: Movement, reason: str) -> Verdict:
        return Verdict("allow", reasons=(reason,))


class Slow(LetsThrough):
    async def assess(
        self, movement: Movement, claim: str | None = None, settle: Settle | None = None
    ) -> Verdict:
        await asyncio.sleep(1)
        return Verdict("decline")


class OneAtATime(LetsThrough):
    """Scores one movement at a time, 30 ms each: a shared resource that concurrent movements
    queue for."""

    def __init__(self) -> None:
        self.busy = asyncio.Lock()

    async def assess(
        self, movement: Movement, claim: str | None = None, settle: Settle | None = None
    ) -> Verdict:
        async with self.busy:
            await asyncio.sleep(0.03)
        return Verdict("allow")


class SlowToStore(LetsThrough):
    """Decides at once (step-up), then takes 50 ms to store the verdict, as a held transfer's
    assessment is written before the hold."""

    def __init__(self) -> None:
        self.stored = False

    async def assess(
        self, movement: Movement, claim: str | None = None, settle: Settle | None = None
    ) -> Verdict:
        await asyncio.sleep(0.001)
        if settle is not None:
            settle()
        await asyncio.sleep(0.05)
        self.stored = True
        return Verdict("step_up", 0.7, ("new_device",), assessment_id=7)


class SlowToDecide(SlowToStore):
    """Overruns before its verdict is made: it is cut off, and settling after that (had it
    caught the cancellation) changes nothing."""

    async def assess(
        self, movement: Movement, claim: str | None = None, settle: Settle | None = None
    ) -> Verdict:
        await asyncio.sleep(0.05)
        return await super().assess(movement, claim, settle)


class Declines(LetsThrough):
    async def assess(
        self, movement: Movement, claim: str | None = None, settle: Settle | None = None
    ) -> Verdict:
        return Verdict("decline", 0.99, ("new_device", "new_country"))


async def test_allow_all_allows() -> None:
    assert (await assess_within_budget(AllowAll(), MOVEMENT, 5)).action == "allow"


async def test_allow_all_claims_a_key_once(redis: Redis) -> None:
    """Without scoring, the claim is one SET NX: the first request holds the key, a second one
    with it is told so, and a released key can be claimed again."""
    claim = f"claim-test-{uuid.uuid4().hex}"
    engine = AllowAll(redis)
    assert (await assess_within_budget(engine, MOVEMENT, 50, claim)).action == "allow"
    assert 0 < await redis.pttl(claim) <= CLAIM_TTL_MS
    with pytest.raises(KeyInFlight):
        await assess_within_budget(engine, MOVEMENT, 50, claim)
    await release_key(redis, claim)
    assert await redis.exists(claim) == 0
    assert (await assess_within_budget(engine, MOVEMENT, 50, claim)).action == "allow"
    assert 0 < await redis.pttl(claim) <= CLAIM_TTL_MS
    # Without Redis there is no claim to hold: the ledger alone decides.
    assert (await assess_within_budget(AllowAll(), MOVEMENT, 50, claim)).action == "allow"


async def test_an_engine_over_budget_is_cut_off_and_recorded() -> None:
    """Let through with the reason risk_timeout, and counted for operators (and `bench api`)."""
    before = _timeouts()
    verdict = await assess_within_budget(Slow(), MOVEMENT, 5)
    assert verdict == Verdict("allow", reasons=("risk_timeout",))
    assert _timeouts() == before + 1
    with pytest.raises(DeclinedByRisk):
        await assess_within_budget(Declines(), MOVEMENT, 5)
    assert _timeouts() == before + 1


async def test_the_budget_ends_where_the_verdict_is_made() -> None:
    """An engine that has decided is not cut off while it stores its verdict: the held
    transfer's assessment and the answer agree. Overrunning before deciding still lets the
    movement through unscored, with nothing of a verdict stored."""
    before = _timeouts()
    engine = SlowToStore()
    verdict = await assess_within_budget(engine, MOVEMENT, 10)
    assert verdict == Verdict("step_up", 0.7, ("new_device",), assessment_id=7)
    assert engine.stored and _timeouts() == before
    late = SlowToDecide()
    assert await assess_within_budget(late, MOVEMENT, 10) == Verdict(
        "allow", reasons=("risk_timeout",)
    )
    assert not late.stored and _timeouts() == before + 1


async def test_a_large_movement_fails_closed_when_scoring_overruns() -> None:
    """From `fail_closed_minor` up, an overrun refuses the movement (the client retries);
    below it, or with the threshold at 0, the movement goes on unscored. Both are counted."""
    before = _timeouts()
    large = Movement("p2p", "u1", "u2", 100_000, "USD")
    with pytest.raises(RiskUnavailable) as refused:
        await assess_within_budget(Slow(), large, 5, fail_closed_minor=100_000)
    assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "1"}
    small = Movement("p2p", "u1", "u2", 99_999, "USD")
    timed_out = Verdict("allow", reasons=("risk_timeout",))
    assert await assess_within_budget(Slow(), small, 5, fail_closed_minor=100_000) == timed_out
    assert await assess_within_budget(Slow(), large, 5, fail_closed_minor=0) == timed_out
    assert _timeouts() == before + 3


def _timeouts() -> float:
    return REGISTRY.get_sample_value("billfold_risk_timeouts_total", {"kind": "p2p"}) or 0.0


async def test_a_decline_refuses_without_telling_its_reasons() -> None:
    """The client learns it was declined, not which rule caught it (operators see the reasons)."""
    with pytest.raises(DeclinedByRisk) as declined:
        await assess_within_budget(Declines(), MOVEMENT, 5)
    assert declined.value.fields == {}


async def test_the_wait_for_a_slot_does_not_count_against_the_budget() -> None:
    """Twenty movements at once, each 30 ms of a resource they queue for, 300 ms of budget:
    unbounded, the last ones spend their budget waiting and go on unscored; let in one at a
    time (slots), every one is scored. (A budget ten times a movement's work: a loaded machine
    may stall the event loop for tens of milliseconds.)"""
    engine = OneAtATime()
    crowded = await asyncio.gather(
        *(assess_within_budget(engine, MOVEMENT, 300) for _ in range(20))
    )
    assert Verdict("allow", reasons=("risk_timeout",)) in crowded
    engine, slots = OneAtATime(), asyncio.Semaphore(1)
    admitted = await asyncio.gather(
        *(assess_within_budget(engine, MOVEMENT, 300, slots=slots) for _ in range(20))
    )
    assert admitted == [Verdict("allow")] * 20
