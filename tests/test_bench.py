"""The benchmark commands' own measuring: small runs that must complete and reconcile."""

from __future__ import annotations

import pytest

from billfold.bench.api import _count_timeouts
from billfold.bench.transfer_cost import run_transfer_cost
from billfold.config import Settings


@pytest.mark.parametrize("scoring", [True, False])
async def test_transfer_cost_measures_real_transfers(settings: Settings, scoring: bool) -> None:
    assert settings.database_url and settings.redis_url
    result = await run_transfer_cost(
        settings,
        settings.database_url,
        settings.redis_url,
        users=30,
        transfers=40,
        concurrency=4,
        scoring=scoring,
    )
    assert result["failed"] == 0 and result["reconciled"]
    assert result["cpu_us_per_transfer"]["app"] > 0


def test_bench_api_counts_the_transfers_let_through_unscored() -> None:
    """A transfer whose scoring overran its budget went on unscored: `bench api` reports how
    many did in a phase, and the rate of the others, from the server's counter."""
    phase = {"transfers_per_s": 2_000.0, "statuses": {"201": 120_000, "409": 3}}
    _count_timeouts(phase, 500.0, 30_500.0)
    assert phase["risk_timeouts"] == 30_000
    assert phase["within_budget_per_s"] == 1_500.0
    nothing = {"transfers_per_s": 0.0, "statuses": {}}
    _count_timeouts(nothing, 0.0, 0.0)
    assert nothing["within_budget_per_s"] == 0.0
