"""The benchmark commands' own measuring: small runs that must complete and reconcile."""

from __future__ import annotations

import pytest

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
