"""The funding context's tests drive a running app's parts through funding's own functions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billfold.config import Settings
from billfold.funding.reconcile import check_funding
from billfold.ledger.reconcile import reconcile
from billfold_bench.rules import LOAD_TEST_RULES
from tests.world import World, running_app


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    """The app's parts, running, with the risk thresholds the API tests' bursts can't reach
    (tests/api/conftest.py's `app`): the rules of money in and out, not of risk, are tested."""
    async with running_app(settings, risk_rules=LOAD_TEST_RULES) as app:
        yield World(app)


@pytest.fixture
async def reconciled(world: World) -> AsyncIterator[None]:
    """After the test: the ledger reconciles, and every movement's status matches it."""
    yield
    report = await reconcile(world.state.pool)
    assert report.ok, report.render()
    assert await check_funding(world.state.pool) == []
