"""Features of a money movement, computed before it happens from strictly earlier events.

`HistoryState` (risk.history) consumes events in time order. For each new event call
`features_for(state, txn)` first, then `observe(state, txn)`: the features of an event therefore
never see the event itself, its label or anything after it. Counterparty features read the
counterparty's past the same way.

Every definition is simple enough to be served online, where risk.serving computes it by this
same code from the rows PostgreSQL holds: counts and sums over sliding windows, "seen before" and
"first seen", the 30-day amount median. Windows include their edge (age <= window). A missing
value (no history, not a P2P transfer) is NaN, which LightGBM treats as missing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Iterator, Mapping

from billfold.risk.history import (
    DAY,
    HOUR,
    MINUTE,
    MONTH,
    NAN,
    NEAR_3K,
    NEAR_10K,
    NEW_ACCOUNT_SECONDS,
    WEEK,
    HistoryState,
    Signup,
    Txn,
    UserHistory,
    ip_prefix,
    observe,
)
from billfold.risk.rules import TINY_CARD_ADD_MINOR

IMPOSSIBLE_TRAVEL_SECONDS = 4 * HOUR
UNSETTLED_ACH_SECONDS = 3 * DAY
TINY_AMOUNT_MINOR = TINY_CARD_ADD_MINOR

FEATURES: tuple[tuple[str, str], ...] = (
    ("amount_usd", "This movement's amount in dollars."),
    ("log_amount", "ln(1 + amount in dollars)."),
    ("is_p2p", "1 for a P2P transfer (the sender is the user)."),
    ("is_add_funds", "1 for money in from a bank account or card."),
    ("is_cash_out", "1 for money out to a bank account or card."),
    ("rail_ach", "1 when add-funds or cash-out goes over ACH."),
    ("rail_card", "1 when add-funds or cash-out goes over a card."),
    ("amount_has_cents", "1 when the amount is not a whole number of dollars."),
    ("amount_round_100", "1 when the amount is a multiple of $100."),
    ("amount_near_10k", "1 when the amount is in [$9,000, $10,000)."),
    ("amount_near_3k", "1 when the amount is in [$2,700, $3,000)."),
    ("amount_tiny", "1 when the amount is under $10."),
    ("account_age_days", "Days since the user signed up."),
    ("has_verified_bank", "1 when the user has a verified bank account."),
    ("days_since_last_event", "Days since the user last initiated any movement."),
    ("lifetime_events", "Movements the user initiated before this one."),
    ("median_amount_30d", "Median dollars of the user's movements in 30 days."),
    ("amount_to_median_30d", "Amount / that median."),
    ("amount_zscore_30d", "z-score of ln(amount) against the user's 30-day movements."),
    ("amount_to_max_30d", "Amount / the user's largest movement in 30 days."),
    ("events_30d", "Movements the user initiated in 30 days."),
    ("out_count_1m", "Outgoing movements (P2P sent, cash-out) in 1 minute."),
    ("out_count_1h", "Outgoing movements in 1 hour."),
    ("out_count_24h", "Outgoing movements in 24 hours."),
    ("out_count_7d", "Outgoing movements in 7 days."),
    ("out_sum_1h", "Outgoing dollars in 1 hour."),
    ("out_sum_24h", "Outgoing dollars in 24 hours."),
    ("out_sum_7d", "Outgoing dollars in 7 days."),
    ("hours_since_last_out", "Hours since the user's last outgoing movement."),
    ("in_count_1h", "P2P transfers received in 1 hour."),
    ("in_count_24h", "P2P transfers received in 24 hours."),
    ("in_sum_24h", "Dollars received by P2P in 24 hours."),
    ("in_sum_7d", "Dollars received by P2P in 7 days."),
    ("hours_since_last_in", "Hours since the user last received a P2P transfer."),
    ("senders_24h", "Distinct users who sent to this user in 24 hours."),
    ("add_count_1h", "Add-funds in 1 hour."),
    ("add_count_24h", "Add-funds in 24 hours."),
    ("add_sum_24h", "Dollars added in 24 hours."),
    ("card_add_count_1h", "Card add-funds in 1 hour."),
    ("card_add_count_24h", "Card add-funds in 24 hours."),
    ("tiny_add_count_1h", "Add-funds under $10 in 1 hour."),
    ("unsettled_ach_usd", "Dollars added by ACH in 3 days, not yet safe from returns."),
    ("hours_since_last_add", "Hours since the user's last add-funds."),
    ("last_add_usd", "Dollars of the user's last add-funds."),
    ("out_to_in_24h", "(Outgoing in 24 h + this, if outgoing) / (1 + added + received in 24 h)."),
    ("out_to_unsettled_ach", "(Outgoing in 24 h + this, if outgoing) / (1 + unsettled ACH)."),
    ("cash_equivalent_24h", "Dollars added or cashed out in 24 h, this included (CTR rule)."),
    ("is_new_recipient", "1 when the user never paid this recipient before."),
    ("times_paid_recipient", "Earlier P2P transfers from the user to this recipient."),
    ("recipients_24h", "Distinct recipients the user paid in 24 hours."),
    ("recipients_7d", "Distinct recipients the user paid in 7 days."),
    ("new_recipients_24h", "Transfers to first-time recipients in 24 hours."),
    ("recipient_age_days", "Days since the recipient signed up."),
    ("recipient_is_new_account", "1 when the recipient signed up less than 7 days ago."),
    ("recipient_senders_24h", "Distinct users who sent to the recipient in 24 hours."),
    ("recipient_new_senders_24h", "Of those, senders whose account was under 7 days old then."),
    ("recipient_in_usd_24h", "Dollars the recipient received in 24 hours."),
    (
        "recipient_same_amount_24h",
        "Of those transfers, how many were of this amount (a bill's shares).",
    ),
    ("recipient_out_count_24h", "Outgoing movements of the recipient in 24 hours."),
    ("recipient_paid_user_before", "1 when the recipient has sent money to this user before."),
    ("recipient_last_to_user_usd", "Dollars of the recipient's last transfer to this user."),
    ("hours_since_recipient_paid_user", "Hours since that transfer."),
    ("device_seen_before", "1 when the user acted from this device before."),
    ("device_age_days", "Days since the user first acted from this device."),
    ("devices_30d", "Distinct devices the user acted from in 30 days."),
    ("device_other_users", "Other users ever seen on this device."),
    ("device_changed", "1 when the device differs from the user's last movement's."),
    ("country_seen_before", "1 when the user acted from this country before."),
    ("is_home_country", "1 when the country is the user's home country."),
    ("country_changed", "1 when the country differs from the user's last movement's."),
    ("impossible_travel", "1 when the country changed within 4 hours of the last movement."),
    ("countries_30d", "Distinct countries the user acted from in 30 days."),
    ("ip_prefix_seen_before", "1 when the user acted from this /16 address block before."),
    ("address_new_accounts", "Other accounts under 30 days old acting from this address."),
    ("address_counterparties", "Accounts seen at this address the user paid or was paid by."),
    ("near_threshold_7d", "Movements just under $10,000 or $3,000 in 7 days."),
    ("near_threshold_share_7d", "Their share of the user's movements in 7 days."),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
# What the rules read and the model never learns from (training blanks them): the generator
# knows too little of who shares an address (flatmates, a party's Wi-Fi, a carrier's NAT) for
# a model to learn from it what the real world does. The address_ring rule reads them.
RULES_ONLY: tuple[str, ...] = ("address_new_accounts", "address_counterparties")
FEATURE_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}


def features_for(state: HistoryState, txn: Txn) -> list[float]:
    """The feature vector of `txn`, in `FEATURE_NAMES` order, from strictly earlier events."""
    now = txn.ts.timestamp()
    user = state.peek(txn.user_id)
    values: dict[str, float] = {}
    _movement(values, txn)
    _profile(values, user, txn, now)
    outgoing = txn.amount_minor if txn.kind != "add_funds" else 0
    _outflows(values, user, now)
    _inflows(values, user, now, outgoing)
    _recipient(values, state, user, txn, now)
    _place(values, state, user, txn, now)
    return [values[name] for name in FEATURE_NAMES]


def _movement(values: dict[str, float], txn: Txn) -> None:
    amount, kind = txn.amount_minor, txn.kind
    usd = amount / 100
    values.update(
        amount_usd=usd,
        log_amount=math.log1p(usd),
        is_p2p=float(kind == "p2p"),
        is_add_funds=float(kind == "add_funds"),
        is_cash_out=float(kind == "cash_out"),
        rail_ach=float(txn.rail == "ach"),
        rail_card=float(txn.rail == "card"),
        amount_has_cents=float(amount % 100 != 0),
        amount_round_100=float(amount % 10_000 == 0),
        amount_near_10k=float(NEAR_10K[0] <= amount < NEAR_10K[1]),
        amount_near_3k=float(NEAR_3K[0] <= amount < NEAR_3K[1]),
        amount_tiny=float(amount < TINY_AMOUNT_MINOR),
    )


def _profile(values: dict[str, float], user: UserHistory, txn: Txn, now: float) -> None:
    """The user's account and their usual amounts over 30 days."""
    amounts = [a for ts, a in user.amounts if now - ts <= MONTH]
    week = sum(1 for ts, _ in user.amounts if now - ts <= WEEK)
    near = sum(1 for ts in user.near_threshold if now - ts <= WEEK)
    usd = txn.amount_minor / 100
    median = statistics.median(amounts) / 100 if amounts else NAN
    zscore = NAN
    if len(amounts) >= 2:
        # Plain arithmetic: statistics.pstdev is exact but an order of magnitude slower.
        logs = [math.log1p(a / 100) for a in amounts]
        mean = sum(logs) / len(logs)
        spread = math.sqrt(max(sum(x * x for x in logs) / len(logs) - mean * mean, 0.0))
        zscore = (math.log1p(usd) - mean) / max(spread, 0.1)
    values.update(
        account_age_days=(now - user.signup_ts) / DAY,
        has_verified_bank=float(user.verified_bank),
        days_since_last_event=(now - user.last_ts) / DAY,
        lifetime_events=float(user.events),
        median_amount_30d=median,
        amount_to_median_30d=usd / median if median > 0 else NAN,
        amount_zscore_30d=zscore,
        amount_to_max_30d=usd * 100 / max(amounts) if amounts else NAN,
        events_30d=float(len(amounts)),
        near_threshold_7d=float(near),
        near_threshold_share_7d=near / week if week else 0.0,
    )


