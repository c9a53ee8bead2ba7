"""What each event tells whom: the event catalogue (docs/events.md) read as notices, each of a
kind (its template: notifications/templates/<kind>.txt) and a category (what a person turns on
or off: notifications.preferences).

Pure: an event in, its notices out, with the values their templates need that the event itself
carries. The people they name (a counterparty's username) are looked up by the caller. An event
that tells no one (an internal move of money, a version this code does not know) gives none.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from billfold.notifications import words


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    description: str
    # False: its feed cannot be turned off (what a person must be able to find again).
    feed_optional: bool = True


MONEY_RECEIVED = Category("money_received", "Money sent to you.")
TRANSFERS = Category(
    "transfers",
    "Money you send: held for your PIN or for review, confirmed, declined, the review's decision.",
)
FUNDING = Category(
    "funding", "Adding money and cashing out: settled, returned by the bank, reviewed."
)
ACCOUNT = Category(
    "account",
    "Your account: a freeze and its end, a debt and its repayment, a card payment charged back.",
    feed_optional=False,
)
DEVELOPERS = Category("developers", "Your webhook endpoints: one disabled after failing.")
CATEGORIES = {c.name: c for c in (MONEY_RECEIVED, TRANSFERS, FUNDING, ACCOUNT, DEVELOPERS)}

# The transfer codes whose recipient is told of the money: one person paying another. Money
# moved by the system (add-funds, micro-deposits, reversals, a debt's clawback and repayment)
# is told by the event of its own movement, if at all; a merchant's refund by
# `refund.completed`, which names the merchant (its account is no person's wallet).
RECEIVED_CODES = frozenset({"p2p"})
_TYPE = re.compile(r"^billfold\.([a-z_.]+)\.v([0-9]+)$")
_AMOUNT = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,4})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# The versions of each event type this module reads.
VERSION = 1


class Malformed(ValueError):
    """An event whose data this module cannot read: logged and skipped, not retried."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One person told of one event."""

    event_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    category: Category
    about: str | None
    time: datetime
    values: Mapping[str, str] = field(default_factory=dict)
    # Another person the message names: `$counterparty` becomes their @username (its value in
    # `values` says who they are when they cannot be named).
    counterpart: uuid.UUID | None = None


def event_kind(event: Mapping[str, Any]) -> str | None:
    """`transfer.completed` for `billfold.transfer.completed.v1`; None for a type or version
    this module does not read."""
    match = _TYPE.match(str(event.get("type", "")))
    if match is None or int(match.group(2)) != VERSION:
        return None
    return match.group(1)


def notices_of(event: Mapping[str, Any]) -> list[Notice]:
    """Who `event` tells, and what; raises Malformed for data it cannot read."""
    kind = event_kind(event)
    read = READERS.get(kind or "")
    if read is None:
        return []
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise Malformed(f"event {event.get('id')} has no data object")
    base = _Base(_uuid(event.get("id"), "id"), _subject(event), _time(event.get("time")))
    return read(base, data)


@dataclass(frozen=True, slots=True)
class _Base:
    event_id: uuid.UUID
    about: str | None
    time: datetime

    def notice(
        self,
        user: uuid.UUID,
        kind: str,
        category: Category,
        values: Mapping[str, str],
        counterpart: uuid.UUID | None = None,
    ) -> Notice:
        return Notice(
            self.event_id, user, kind, category, self.about, self.time, values, counterpart
        )


