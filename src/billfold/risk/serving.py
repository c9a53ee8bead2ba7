"""The model's features online, by the same code that computes them for training.

Training replays a history of movements into `history.HistoryState` and asks `features_for`
for each movement's row. Online, one query reads what PostgreSQL holds of the same past: the
user's assessed movements of the last 30 days (their `risk_assessments`, declines excluded, and
held movements declined later: money that never moved is no history), the P2P transfers they
received in 7 days, the recipient's last day, and the devices, countries and address blocks the
user is known from. `past_of` puts those rows into the bounded `UserHistory` that a replay would
have built, and `features_for` computes the row. A feature therefore cannot mean one thing
offline and another online; tests/risk/test_serving.py replays a generated history both ways
and compares every value.

Where the two differ, by design and documented in docs/risk.md:
- "last movement of a kind" (last add-funds, last outgoing) looks back 90 days, the length of the
  generated history the model learned from; older counts as never;
- the lifetime count of movements, and the count of earlier payments to this recipient, stop
  at COUNT_CAP (256), above every split the model makes on them, so that no score changes;
- the rule signals (risk.rules) read the same rows, so that one query serves both.
"""

from __future__ import annotations

import functools
import statistics
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from billfold.platform.currency import WALLET_CURRENCY
from billfold.risk.features import features_for
from billfold.risk.gate import UNVERIFIED_DEVICE, Movement
from billfold.risk.history import (
    ADDRESS_MAX_ACCOUNTS,
    DAY,
    HOUR,
    MONTH,
    NEW_ACCOUNT_SECONDS,
    WEEK,
    HistoryState,
    Txn,
    address_of,
    ip_prefix,
    is_near_threshold,
)
from billfold.risk.past_sql import (
    COUNT_CAP,
    LOOKBACK,
    OUTGOING,
    PAST,
    PAST_MANY,
    PLACE_REFRESH,
    REMEMBER,
    WINDOW,
)
from billfold.risk.rules import TINY_CARD_ADD_MINOR, TYPICAL_MIN_HISTORY, Signals

ME, THEM = 1, 2  # the user and the recipient, as history.HistoryState numbers them
# An account older than this has no address features (history.HistoryState.address_links): its
# addresses are neither read nor written.
ADDRESS_MAX_AGE = MONTH

# What the rest of the engine, the benchmarks and the tests read of the past query here.
__all__ = [
    "COUNT_CAP",
    "LOOKBACK",
    "OUTGOING",
    "PAST",
    "PAST_MANY",
    "PLACE_REFRESH",
    "REMEMBER",
    "WINDOW",
    "Past",
    "Request",
    "features",
    "movement_of",
    "past_of",
    "signals",
]


@dataclass(frozen=True)
class Request:
    """A movement as the features read it (history.Txn): the user is 1, the recipient 2."""

    ts: datetime
    kind: str
    amount_minor: int
    rail: str | None
    device_id: str
    country: str
    ip: str
    counterparty_id: int | None
    user_id: int = ME


