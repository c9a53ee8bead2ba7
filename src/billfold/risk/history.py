"""What the features remember of everyone's past: a bounded history per user, fed in time order.

Training replays generated movements into `HistoryState` with `observe`; online,
risk.serving builds the same `HistoryState` from what PostgreSQL holds. risk.features reads it.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
WEEK, MONTH = 7 * DAY, 30 * DAY
NEW_ACCOUNT_SECONDS = WEEK
NEAR_10K = (900_000, 1_000_000)
NEAR_3K = (270_000, 300_000)
# Bounds on the state kept per user, so a hyperactive account cannot grow it without limit.
MAX_WINDOW_ENTRIES = 2_000
MAX_KNOWN_PARTIES = 1_000
MAX_KNOWN_PLACES = 100
# An address more accounts than this act from is a carrier's NAT or a public network: no one's
# home, and no ring's.
ADDRESS_MAX_ACCOUNTS = 50
NAN = math.nan


class Txn(Protocol):
    """What the features read of a movement; `synth.Event` and the online request both fit."""

    @property
    def ts(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def user_id(self) -> int: ...
    @property
    def counterparty_id(self) -> int | None: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def rail(self) -> str | None: ...
    @property
    def device_id(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def ip(self) -> str: ...


class Signup(Protocol):
    """What signup tells about a user; `synth.UserProfile` fits."""

    @property
    def user_id(self) -> int: ...
    @property
    def signup_at(self) -> datetime: ...
    @property
    def verified_bank(self) -> bool: ...
    @property
    def home_country(self) -> str: ...
    @property
    def devices(self) -> tuple[str, ...]: ...


def _window() -> deque[Any]:
    return deque(maxlen=MAX_WINDOW_ENTRIES)


@dataclass(slots=True)
class UserHistory:
    """One user's bounded past. Window deques hold (ts, ...) tuples in time order."""

    signup_ts: float = NAN
    verified_bank: bool = False
    home_country: str | None = None
    outs: deque[tuple[float, int, int, bool]] = field(default_factory=_window)  # to, new payee
    ins: deque[tuple[float, int, int, bool]] = field(default_factory=_window)  # from, new account
    adds: deque[tuple[float, int, bool]] = field(default_factory=_window)  # by card
    amounts: deque[tuple[float, int]] = field(default_factory=_window)  # 30 days, all initiated
    near_threshold: deque[float] = field(default_factory=_window)
    recipients: dict[int, int] = field(default_factory=dict)  # times paid
    senders: dict[int, tuple[float, int]] = field(default_factory=dict)  # last ts, amount
    devices: dict[str, tuple[float, float]] = field(default_factory=dict)  # first, last seen
    countries: dict[str, float] = field(default_factory=dict)  # last seen
    ip_prefixes: dict[str, float] = field(default_factory=dict)
    last_ts: float = NAN
    last_device: str | None = None
    last_country: str | None = None
    last_out_ts: float = NAN
    last_in_ts: float = NAN
    last_add: tuple[float, int] = (NAN, 0)
    events: int = 0


class HistoryState:
    """Everyone's bounded history, fed in time order by `observe`."""

    def __init__(self) -> None:
        self._users: dict[int, UserHistory] = {}
        self._device_users: dict[str, dict[int, None]] = {}
        # An exact address: the users seen there, first and last.
        self._address_users: dict[str, dict[int, tuple[float, float]]] = {}
        self._address_found: dict[str, tuple[int, int]] = {}

    def register_user(
        self,
        user_id: int,
        signup_at: datetime,
        verified_bank: bool,
        home_country: str,
        devices: Iterable[str] = (),
    ) -> None:
        """Records what signup tells: its time, bank verification, home country, first devices."""
        history = self.history(user_id)
        history.signup_ts = signup_at.timestamp()
        history.verified_bank = verified_bank
        history.home_country = home_country
        for device in devices:
            history.devices.setdefault(device, (history.signup_ts, history.signup_ts))
            self.note_device(device, user_id)
        history.countries.setdefault(home_country, history.signup_ts)

    def peek(self, user_id: int) -> UserHistory:
        """The user's history without creating one: an unknown user has an empty past."""
        return self._users.get(user_id) or _EMPTY

    def history(self, user_id: int) -> UserHistory:
        found = self._users.get(user_id)
        if found is None:
            found = self._users[user_id] = UserHistory()
        return found

    def other_users_on(self, device_id: str, user_id: int) -> int:
        users = self._device_users.get(device_id, {})
        return len(users) - (1 if user_id in users else 0)

    def note_device_users(self, device_id: str, others: int) -> None:
        """Online: `others` users besides the one scored are known on the device."""
        self._device_users[device_id] = dict.fromkeys(range(-others, 0))

    def note_device(self, device_id: str, user_id: int) -> None:
        users = self._device_users.setdefault(device_id, {})
        if user_id not in users and len(users) < MAX_KNOWN_PARTIES:
            users[user_id] = None

    def note_address(self, address: str, user_id: int, now: float) -> None:
        users = self._address_users.setdefault(address, {})
        first = users.get(user_id, (now, now))[0]
        _remember(users, user_id, (first, now), MAX_KNOWN_PARTIES)

    def address_links(
        self, ip: str, user: UserHistory, user_id: int, now: float
    ) -> tuple[int, int]:
        """For an account under 30 days old acting from an address it has known for a day or
        more (its home, not a party's Wi-Fi): the other accounts under 30 days old that acted
        from it in 30 days, and how many of the accounts seen there the user has paid or been
        paid by. (0, 0) otherwise, and for an address more than `ADDRESS_MAX_ACCOUNTS` accounts
        act from: a carrier's NAT or a public network, no one's home."""
        if ip in self._address_found:
            return self._address_found[ip]
        address = address_of(ip)
        users = self._address_users.get(address, {}) if address else {}
        mine = users.get(user_id)
        if (
            mine is None
            or now - mine[0] < DAY
            or now - user.signup_ts >= MONTH
            or len(users) > ADDRESS_MAX_ACCOUNTS
        ):
            return 0, 0
        young = linked = 0
        for other, (_, last) in users.items():
            if other == user_id:
                continue
            if other in user.recipients or other in user.senders:
                linked += 1
            if now - last <= MONTH and now - self.peek(other).signup_ts < MONTH:
                young += 1
        return young, linked

    def note_address_links(self, ip: str, young: int, linked: int) -> None:
        """Online: what the past query found at the movement's address (`address_links`)."""
        self._address_found[ip] = (young, linked)