def _transfer_completed(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    to_user = _optional_uuid(data.get("to_user_id"), "to_user_id")
    from_user = _optional_uuid(data.get("from_user_id"), "from_user_id")
    if data.get("code") not in RECEIVED_CODES or to_user is None or to_user == from_user:
        return []
    values = {"amount": _money(data), "counterparty": "someone"}
    return [base.notice(to_user, "money_received", MONEY_RECEIVED, values, from_user)]


def _refund_completed(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    """The payer is told, the merchant named (its name is printable ASCII: merchants.qr). The
    merchant's own reason is not told: it is the merchant's text, not ours to mail."""
    merchant = _text(data.get("merchant_name"))
    if not merchant:
        raise Malformed("refund.completed has no merchant_name")
    values = {"amount": _money(data), "merchant": merchant}
    return [
        base.notice(
            _uuid(data.get("payer_id"), "payer_id"), "refund_received", MONEY_RECEIVED, values
        )
    ]


def _transfer_held(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    waiting = data.get("waiting_for")
    if waiting not in ("verification", "review"):
        raise Malformed(f"transfer.held waiting_for {str(waiting)[:20]!r} is not known")
    kind = "transfer_held_pin" if waiting == "verification" else "transfer_held_review"
    return [_to_sender(base, data, kind, {})]


def _transfer_verified(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    return [_to_sender(base, data, "transfer_verified", {})]


def _transfer_declined(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    reason = data.get("reason")
    values = {"reason": words.decline_reason(reason if isinstance(reason, str) else None)}
    return [_to_sender(base, data, "transfer_declined", values)]


def _to_sender(
    base: _Base, data: Mapping[str, Any], kind: str, values: Mapping[str, str]
) -> Notice:
    sender = _uuid(data.get("user_id"), "user_id")
    recipient = _optional_uuid(data.get("to_user_id"), "to_user_id")
    values = {"amount": _money(data), "counterparty": "the recipient", **values}
    return base.notice(sender, kind, TRANSFERS, values, recipient)


def _review_decided(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    decision = data.get("decision")
    if decision not in ("approved", "rejected"):
        raise Malformed(f"review.decided decision {str(decision)[:20]!r} is not known")
    funding = data.get("funding_id") is not None
    values = {"amount": _money(data), "what": "bank transfer" if funding else "transfer"}
    user = _uuid(data.get("user_id"), "user_id")
    return [base.notice(user, f"review_{decision}", FUNDING if funding else TRANSFERS, values)]


def _funding(status: str) -> Callable[[_Base, Mapping[str, Any]], list[Notice]]:
    def read(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
        # A cash-out is told by its own events (cashout.*); a pending add-funds is what the
        # person just asked for.
        if data.get("purpose") != "add_funds":
            return []
        values = {"amount": _money(data), "source": _source(data)}
        if status == "returned":
            values["reason"] = words.return_reason(_code(data))
        if status == "declined":
            values["reason"] = words.decline_reason(_text(data.get("reason")))
        user = _uuid(data.get("user_id"), "user_id")
        return [base.notice(user, f"funding_{status}", FUNDING, values)]

    return read


def _cashout(status: str) -> Callable[[_Base, Mapping[str, Any]], list[Notice]]:
    def read(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
        values = {"amount": _money(data)}
        if status == "returned":
            values["reason"] = words.return_reason(_code(data))
        if status == "declined":
            values["reason"] = words.decline_reason(_text(data.get("reason")))
        user = _uuid(data.get("user_id"), "user_id")
        return [base.notice(user, f"cashout_{status}", FUNDING, values)]

    return read


def _payout(status: str) -> Callable[[_Base, Mapping[str, Any]], list[Notice]]:
    # Told to the merchant's owner; its money comes from and goes back to the business account.
    def read(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
        values = {"amount": _money(data)}
        if status == "returned":
            values["reason"] = words.return_reason(_code(data))
        if status == "declined":
            values["reason"] = words.payout_decline_reason(_text(data.get("reason")))
        user = _uuid(data.get("user_id"), "user_id")
        return [base.notice(user, f"payout_{status}", FUNDING, values)]

    return read


def _card_chargeback(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    reason = data.get("reason")
    values = {
        "amount": _money(data),
        "reason": words.chargeback_reason(reason if isinstance(reason, str) else None),
    }
    return [base.notice(_uuid(data.get("user_id"), "user_id"), "card_chargeback", ACCOUNT, values)]


def _user(kind: str) -> Callable[[_Base, Mapping[str, Any]], list[Notice]]:
    # The reason a person was frozen is an operator's or the risk engine's note: not told.
    def read(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
        return [base.notice(_uuid(data.get("user_id"), "user_id"), kind, ACCOUNT, {})]

    return read


def _debt(base: _Base, data: Mapping[str, Any], opened: bool) -> list[Notice]:
    currency = data.get("currency")
    outstanding = _money({"amount": data.get("outstanding"), "currency": currency})
    values = {"amount": _money(data), "outstanding": outstanding}
    cleared = not opened and _is_zero(str(data.get("outstanding")))
    kind = "debt_opened" if opened else ("debt_repaid" if cleared else "debt_recovered")
    return [base.notice(_uuid(data.get("user_id"), "user_id"), kind, ACCOUNT, values)]


def _endpoint_disabled(base: _Base, data: Mapping[str, Any]) -> list[Notice]:
    values = {
        "url": _shown_url(data.get("url")),
        "failing_since": _time(data.get("failing_since")).strftime("%Y-%m-%d %H:%M UTC"),
    }
    user = _uuid(data.get("user_id"), "user_id")
    return [base.notice(user, "webhook_endpoint_disabled", DEVELOPERS, values)]


READERS: dict[str, Callable[[_Base, Mapping[str, Any]], list[Notice]]] = {
    "transfer.completed": _transfer_completed,
    "transfer.held": _transfer_held,
    "transfer.verified": _transfer_verified,
    "transfer.declined": _transfer_declined,
    "review.decided": _review_decided,
    "funding.settled": _funding("settled"),
    "funding.returned": _funding("returned"),
    "funding.declined": _funding("declined"),
    "cashout.requested": _cashout("requested"),
    "cashout.paid": _cashout("paid"),
    "cashout.returned": _cashout("returned"),
    "cashout.declined": _cashout("declined"),
    "payout.requested": _payout("requested"),
    "payout.paid": _payout("paid"),
    "payout.returned": _payout("returned"),
    "payout.declined": _payout("declined"),
    "card.chargeback": _card_chargeback,
    "user.frozen": _user("user_frozen"),
    "user.unfrozen": _user("user_unfrozen"),
    "debt.opened": lambda base, data: _debt(base, data, opened=True),
    "debt.recovered": lambda base, data: _debt(base, data, opened=False),
    "webhook.endpoint.disabled": _endpoint_disabled,
    "refund.completed": _refund_completed,
}


def money(amount: str, currency: str) -> str:
    """An amount as a person reads it: `$12.50` in dollars, `12.50 EUR` otherwise."""
    if currency == "USD":
        return f"-${amount[1:]}" if amount.startswith("-") else f"${amount}"
    return f"{amount} {currency}"


def _money(data: Mapping[str, Any]) -> str:
    amount, currency = data.get("amount"), data.get("currency")
    if not isinstance(amount, str) or not _AMOUNT.match(amount):
        raise Malformed(f"amount {str(amount)[:24]!r} is not a decimal string")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise Malformed(f"currency {str(currency)[:8]!r} is not a currency code")
    return money(amount, currency)


def _is_zero(amount: str) -> bool:
    return bool(_AMOUNT.match(amount)) and Decimal(amount) == 0


def _source(data: Mapping[str, Any]) -> str:
    return "your card" if data.get("rail") == "card" else "your bank account"


def _code(data: Mapping[str, Any]) -> str | None:
    code = data.get("return_code")
    return code if isinstance(code, str) else None


def _shown_url(url: Any) -> str:
    """An endpoint's URL without what may be a secret in it: its user and password, its query
    and fragment (a token there is common)."""
    parts = urlsplit(str(url or ""))
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "your endpoint"
    host = parts.hostname + (f":{port}" if port else "")
    return f"{parts.scheme}://{host}{parts.path}"[:200]


def _uuid(value: Any, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Malformed(f"{name} {str(value)[:40]!r} is not a uuid") from None


def _optional_uuid(value: Any, name: str) -> uuid.UUID | None:
    return None if value is None else _uuid(value, name)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _subject(event: Mapping[str, Any]) -> str | None:
    subject = event.get("subject")
    return subject[:100] if isinstance(subject, str) and subject else None


def _time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"time {str(value)[:40]!r} is not an ISO timestamp") from None
    if moment.tzinfo is None:
        raise Malformed(f"time {str(value)[:40]!r} has no offset")
    return moment