@dataclass(frozen=True)
class Past:
    """What the query found, as the features and the rules read it."""

    row: Mapping[str, Any]
    events: list[list[Any]]  # [epoch, kind, counterparty, amount, rail, new_payee, action]
    devices: list[list[Any]]  # [device, first seen, last seen]: recent ones and this one
    countries: list[list[Any]]  # [country, last seen], the last seen last

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Past:
        return cls(
            row, json_list(row["events"]), json_list(row["devices"]), json_list(row["countries"])
        )

    @property
    def frozen(self) -> bool:
        """The user is frozen (by an operator or the engine) as the query read them."""
        return bool(self.row["frozen"])

    def sender_new(self, at: datetime) -> bool:
        """The user's account was under 7 days old at `at`."""
        return at.timestamp() - float(self.row["signup"]) < NEW_ACCOUNT_SECONDS

    def places_to_remember(self, request: Request) -> str:
        """Whether the device, country, address block and address of `request` (those it has)
        must be remembered: "new" (a device or country never seen for the user: the rules must
        know it before the next movement), "later" (an address never seen, or a place last seen
        over `PLACE_REFRESH` ago: the model's features can wait milliseconds) or "" (all seen
        recently: nothing to write)."""
        row = self.row
        # An unverified device is never remembered (risk.engine): no device to write.
        device_id = "" if request.device_id == UNVERIFIED_DEVICE else request.device_id
        device = [last for d, _, last in self.devices if d == device_id]
        country = [last for c, last in self.countries if c == request.country]
        if (device_id and not device) or (request.country and not country):
            return "new"
        network = [row["network_seen"]] if row["network_seen"] is not None else []
        address = [row["address_seen"]] if row["address_seen"] is not None else []
        if request.ip and not network:
            return "later"
        young = request.ts.timestamp() - float(row["signup"]) < ADDRESS_MAX_AGE
        if young and not address and address_of(request.ip) is not None:
            # A new account's public address never seen (the address_ring rule reads them; a
            # private one is never remembered, nor an older account's).
            return "later"
        oldest = min([*device, *country, *network, *(address if young else [])], default=None)
        if oldest is not None and request.ts.timestamp() - oldest > PLACE_REFRESH:
            return "later"
        if request.country and self.countries and self.countries[-1][0] != request.country:
            # Back in a country seen before: it becomes the last one again (impossible travel
            # compares with the last country).
            return "later"
        return ""

    @property
    def times_paid(self) -> int:
        return int(self.row["times_paid"] or 0)

    @functools.cached_property
    def address_links(self) -> tuple[int, int]:
        """As `HistoryState.address_links`: the other new accounts at the movement's address,
        and those of its accounts the user has traded with; (0, 0) past the address's cap."""
        found = json_list(self.row["address_links"])
        if not found or found[2] > ADDRESS_MAX_ACCOUNTS:
            return 0, 0
        return int(found[0]), int(found[1])


def movement_of(event: Txn, ids: Mapping[int, str], ref: str) -> Movement:
    """A generated movement (risk.training.synth) as the API hands it to the engine; `ids` maps the
    generator's user numbers to user ids."""
    to = event.counterparty_id
    return Movement(
        event.kind,
        ids[event.user_id],
        ids[to] if to is not None else None,
        event.amount_minor,
        WALLET_CURRENCY,
        ref=ref,
        device_id=event.device_id,
        country=event.country,
        ip=event.ip,
        rail=event.rail,
    )


def json_list(value: Any) -> list[Any]:
    """A json column: decoded by the pool's codec (platform.db), or text from a bare connection."""
    if isinstance(value, str):
        return list(orjson.loads(value))
    return list(value or [])


def past_of(past: Past, movement: Request, recipient_id: uuid.UUID | None) -> HistoryState:
    """The `HistoryState` a replay would hold at `movement.ts` for the user and the recipient."""
    row = past.row
    state = HistoryState()
    me = state.history(ME)
    me.signup_ts = row["signup"]
    me.verified_bank = row["verified_bank"]
    me.home_country = row["home_country"]
    numbers: dict[str, int] = {str(recipient_id): THEM} if recipient_id else {}

    def number(user: Any) -> int:
        return numbers.setdefault(str(user), len(numbers) + 3)

    # The latest outgoing movement, add-funds and incoming transfer: from the recent rows when
    # they hold one (oldest first), else as the query found them further back.
    last_out = row["last_out"]
    last_add = json_list(row["last_add"]) if row["last_add"] else None
    for at, kind, to, amount, rail, new_payee, _action in past.events:
        me.amounts.append((at, amount))
        if is_near_threshold(amount):
            me.near_threshold.append(at)
        if kind == "add_funds":
            me.adds.append((at, amount, rail == "card"))
            last_add = [at, amount]
        elif kind == "p2p" and to is not None:
            me.outs.append((at, amount, number(to), bool(new_payee)))
        else:
            me.outs.append((at, amount, -1, False))
        if kind in OUTGOING:
            last_out = at
    for at, amount, sender, sender_new in json_list(row["received"]):
        me.ins.append((at, amount, number(sender), bool(sender_new)))
    if row["last_at"] is not None:
        me.last_ts, me.last_device, me.last_country = (
            row["last_at"],
            row["last_device"] or "",
            row["last_country"] or "",
        )
    if last_out is not None:
        me.last_out_ts = last_out
    if last_add is not None:
        me.last_add = (last_add[0], last_add[1])
    last_in = me.ins[-1][0] if me.ins else row["last_in"]
    if last_in is not None:
        me.last_in_ts = last_in
    me.events = int(row["lifetime"])
    for device, first, last in past.devices:
        me.devices[device] = (first, last)
    for country, last in past.countries:
        me.countries[country] = last
    if row["network_seen"] is not None:
        me.ip_prefixes[ip_prefix(movement.ip)] = movement.ts.timestamp()
    state.note_device_users(movement.device_id, int(row["device_other_users"]))
    young, linked = past.address_links
    state.note_address_links(movement.ip, young, linked)
    if recipient_id is not None and row["their_signup"] is not None:
        if past.times_paid:
            me.recipients[THEM] = past.times_paid
        if row["paid_by_them"]:
            at, amount = json_list(row["paid_by_them"])
            me.senders[THEM] = (at, amount)
        them = state.history(THEM)
        them.signup_ts = row["their_signup"]
        for at, amount, sender, sender_new in json_list(row["their_received"]):
            them.ins.append((at, amount, number(sender), bool(sender_new)))
        for at in json_list(row["their_sent"]):
            them.outs.append((at, 0, -1, False))
    return state