def _outflows(values: dict[str, float], user: UserHistory, now: float) -> None:
    """Velocity of the user's outgoing money and of new recipients (one pass over 7 days)."""
    counts, sums = [0, 0, 0, 0], [0, 0, 0]  # 1m/1h/24h/7d counts; 1h/24h/7d sums
    recipients_24h: set[int] = set()
    recipients_7d: set[int] = set()
    new_recipients_24h = cash_out_24h = 0
    for ts, amount, to, was_new in reversed(user.outs):
        age = now - ts
        if age > WEEK:
            break
        counts[3], sums[2] = counts[3] + 1, sums[2] + amount
        if to >= 0:
            recipients_7d.add(to)
        if age > DAY:
            continue
        counts[2], sums[1] = counts[2] + 1, sums[1] + amount
        if to >= 0:
            recipients_24h.add(to)
            new_recipients_24h += was_new
        else:
            cash_out_24h += amount
        if age <= HOUR:
            counts[1], sums[0] = counts[1] + 1, sums[0] + amount
            counts[0] += age <= MINUTE
    values.update(
        out_count_1m=float(counts[0]),
        out_count_1h=float(counts[1]),
        out_count_24h=float(counts[2]),
        out_count_7d=float(counts[3]),
        out_sum_1h=sums[0] / 100,
        out_sum_24h=sums[1] / 100,
        out_sum_7d=sums[2] / 100,
        hours_since_last_out=(now - user.last_out_ts) / HOUR,
        recipients_24h=float(len(recipients_24h)),
        recipients_7d=float(len(recipients_7d)),
        new_recipients_24h=float(new_recipients_24h),
        cash_equivalent_24h=cash_out_24h / 100,  # The add-funds half is added by _inflows.
    )


