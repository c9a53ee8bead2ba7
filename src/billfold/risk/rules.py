"""The hard rules and the verdict policy, as pure functions of what is known before a movement.

The engine gathers `Signals` (velocity counters, known devices and countries, the user's
typical amount, recent money in) and asks `check_rules` which rules a movement breaks; every hit
carries its reason. `decide` turns the hits and the model's score into a verdict. Thresholds
come from `RiskRules` (configurable; the benchmarks use their own so that load is not taken for
fraud). No I/O here, so each rule is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

# Reporting thresholds structuring keeps just under: the CTR's $10,000 and the $3,000 of the
# funds-transfer recordkeeping rule.
REPORTING_THRESHOLDS_MINOR = (10_000_00, 3_000_00)
# A typical amount needs this many earlier movements of the kind: a new user's $5 and $60 say
# nothing yet of what is unusual for them.
TYPICAL_MIN_HISTORY = 3
# Card testers try stolen cards with charges of a few dollars; nobody tops up a wallet by less.
TINY_CARD_ADD_MINOR = 10_00


class RiskRules(BaseModel):
    """Rule thresholds. Defaults follow issue 5."""

    model_config = {"frozen": True}

    max_per_minute: int = Field(default=5, ge=1)
    max_per_hour: int = Field(default=10, ge=1)
    amount_vs_typical: float = Field(default=10.0, gt=1)
    # Below this, an amount is never "unusually large" (a $3 coffee after $0.25 tips).
    amount_floor_minor: int = Field(default=100_00, ge=0)
    impossible_travel_hours: float = Field(default=4.0, gt=0)
    # New accounts paying a new account: five friends splitting a bill is ordinary, more is a
    # mule's collection.
    fan_in_new_senders: int = Field(default=6, ge=2)
    # Money in then out: this share of the last 24 hours' add-funds cashed out at once.
    in_then_out_share: float = Field(default=0.8, gt=0, le=1)
    # Card testing: this many card top-ups under TINY_CARD_ADD_MINOR within an hour before this
    # one, itself such a top-up.
    tiny_card_adds: int = Field(default=2, ge=1)
    # A farm's phone: this many accounts (this one included) acting from one device, for an
    # account younger than `shared_device_max_age_days`. A household tablet has two or three.
    shared_device_accounts: int = Field(default=4, ge=2)
    shared_device_max_age_days: float = Field(default=30.0, gt=0)
    # A synthetic-identity ring: this many accounts under 30 days old (this one included) acting
    # from one address, and money between this one and another account seen there. Strangers
    # behind a carrier's NAT never pay each other; a family of three joining together is below.
    address_ring_accounts: int = Field(default=4, ge=2)
    # A scam's opener: a first payment to someone who sent the user under this many cents in
    # the last `opener_hours` (a few cents with a message, to start a conversation).
    opener_minor: int = Field(default=1_00, ge=1)
    opener_hours: float = Field(default=48.0, gt=0)
    # Structuring: this many amounts within `structuring_band` under a reporting threshold.
    structuring_count: int = Field(default=3, ge=2)
    structuring_band: float = Field(default=0.1, gt=0, lt=1)
    # Repeated declines freeze the user (risk.lockout): this many declines within this many
    # seconds. 0: never.
    declines_to_lock: int = Field(default=5, ge=0)
    declines_window_s: float = Field(default=600.0, gt=0, le=86_400)
    ctr_minor: int = Field(default=10_000_00, ge=0)
    sar_minor: int = Field(default=2_000_00, ge=0)
    # The model's score bands. Unset: the bands the shipped model suggests (its metadata's
    # suggested_verdicts: the scores above which 1%, 0.3% and 0.1% of legitimate validation
    # movements fall). model_decides=False records the score without letting it decide.
    model_decides: bool = True
    step_up_score: float | None = Field(default=None, ge=0, le=1)
    review_score: float | None = Field(default=None, ge=0, le=1)
    decline_score: float | None = Field(default=None, ge=0, le=1)

    def with_model_bands(self, suggested: dict[str, float]) -> RiskRules:
        """These rules with each unset score band taken from a model's suggestions."""
        return self.model_copy(
            update={
                f"{verdict}_score": suggested[verdict]
                for verdict in ("step_up", "review", "decline")
                if getattr(self, f"{verdict}_score") is None
            }
        )


class Strength(StrEnum):
    WEAK = "weak"  # worth a second factor
    STRONG = "strong"  # worth a human's look; two independent ones decline


class Action(StrEnum):
    ALLOW = "allow"
    STEP_UP = "step_up"
    REVIEW = "review"
    DECLINE = "decline"


@dataclass(frozen=True)
class Hit:
    rule: str
    strength: Strength
    reason: str
    signal: str  # what it rests on; two hits on one signal are not independent