def features(past: Past, movement: Request, recipient_id: uuid.UUID | None) -> list[float]:
    return features_for(past_of(past, movement, recipient_id), movement)


def _paid_by_them(row: Mapping[str, Any], at: datetime) -> tuple[datetime, int] | None:
    """The recipient's last transfer to the user, as (when, cents), if any."""
    if not row["paid_by_them"]:
        return None
    epoch, amount = json_list(row["paid_by_them"])
    return datetime.fromtimestamp(epoch, at.tzinfo), int(amount)


def signals(past: Past, movement: Request, counts: tuple[int, int, int]) -> Signals:
    """What the hard rules read, from the same rows (and the exact velocity counters)."""
    row, now = past.row, movement.ts.timestamp()
    young, linked = past.address_links
    devices = {device for device, _, _ in past.devices}
    countries = past.countries
    last_country, last_country_at = countries[-1] if countries else (None, None)
    same_kind = [e[3] for e in past.events if e[1] == movement.kind and e[6] == "allow"]
    midnight = movement.ts.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    device = movement.device_id or None
    country = movement.country or None
    return Signals(
        kind=movement.kind,
        amount_minor=movement.amount_minor,
        at=movement.ts,
        count_1m=counts[0],
        count_1h=counts[1],
        typical_amount_minor=statistics.median_low(same_kind)
        if len(same_kind) >= TYPICAL_MIN_HISTORY
        else None,
        # A first device or country is where the user starts from, not a change; a device
        # token that is not the user's is never a device they used.
        device_known=None
        if device is None
        else device != UNVERIFIED_DEVICE and (device in devices or not row["has_devices"]),
        country=country,
        country_known=None
        if country is None
        else (not countries or any(c == country for c, _ in countries)),
        last_country=last_country,
        last_country_at=None
        if last_country_at is None
        else datetime.fromtimestamp(last_country_at, movement.ts.tzinfo),
        recipient_flagged=bool(row["their_flag"]),
        recipient_is_new_payee=movement.counterparty_id is not None and past.times_paid == 0,
        recipient_is_new_account=row["their_signup"] is not None
        and now - row["their_signup"] < WEEK,
        recipient_new_senders_24h=counts[2],
        added_funds_24h_minor=sum(
            e[3] for e in past.events if e[1] == "add_funds" and now - e[0] <= DAY
        ),
        rail=movement.rail,
        account_age_days=(now - float(row["signup"])) / DAY,
        device_other_accounts=int(row["device_other_users"] or 0) if device else 0,
        address_new_accounts=young,
        address_counterparties=linked,
        paid_by_recipient=_paid_by_them(row, movement.ts),
        tiny_card_adds_1h=sum(
            1
            for e in past.events
            if e[1] == "add_funds"
            and e[4] == "card"
            and e[3] < TINY_CARD_ADD_MINOR
            and now - e[0] <= HOUR
        ),
        near_threshold_7d=[
            e[3] for e in past.events if now - e[0] <= WEEK and is_near_threshold(e[3])
        ],
        cash_equivalent_today_minor=sum(
            e[3] for e in past.events if e[1] in ("add_funds", "cash_out") and e[0] >= midnight
        ),
    )
