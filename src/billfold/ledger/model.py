"""The ledger's vocabulary: legs, commands (what a caller asks) and transfers (what happened)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from billfold.ledger.errors import InvalidTransfer

# Bounds on everything that grows: legs in one transfer, key and code lengths.
MAX_LEGS = 64
MAX_KEY_LENGTH = 255
MAX_CODE_LENGTH = 64
# Amounts stay well inside BIGINT so that sums of a batch's legs cannot overflow.
MAX_AMOUNT_MINOR = 10**15


# Transfers that collect what a user owes (a returned deposit's claw-back, repayments of the
# debt it left). They may debit a frozen or owing account: collecting is why those are blocked.
COLLECTION_CODES = frozenset({"clawback", "debt_repayment"})


# A row of another table that a command brings for its batch's transaction: written with the
# command's outcome, in the same statement, so that it is stored if and only if the outcome is,
# and once (a replay of the key writes nothing). The name is a statement the Ledger was given
# (its `side_statements`), or the outbox's, which every Ledger has (events.outbox.with_command:
# an event told of the command); the values are its parameters, one element each of its
# arrays, and the ledger adds a last one: whether it refused the command (its outcome an error).
SideRow = tuple[str, tuple[Any, ...]]


class Kind(StrEnum):
    TRANSFER = "transfer"
    HOLD = "hold"
    POST = "post"
    VOID = "void"
    REVERSAL = "reversal"


class AccountKind(StrEnum):
    WALLET = "wallet"
    MERCHANT = "merchant"
    RECEIVABLE = "receivable"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a transfer: a signed amount (positive credits the account) in a currency."""

    account_id: int
    amount_minor: int
    currency: str


@dataclass(slots=True)
class Command:
    """One request to the engine. Built by the Ledger's public methods, validated on creation."""

    kind: Kind
    client_id: str
    key: str
    code: str
    legs: tuple[Leg, ...] = ()
    target_id: int | None = None  # the hold (post, void) or the original (reversal)
    amount_minor: int | None = None  # partial post or reversal; None means all of it
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    # Not part of the request (hash_command leaves them out): a retry may bring other rows (a
    # new score), and the first request's rows stand.
    rows: tuple[SideRow, ...] = ()
    request_hash: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        check_command(self)
        self.request_hash = hash_command(self)


def check_command(cmd: Command) -> None:
    """Check what needs no database; raise InvalidTransfer naming the offending value."""
    if not 1 <= len(cmd.key) <= MAX_KEY_LENGTH:
        raise InvalidTransfer(
            f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters, got {len(cmd.key)}",
            field="idempotency_key",
        )
    if not 1 <= len(cmd.client_id) <= MAX_KEY_LENGTH:
        raise InvalidTransfer(f"client id '{cmd.client_id[:40]}' is empty or too long")
    if not 1 <= len(cmd.code) <= MAX_CODE_LENGTH:
        raise InvalidTransfer(
            f"transfer code '{cmd.code[:80]}' must be 1 to {MAX_CODE_LENGTH} chars"
        )
    if cmd.amount_minor is not None and not 0 < cmd.amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidTransfer(f"amount {cmd.amount_minor} must be positive", field="amount_minor")
    if cmd.kind in (Kind.TRANSFER, Kind.HOLD):
        check_legs(cmd.legs)
    elif cmd.target_id is None:
        raise InvalidTransfer(f"a {cmd.kind} must name the transfer it applies to")
    if cmd.expires_at is not None and cmd.kind is not Kind.HOLD:
        raise InvalidTransfer("only a hold can expire", field="expires_at")


def check_legs(legs: tuple[Leg, ...]) -> None:
    if not 2 <= len(legs) <= MAX_LEGS:
        raise InvalidTransfer(f"a transfer needs 2 to {MAX_LEGS} legs, got {len(legs)}")
    totals: dict[str, int] = {}
    seen: set[int] = set()
    for leg in legs:
        if leg.amount_minor == 0 or not -MAX_AMOUNT_MINOR <= leg.amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidTransfer(
                f"leg amount {leg.amount_minor} on account {leg.account_id} must be non-zero "
                f"and at most {MAX_AMOUNT_MINOR} in size",
                account_id=leg.account_id,
            )
        if leg.account_id in seen:
            raise InvalidTransfer(
                f"account {leg.account_id} appears twice in one transfer", account_id=leg.account_id
            )
        seen.add(leg.account_id)
        check_currency(leg.currency)
        totals[leg.currency] = totals.get(leg.currency, 0) + leg.amount_minor
    for currency, total in totals.items():
        if total != 0:
            raise InvalidTransfer(f"legs in {currency} sum to {total}, not zero", currency=currency)


_CURRENCY = re.compile(r"[A-Z]{3}")
# Codes already seen to be well formed; a handful in practice, bounded all the same.
_CURRENCIES_SEEN: set[str] = set()


def check_currency(currency: str) -> None:
    if currency in _CURRENCIES_SEEN:
        return
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidTransfer(f"currency '{currency}' is not an ISO 4217 code", field="currency")
    if len(_CURRENCIES_SEEN) < 1024:
        _CURRENCIES_SEEN.add(currency)


def hash_command(cmd: Command) -> bytes:
    """A digest of everything that defines the request, so a reused key with other content shows."""
    canonical = (
        cmd.kind.value,
        cmd.code,
        [(leg.account_id, leg.amount_minor, leg.currency) for leg in cmd.legs],
        cmd.target_id,
        cmd.amount_minor,
        cmd.expires_at.isoformat() if cmd.expires_at else None,
        cmd.metadata,
    )
    return hashlib.blake2b(
        orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


class AccountBalance(NamedTuple):
    """An account's balances as a commit left them; `version` orders them (higher is newer)."""

    account_id: int
    posted_minor: int
    pending_debits_minor: int
    pending_credits_minor: int
    version: int


class Entry(NamedTuple):
    """One leg as booked. A named tuple: the engine makes two per transfer, so they must be cheap,
    and entries of one transfer sort by account id."""

    account_id: int
    account_seq: int
    amount_minor: int
    currency: str
    pending: bool
    balance_after_minor: int


@dataclass(slots=True)
class Transfer:
    """A committed transfer with its entries; `replayed` when an idempotent retry found it."""

    id: int
    kind: Kind
    code: str
    amount_minor: int
    currency: str
    pending_id: int | None
    reverses_id: int | None
    expires_at: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime
    entries: tuple[Entry, ...]
    replayed: bool = False

    def entry_for(self, account_id: int) -> Entry | None:
        for entry in self.entries:
            if entry.account_id == account_id:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    kind: AccountKind
    owner: str
    name: str | None
    currency: str
    posted_minor: int
    pending_debits_minor: int
    pending_credits_minor: int
    overdraft_limit_minor: int
    max_balance_minor: int | None
    version: int
    created_at: datetime

    @property
    def available_minor(self) -> int:
        return self.posted_minor - self.pending_debits_minor
