"""What every funding path shares: the system accounts, the keys, the errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.funding.cards import seal_plaintext_tokens
from billfold.ledger.accounts import open_clearing_account, open_system_account
from billfold.ledger.engine import Ledger
from billfold.platform.crypto import KeyRing
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import BillfoldError
from billfold.platform.logging import get_logger

log = get_logger("billfold.funding")


@dataclass(frozen=True)
class SystemAccounts:
    bank_clearing: int  # mirrors money at our bank: ACH in and out
    card_clearing: int  # mirrors money owed to us by the card processor
    fee_revenue: int
    micro_deposits: int  # what verifying bank accounts costs


class UserLocks:
    """One asyncio lock per user with a money movement starting in this process.

    A movement holds a pooled connection while it waits for the user's row lock; without this,
    many requests of one user at once could hold every connection, waiting for the one request
    that needs another connection to finish. So they queue here, holding none.
    """

    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user_id: uuid.UUID) -> AsyncIterator[None]:
        lock, waiting = self._locks.get(user_id, (asyncio.Lock(), 0))
        self._locks[user_id] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._locks[user_id]
            if waiting == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, waiting - 1)


@dataclass
class Funding:
    """The funding context's dependencies, built once per process."""

    pool: asyncpg.Pool
    ledger: Ledger
    settings: Settings
    keys: KeyRing
    accounts: SystemAccounts
    user_locks: UserLocks = field(default_factory=UserLocks)

    @classmethod
    async def start(cls, pool: asyncpg.Pool, ledger: Ledger, settings: Settings) -> Funding:
        accounts = SystemAccounts(
            bank_clearing=(await open_clearing_account(pool, WALLET_CURRENCY)).id,
            card_clearing=(
                await open_system_account(pool, "card_clearing", WALLET_CURRENCY, overdraft=True)
            ).id,
            fee_revenue=(
                await open_system_account(pool, "fee_revenue", WALLET_CURRENCY, overdraft=False)
            ).id,
            micro_deposits=(
                await open_system_account(pool, "micro_deposits", WALLET_CURRENCY, overdraft=True)
            ).id,
        )
        keys = KeyRing.from_settings(settings)
        # Card tokens stored before migration 0014 are sealed before this process serves.
        sealed = await seal_plaintext_tokens(pool, keys)
        if sealed:
            log.info("card tokens sealed", count=sealed)
        return cls(pool, ledger, settings, keys, accounts)


@dataclass(frozen=True)
class FundingTransfer:
    id: uuid.UUID
    user_id: uuid.UUID
    rail: str
    purpose: str
    bank_account_id: uuid.UUID | None
    card_id: uuid.UUID | None
    amount_minor: int
    fee_minor: int
    currency: str
    advance_minor: int
    status: str
    hold_id: int | None
    posted_id: int | None
    estimated_completion: Any
    trace_number: str | None
    return_code: str | None
    settled_at: datetime | None
    returned_at: datetime | None
    clawed_back_minor: int
    owed_minor: int
    idempotency_key: str
    created_at: datetime
    risk_status: str | None  # what a movement the risk engine held waits for; None: released
    assessment_id: int | None  # the assessment that held it
    pin_failures: int
    account_id: int | None  # a payout's: the ledger account its money left (else the wallet)
    merchant_id: uuid.UUID | None  # a payout's: the merchant it is for

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> FundingTransfer:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


FUNDING_COLUMNS = ", ".join(FundingTransfer.__dataclass_fields__)
# The movements that send money out to a bank account, held from an account of ours until
# they settle: a cash-out (from the wallet) and a payout (from a merchant account).
OUTGOING = ("cash_out", "payout")


@dataclass(frozen=True)
class Payee:
    """Whom a payout is for: a merchant (its id, which funding only records and tells) and the
    ledger account its money leaves."""

    merchant_id: uuid.UUID
    account_id: int


@dataclass(frozen=True)
class RiskHold:
    """A risk verdict that holds a movement back from its rail (see funding.risk_holds)."""

    status: str  # what it waits for: pending_verification | pending_review
    assessment_id: int


class BankAccountNotVerified(BillfoldError):
    code = "bank_account_not_verified"
    status = 422
    title = "Bank account not verified"


class LimitExceeded(BillfoldError):
    code = "limit_exceeded"
    status = 422
    title = "Over a funding limit"


class CardDeclined(BillfoldError):
    code = "card_declined"
    status = 402
    title = "Card declined"