def _inflows(values: dict[str, float], user: UserHistory, now: float, outgoing: int) -> None:
    """Money received and added, and how much of it is leaving again."""
    in_1h = in_24h = 0
    in_sum_24h = in_sum_7d = 0
    senders: set[int] = set()
    for ts, amount, sender, _ in reversed(user.ins):
        age = now - ts
        if age > WEEK:
            break
        in_sum_7d += amount
        if age <= DAY:
            in_24h, in_sum_24h = in_24h + 1, in_sum_24h + amount
            in_1h += age <= HOUR
            senders.add(sender)
    adds = _add_funds_windows(user, now)
    outflow = values["out_sum_24h"] + outgoing / 100
    is_cash = values["is_add_funds"] or values["is_cash_out"]
    values.update(
        in_count_1h=float(in_1h),
        in_count_24h=float(in_24h),
        in_sum_24h=in_sum_24h / 100,
        in_sum_7d=in_sum_7d / 100,
        hours_since_last_in=(now - user.last_in_ts) / HOUR,
        senders_24h=float(len(senders)),
        hours_since_last_add=(now - user.last_add[0]) / HOUR,
        last_add_usd=user.last_add[1] / 100 if user.last_add[1] else NAN,
        out_to_in_24h=outflow / (1 + adds["add_sum_24h"] + in_sum_24h / 100),
        out_to_unsettled_ach=outflow / (1 + adds["unsettled_ach_usd"]),
        **adds,
    )
    values["cash_equivalent_24h"] += adds["add_sum_24h"] + values["amount_usd"] * is_cash


def _add_funds_windows(user: UserHistory, now: float) -> dict[str, float]:
    count_1h = count_24h = card_1h = card_24h = tiny_1h = 0
    sum_24h = unsettled = 0
    for ts, amount, by_card in reversed(user.adds):
        age = now - ts
        if age > UNSETTLED_ACH_SECONDS:
            break
        unsettled += 0 if by_card else amount
        if age <= DAY:
            count_24h, sum_24h, card_24h = count_24h + 1, sum_24h + amount, card_24h + by_card
            if age <= HOUR:
                count_1h, card_1h = count_1h + 1, card_1h + by_card
                tiny_1h += amount < TINY_AMOUNT_MINOR
    return {
        "add_count_1h": float(count_1h),
        "add_count_24h": float(count_24h),
        "add_sum_24h": sum_24h / 100,
        "card_add_count_1h": float(card_1h),
        "card_add_count_24h": float(card_24h),
        "tiny_add_count_1h": float(tiny_1h),
        "unsettled_ach_usd": unsettled / 100,
    }


