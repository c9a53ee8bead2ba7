"""The rules and the engine's verdicts computed from feature columns, for the evaluation.

`RULES` are the online rules (risk.rules) as the features see them; `served_verdicts` turns
the model's bands and the rules' points into verdicts as `risk.rules.decide` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from billfold.risk.features import FEATURE_INDEX
from billfold.risk.training.metrics import threshold_at_fpr

ALLOW, STEP_UP, REVIEW, DECLINE = 0, 1, 2, 3


@dataclass(frozen=True)
class RuleThresholds:
    """The rules' thresholds, as the online engine's defaults (risk.rules.RiskRules)."""

    transfers_per_minute: int = 5
    transfers_per_hour: int = 10
    amount_to_median: float = 10.0
    min_history_for_median: int = 3
    fan_in_new_senders: int = 6
    money_in_out_hours: float = 24.0
    money_in_out_share: float = 0.8
    structuring_repeats: int = 1
    tiny_card_adds: int = 2
    device_users: int = 4
    opener_minor: int = 100
    opener_hours: float = 48.0
    address_accounts: int = 4


@dataclass(frozen=True)
class Rule:
    name: str
    points: int  # Severity: STRONG (3) blocks the movement; weak ones (1) ask for a PIN.
    reason: str


STRONG, WEAK = 3, 1
# As the online rules (risk.rules) grade them: a strong hit is held for review, a weak one asks
# for a PIN, and the model sees both among its features.
RULES: tuple[Rule, ...] = (
    Rule("velocity_minute", STRONG, "more than 5 outgoing movements in a minute"),
    Rule("velocity_hour", STRONG, "more than 10 outgoing movements in an hour"),
    Rule("amount_vs_typical", WEAK, "outgoing amount over 10x the user's 30-day median"),
    Rule("new_device_new_country", STRONG, "a device and a country never seen for this user"),
    Rule("impossible_travel", WEAK, "the country changed within 4 hours of the last movement"),
    Rule("mule_fan_in", STRONG, "a first-time recipient under 7 days old paid by 6+ new accounts"),
    Rule("money_in_then_out", WEAK, "a cash-out of 80% or more of the last 24 hours' add-funds"),
    Rule("structuring", STRONG, "an amount just under $10,000 or $3,000, again within 7 days"),
    Rule("card_testing", STRONG, "a third card top-up under $10 within an hour"),
    Rule("shared_device", STRONG, "a device that 4 or more accounts act from"),
    Rule("scam_opener", STRONG, "a first payment to someone who sent the user cents in 2 days"),
    Rule("address_ring", STRONG, "a new account trading with 3+ new accounts on its address"),
)
# Any strong hit blocks, as do three weak ones together (rare: the online engine asks for a PIN).
BLOCK_POINTS = STRONG
RULE_POINTS = np.array([rule.points for rule in RULES], dtype=np.float64)


def rule_hits(x: np.ndarray, t: RuleThresholds = RuleThresholds()) -> np.ndarray:
    """Which rules each row trips: bool (rows, len(RULES)), computed from the feature columns."""

    def col(name: str) -> np.ndarray:
        return x[:, FEATURE_INDEX[name]]

    new_payee = (col("is_p2p") == 1) & (col("is_new_recipient") == 1)
    outgoing = (col("is_p2p") == 1) | (col("is_cash_out") == 1)
    near_threshold = (col("amount_near_10k") == 1) | (col("amount_near_3k") == 1)
    money_in = (col("hours_since_last_add") <= t.money_in_out_hours) & (col("add_sum_24h") > 0)
    sender_new = (col("account_age_days") < 7).astype(np.float64)
    hits = (
        outgoing & (col("out_count_1m") + 1 > t.transfers_per_minute),
        outgoing & (col("out_count_1h") + 1 > t.transfers_per_hour),
        outgoing
        & (col("events_30d") >= t.min_history_for_median)
        & (col("amount_to_median_30d") > t.amount_to_median),
        (col("device_seen_before") == 0) & (col("country_seen_before") == 0),
        col("impossible_travel") == 1,
        new_payee
        & (col("recipient_is_new_account") == 1)
        & (col("recipient_new_senders_24h") + sender_new >= t.fan_in_new_senders),
        (col("is_cash_out") == 1)
        & money_in
        & (col("amount_usd") >= t.money_in_out_share * col("add_sum_24h")),
        near_threshold & (col("near_threshold_7d") >= t.structuring_repeats),
        (col("rail_card") == 1)
        & (col("is_add_funds") == 1)
        & (col("amount_tiny") == 1)
        & (col("tiny_add_count_1h") >= t.tiny_card_adds),
        (col("device_other_users") + 1 >= t.device_users) & (col("account_age_days") < 30),
        new_payee
        & (col("recipient_paid_user_before") == 1)
        & (col("recipient_last_to_user_usd") * 100 < t.opener_minor)
        & (col("hours_since_recipient_paid_user") <= t.opener_hours),
        (col("account_age_days") < 30)
        & (col("address_new_accounts") + 1 >= t.address_accounts)
        & (col("address_counterparties") >= 1),
    )
    return np.column_stack(hits)


def rule_points(x: np.ndarray) -> np.ndarray:
    """Rules alone as a score: the severity points of the rules each row trips."""
    return np.asarray(rule_hits(x) @ RULE_POINTS)


def combine(model_scores: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Both: the rules' block verdict overrides; below it, the model's score decides.

    A hard rule hit is a decision with a reason, as it is online. The blocking combinations
    touch a few hundredths of a percent of legitimate traffic, so they cost the model little of
    a 1% false-positive budget while keeping the rules' catches on patterns the model never saw.
    """
    return np.where(points >= BLOCK_POINTS, 1.0, model_scores)


def served_verdicts(
    model_scores: np.ndarray, points: np.ndarray, bands: dict[str, float]
) -> np.ndarray:
    """The engine's verdict for each row, as risk.rules.decide makes it: the stricter of the
    model's band and the rules' (a block reviews at least, a weaker hit steps up)."""
    by_model = np.select(
        [
            model_scores >= bands["decline"],
            model_scores >= bands["review"],
            model_scores >= bands["step_up"],
        ],
        [DECLINE, REVIEW, STEP_UP],
        ALLOW,
    )
    by_rules = np.where(points >= BLOCK_POINTS, REVIEW, np.where(points > 0, STEP_UP, ALLOW))
    return np.asarray(np.maximum(by_model, by_rules))


def bands_of(valid_legit_scores: np.ndarray) -> dict[str, float]:
    """A model's verdict bands from its validation window, as training suggests them."""
    return {
        "step_up": threshold_at_fpr(valid_legit_scores, 0.01),
        "review": threshold_at_fpr(valid_legit_scores, 0.003),
        "decline": threshold_at_fpr(valid_legit_scores, 0.001),
    }
