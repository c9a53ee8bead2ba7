"""Demo data: a bank clearing account and a few wallets holding money, with some history."""

from __future__ import annotations

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import AccountKind

DEMO_PEOPLE = ("alice", "bob", "carol")
OPENING_BALANCE_MINOR = 500_00


async def seed(pool: asyncpg.Pool, settings: Settings) -> None:
    """Open the demo accounts and fund them once; running it again changes nothing."""
    bank = await open_account(
        pool,
        kind=AccountKind.SYSTEM,
        owner="system",
        currency="USD",
        name="system:bank_clearing:USD",
        overdraft_limit_minor=10**15,
    )
    ledger = Ledger(pool, settings)
    await ledger.start()
    try:
        wallets = {}
        for person in DEMO_PEOPLE:
            wallet = await open_account(
                pool,
                kind=AccountKind.WALLET,
                owner=f"demo:{person}",
                currency="USD",
                name=f"demo:{person}:USD",
            )
            wallets[person] = wallet.id
            # Idempotency keys make the seed safe to repeat: a second run replays these.
            await ledger.move(
                "demo",
                f"fund-{person}",
                debit_account_id=bank.id,
                credit_account_id=wallet.id,
                amount_minor=OPENING_BALANCE_MINOR,
                currency="USD",
                code="add_funds",
            )
        await ledger.move(
            "demo",
            "alice-pays-bob-dinner",
            debit_account_id=wallets["alice"],
            credit_account_id=wallets["bob"],
            amount_minor=42_50,
            currency="USD",
            code="p2p",
            metadata={"note": "dinner"},
        )
    finally:
        await ledger.stop()
