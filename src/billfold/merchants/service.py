"""The merchants' payment path's parts: the database, the ledger, the fee revenue account and
the fee's settings, made once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_system_account
from billfold.ledger.engine import Ledger
from billfold.platform.currency import WALLET_CURRENCY


@dataclass(frozen=True)
class Merchants:
    """What the payment path works with: the database, the ledger, the fee revenue account
    (opened once, at start-up) and the fee's settings."""

    pool: asyncpg.Pool
    ledger: Ledger
    fee_revenue: int
    fee_bps: int
    fee_fixed_minor: int

    @classmethod
    async def start(cls, pool: asyncpg.Pool, ledger: Ledger, settings: Settings) -> Merchants:
        account = await open_system_account(pool, "fee_revenue", WALLET_CURRENCY, overdraft=False)
        return cls(
            pool,
            ledger,
            account.id,
            settings.merchant_fee_bps,
            settings.merchant_fee_fixed_minor,
        )
