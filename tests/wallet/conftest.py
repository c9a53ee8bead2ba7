"""The wallet context's tests drive a running app's parts through wallet's own functions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from billfold.config import Settings
from billfold.risk.rules import RiskRules
from tests.world import World, running_app


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    """The app's parts, running, with the shipped rule thresholds; the model scores but does
    not decide (these users are seconds old, which it finds suspicious), as in
    tests/api/test_risk.py."""
    async with running_app(settings, risk_rules=RiskRules(model_decides=False)) as app:
        yield World(app)