def _recipient(
    values: dict[str, float], state: HistoryState, user: UserHistory, txn: Txn, now: float
) -> None:
    """Who is being paid: how well the user knows them, and what the recipient's last day looks
    like (many new senders is a mule collecting; many transfers out is a mule fanning out)."""
    to = txn.counterparty_id
    if txn.kind != "p2p" or to is None:
        values.update(dict.fromkeys(_RECIPIENT_FEATURES, NAN))
        return
    recipient = state.peek(to)
    senders: set[int] = set()
    new_senders: set[int] = set()
    received = same_amount = 0
    for ts, amount, sender, sender_was_new in reversed(recipient.ins):
        if now - ts > DAY:
            break
        senders.add(sender)
        received += amount
        same_amount += amount == txn.amount_minor
        if sender_was_new:
            new_senders.add(sender)
    out_24h = 0
    for ts, *_ in reversed(recipient.outs):
        if now - ts > DAY:
            break
        out_24h += 1
    age_days = (now - recipient.signup_ts) / DAY
    paid_user = user.senders.get(to)
    values.update(
        is_new_recipient=float(to not in user.recipients),
        times_paid_recipient=float(user.recipients.get(to, 0)),
        recipient_age_days=age_days,
        recipient_is_new_account=float(age_days < NEW_ACCOUNT_SECONDS / DAY),
        recipient_senders_24h=float(len(senders)),
        recipient_new_senders_24h=float(len(new_senders)),
        recipient_in_usd_24h=received / 100,
        recipient_same_amount_24h=float(same_amount),
        recipient_out_count_24h=float(out_24h),
        recipient_paid_user_before=float(paid_user is not None),
        recipient_last_to_user_usd=paid_user[1] / 100 if paid_user else NAN,
        hours_since_recipient_paid_user=(now - paid_user[0]) / HOUR if paid_user else NAN,
    )


_RECIPIENT_FEATURES = (
    "is_new_recipient",
    "times_paid_recipient",
    "recipient_age_days",
    "recipient_is_new_account",
    "recipient_senders_24h",
    "recipient_new_senders_24h",
    "recipient_in_usd_24h",
    "recipient_same_amount_24h",
    "recipient_out_count_24h",
    "recipient_paid_user_before",
    "recipient_last_to_user_usd",
    "hours_since_recipient_paid_user",
)


def _place(
    values: dict[str, float], state: HistoryState, user: UserHistory, txn: Txn, now: float
) -> None:
    """Where the user acts from: device, country, address block, against their own past."""
    device = user.devices.get(txn.device_id)
    country_changed = user.last_country is not None and txn.country != user.last_country
    young, linked = state.address_links(txn.ip, user, txn.user_id, now)
    values.update(
        device_seen_before=float(device is not None),
        device_age_days=(now - device[0]) / DAY if device else 0.0,
        devices_30d=float(sum(1 for _, last in user.devices.values() if now - last <= MONTH)),
        device_other_users=float(state.other_users_on(txn.device_id, txn.user_id)),
        device_changed=float(user.last_device is not None and txn.device_id != user.last_device),
        country_seen_before=float(txn.country in user.countries),
        is_home_country=float(txn.country == user.home_country),
        country_changed=float(country_changed),
        impossible_travel=float(
            country_changed and now - user.last_ts <= IMPOSSIBLE_TRAVEL_SECONDS
        ),
        countries_30d=float(sum(1 for last in user.countries.values() if now - last <= MONTH)),
        ip_prefix_seen_before=float(ip_prefix(txn.ip) in user.ip_prefixes),
        address_new_accounts=float(young),
        address_counterparties=float(linked),
    )


def replay(signups: Iterable[Signup], txns: Iterable[Txn]) -> Iterator[list[float]]:
    """Feature rows of time-ordered `txns`, each from the past only, as the online engine sees it.

    Users are registered when they sign up, not before: registering a later signup early would let
    its devices show up as shared before the account existed.
    """
    state = HistoryState()
    pending = sorted(signups, key=lambda signup: signup.signup_at, reverse=True)
    for txn in txns:
        while pending and pending[-1].signup_at <= txn.ts:
            p = pending.pop()
            state.register_user(p.user_id, p.signup_at, p.verified_bank, p.home_country, p.devices)
        yield features_for(state, txn)
        observe(state, txn)
