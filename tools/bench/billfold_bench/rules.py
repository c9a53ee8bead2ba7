"""The risk rules of a load test: thresholds its bursts cannot reach."""

from __future__ import annotations

from billfold.risk.rules import RiskRules

# Thresholds a load test's bursts can't reach, for benchmarks and tests of other things (issue 5
# allows it): thousands of users minutes old, each sending many transfers a minute, is the load,
# not fraud. The model still scores every movement; its score does not decide.
LOAD_TEST_RULES = RiskRules(
    max_per_minute=10**6,
    max_per_hour=10**6,
    amount_vs_typical=10**6,
    fan_in_new_senders=10**6,
    model_decides=False,
)