@dataclass(frozen=True)
class Signals:
    kind: str  # p2p | add_funds | cash_out | merchant_payment
    amount_minor: int
    at: datetime
    count_1m: int  # the sender's movements, this one included
    count_1h: int
    typical_amount_minor: int | None = None  # 30 days' median; None: under TYPICAL_MIN_HISTORY
    device_known: bool | None = None  # None: the app sent no device id
    country: str | None = None
    country_known: bool | None = None
    last_country: str | None = None
    last_country_at: datetime | None = None
    recipient_flagged: bool = False
    recipient_is_new_payee: bool = False
    recipient_is_new_account: bool = False
    recipient_new_senders_24h: int = 0
    added_funds_24h_minor: int = 0
    rail: str | None = None  # add-funds and cash-out: "ach" | "card"
    account_age_days: float | None = None
    device_other_accounts: int = 0  # other accounts ever seen on this movement's device
    # A new account's address: the other new accounts acting from it, and the accounts seen
    # there the user has paid or been paid by (history.HistoryState.address_links).
    address_new_accounts: int = 0
    address_counterparties: int = 0
    paid_by_recipient: tuple[datetime, int] | None = None  # their last transfer to the user
    tiny_card_adds_1h: int = 0  # card add-funds under TINY_CARD_ADD_MINOR in the hour before
    near_threshold_7d: list[int] = field(default_factory=list)  # earlier amounts, cents
    cash_equivalent_today_minor: int = 0  # add-funds and cash-out this business day, before


@dataclass(frozen=True)
class Verdict:
    action: Action
    score: float
    reasons: tuple[str, ...]
    freeze: bool = False
    aml: tuple[str, ...] = ()  # report candidates: "ctr", "sar"


def check_rules(s: Signals, rules: RiskRules) -> list[Hit]:
    hits: list[Hit] = []
    for check in _CHECKS:
        hit = check(s, rules)
        if hit is not None:
            hits.append(hit)
    return hits


def decide(hits: list[Hit], model_score: float, s: Signals, rules: RiskRules) -> Verdict:
    """Two strong hits on independent signals decline and freeze. Otherwise the stricter of the
    rules and the model decides: one strong hit reviews, a weak one asks for a second factor,
    and the model's score does the same by the band it falls in."""
    strong = {h.signal for h in hits if h.strength is Strength.STRONG}
    reasons = tuple(h.reason for h in hits)
    aml = _aml(hits, s, rules)
    if len(strong) >= 2:
        return Verdict(Action.DECLINE, model_score, reasons, freeze=True, aml=aml)
    by_rules = Action.REVIEW if strong else Action.STEP_UP if hits else Action.ALLOW
    by_model = _model_band(model_score, rules)
    if _SEVERITY[by_model] > _SEVERITY[by_rules]:
        threshold = getattr(rules, f"{by_model.value}_score")
        reasons += (f"model score {model_score:.4f} at or above {threshold:.4f}",)
        return Verdict(by_model, model_score, reasons, aml=aml)
    return Verdict(by_rules, model_score, reasons, aml=aml)


_SEVERITY = {Action.ALLOW: 0, Action.STEP_UP: 1, Action.REVIEW: 2, Action.DECLINE: 3}


def _model_band(score: float, rules: RiskRules) -> Action:
    if not rules.model_decides:
        return Action.ALLOW
    for action in (Action.DECLINE, Action.REVIEW, Action.STEP_UP):
        threshold = getattr(rules, f"{action.value}_score")
        if threshold is not None and score >= threshold:
            return action
    return Action.ALLOW


def _aml(hits: list[Hit], s: Signals, rules: RiskRules) -> tuple[str, ...]:
    found = []
    cash = s.kind in ("add_funds", "cash_out")
    if cash and s.cash_equivalent_today_minor + s.amount_minor > rules.ctr_minor:
        found.append("ctr")
    if hits and s.amount_minor >= rules.sar_minor:
        found.append("sar")
    return tuple(found)


def _velocity(s: Signals, r: RiskRules) -> Hit | None:
    if s.count_1m > r.max_per_minute:
        why = f"{s.count_1m} movements in a minute (more than {r.max_per_minute})"
        return Hit("velocity", Strength.STRONG, why, "velocity")
    if s.count_1h > r.max_per_hour:
        why = f"{s.count_1h} movements in an hour (more than {r.max_per_hour})"
        return Hit("velocity", Strength.STRONG, why, "velocity")
    return None


def _amount(s: Signals, r: RiskRules) -> Hit | None:
    typical = s.typical_amount_minor
    if typical is None or s.amount_minor < r.amount_floor_minor:
        return None
    if s.amount_minor > typical * r.amount_vs_typical:
        why = f"amount {s.amount_minor} is over {r.amount_vs_typical:g}x the typical {typical}"
        return Hit("amount", Strength.WEAK, why, "amount")
    return None