_EMPTY = UserHistory()


def is_near_threshold(amount_minor: int) -> bool:
    return NEAR_10K[0] <= amount_minor < NEAR_10K[1] or NEAR_3K[0] <= amount_minor < NEAR_3K[1]


def address_of(ip: str | None) -> str | None:
    """The address a user acts from, as the address features know it: a public IPv4 or IPv6
    address in its canonical form; None for anything else (no address, not an address, or a
    private, loopback or link-local one: the deployment's own network, or a proxy's, is nobody's
    home, and every demo user on localhost shares it)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return str(address) if address.is_global else None


def ip_prefix(ip: str) -> str:
    """The /16 block of an IPv4 address, or the first four groups of an IPv6 one."""
    if ":" in ip:
        return ":".join(ip.split(":")[:4])
    return ".".join(ip.split(".")[:2])


def observe(state: HistoryState, txn: Txn) -> None:
    """Adds `txn` to the history: call after `features_for(state, txn)`, in time order."""
    now, amount = txn.ts.timestamp(), txn.amount_minor
    user = state.history(txn.user_id)
    _prune(user, now)
    user.amounts.append((now, amount))
    if is_near_threshold(amount):
        user.near_threshold.append(now)
    if txn.kind == "add_funds":
        user.adds.append((now, amount, txn.rail == "card"))
        user.last_add = (now, amount)
    elif txn.kind == "p2p" and txn.counterparty_id is not None:
        _observe_transfer(state, user, txn, now)
    else:
        user.outs.append((now, amount, -1, False))
        user.last_out_ts = now
    first_seen = user.devices.get(txn.device_id, (now, now))[0]
    _remember(user.devices, txn.device_id, (first_seen, now), MAX_KNOWN_PLACES)
    _remember(user.countries, txn.country, now, MAX_KNOWN_PLACES)
    _remember(user.ip_prefixes, ip_prefix(txn.ip), now, MAX_KNOWN_PLACES)
    state.note_device(txn.device_id, txn.user_id)
    address = address_of(txn.ip)
    if address is not None and now - user.signup_ts < MONTH:
        # Remembered while the account is young: the address features read no other.
        state.note_address(address, txn.user_id, now)
    user.last_ts, user.last_device, user.last_country = now, txn.device_id, txn.country
    user.events += 1


def _observe_transfer(state: HistoryState, user: UserHistory, txn: Txn, now: float) -> None:
    to = txn.counterparty_id
    if to is None:
        raise ValueError(
            f"P2P transfer at {txn.ts.isoformat()} from {txn.user_id} has no recipient"
        )
    user.outs.append((now, txn.amount_minor, to, to not in user.recipients))
    user.last_out_ts = now
    _remember(user.recipients, to, user.recipients.get(to, 0) + 1, MAX_KNOWN_PARTIES)
    recipient = state.history(to)
    _prune(recipient, now)
    sender_was_new = now - user.signup_ts < NEW_ACCOUNT_SECONDS
    recipient.ins.append((now, txn.amount_minor, txn.user_id, sender_was_new))
    recipient.last_in_ts = now
    _remember(recipient.senders, txn.user_id, (now, txn.amount_minor), MAX_KNOWN_PARTIES)


def _remember(known: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Sets `key` as the most recent entry, forgetting the least recently seen beyond `limit`."""
    known.pop(key, None)
    known[key] = value
    if len(known) > limit:
        del known[next(iter(known))]


def _prune(user: UserHistory, now: float) -> None:
    """Drops window entries too old for any feature."""
    for window, horizon in (
        (user.outs, WEEK),
        (user.ins, WEEK),
        (user.adds, WEEK),
        (user.amounts, MONTH),
    ):
        while window and now - window[0][0] > horizon:
            window.popleft()
    while user.near_threshold and now - user.near_threshold[0] > WEEK:
        user.near_threshold.popleft()