def _device(s: Signals, r: RiskRules) -> Hit | None:
    if s.device_known is False:
        # A new phone is ordinary; a new phone in a new country is how a takeover looks.
        strength = Strength.STRONG if s.country_known is False else Strength.WEAK
        return Hit("new_device", strength, "a device never seen for this user", "device")
    return None


def _country(s: Signals, r: RiskRules) -> Hit | None:
    if s.country_known is False:
        strength = Strength.STRONG if s.device_known is False else Strength.WEAK
        why = f"country {s.country} never seen for this user"
        return Hit("new_country", strength, why, "location")
    return None


def _travel(s: Signals, r: RiskRules) -> Hit | None:
    last, when = s.last_country, s.last_country_at
    if s.country is None or last is None or when is None or last == s.country:
        return None
    if s.at - when < timedelta(hours=r.impossible_travel_hours):
        # Weak: a flight, or a VPN that hops countries, does the same (docs/risk.md).
        why = f"in {last} and then {s.country} within {r.impossible_travel_hours:g} hours"
        return Hit("impossible_travel", Strength.WEAK, why, "location")
    return None


def _recipient(s: Signals, r: RiskRules) -> Hit | None:
    if s.recipient_flagged:
        return Hit("recipient_flagged", Strength.STRONG, "the recipient is flagged", "recipient")
    if s.recipient_is_new_account and s.recipient_new_senders_24h >= r.fan_in_new_senders:
        why = f"a new account receiving from {s.recipient_new_senders_24h} new senders in 24 hours"
        return Hit("mule_fan_in", Strength.STRONG, why, "recipient")
    return None


def _in_then_out(s: Signals, r: RiskRules) -> Hit | None:
    # A cash-out only: people top up to pay a friend, which the model judges among the rest of
    # what it knows; topping up to cash straight out again is what stolen money does.
    if s.kind != "cash_out" or s.added_funds_24h_minor <= 0:
        return None
    if s.amount_minor >= s.added_funds_24h_minor * r.in_then_out_share:
        # Weak: people also top up by card and cash the balance out the same day.
        why = f"{s.amount_minor} out right after {s.added_funds_24h_minor} came in"
        return Hit("in_then_out", Strength.WEAK, why, "flow")
    return None


def _structuring(s: Signals, r: RiskRules) -> Hit | None:
    for threshold in REPORTING_THRESHOLDS_MINOR:
        low = threshold * (1 - r.structuring_band)
        near = [a for a in [*s.near_threshold_7d, s.amount_minor] if low <= a < threshold]
        if len(near) >= r.structuring_count and low <= s.amount_minor < threshold:
            why = f"{len(near)} amounts just under {threshold} in 7 days"
            return Hit("structuring", Strength.STRONG, why, "structuring")
    return None


def _card_testing(s: Signals, r: RiskRules) -> Hit | None:
    if s.kind != "add_funds" or s.rail != "card" or s.amount_minor >= TINY_CARD_ADD_MINOR:
        return None
    if s.tiny_card_adds_1h >= r.tiny_card_adds:
        why = f"card top-up of {s.amount_minor} after {s.tiny_card_adds_1h} tiny ones in an hour"
        return Hit("card_testing", Strength.STRONG, why, "card_testing")
    return None


def _shared_device(s: Signals, r: RiskRules) -> Hit | None:
    young = s.account_age_days is not None and s.account_age_days < r.shared_device_max_age_days
    if young and s.device_other_accounts + 1 >= r.shared_device_accounts:
        why = f"a device {s.device_other_accounts + 1} accounts act from"
        return Hit("shared_device", Strength.STRONG, why, "device")
    return None


def _address_ring(s: Signals, r: RiskRules) -> Hit | None:
    # The signals are zero for an account 30 days old or older (history.address_links).
    if s.address_counterparties and s.address_new_accounts + 1 >= r.address_ring_accounts:
        why = (
            f"a new account trading with accounts on an address"
            f" {s.address_new_accounts + 1} new accounts act from"
        )
        return Hit("address_ring", Strength.STRONG, why, "address")
    return None


def _scam_opener(s: Signals, r: RiskRules) -> Hit | None:
    if s.kind != "p2p" or not s.recipient_is_new_payee or s.paid_by_recipient is None:
        return None
    when, amount = s.paid_by_recipient
    if amount < r.opener_minor and s.at - when <= timedelta(hours=r.opener_hours):
        why = f"a first payment to someone who sent {amount} cents shortly before"
        return Hit("scam_opener", Strength.STRONG, why, "recipient")
    return None


_CHECKS = (
    _velocity,
    _amount,
    _device,
    _country,
    _travel,
    _recipient,
    _in_then_out,
    _structuring,
    _card_testing,
    _shared_device,
    _scam_opener,
    _address_ring,
)
