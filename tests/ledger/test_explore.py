"""The ledger explorer's reads: a transfer with its entries (summing to zero), and an account's
entries with their running balance, newest first, page by page without repeats."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from billfold.ledger import explore
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import AccountNotFound, TransferNotFound
from billfold.platform.errors import ValidationFailed
from tests.ledger.conftest import OpenWallet


async def test_a_transfer_shows_its_entries_and_an_account_pages_its_running_balance(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    a, b = await open_wallet(1_000), await open_wallet()
    moves = [
        await ledger.move(
            "t",
            str(uuid.uuid4()),
            debit_account_id=a,
            credit_account_id=b,
            amount_minor=100 + n,
            currency="USD",
            code="p2p",
        )
        for n in range(5)
    ]

    shown = await explore.transfer_with_entries(pool, moves[0].id)
    assert [(e["account_id"], e["amount_minor"]) for e in shown["entries"]] == [
        (a, -100),
        (b, 100),
    ]
    assert shown["entries_sum_minor"] == 0
    pages, cursor = [], None
    while True:
        page = await explore.account_entries(pool, b, cursor, limit=2)
        pages.append([(e["account_seq"], e["balance_after_minor"]) for e in page["entries"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [[(5, 510), (4, 406)], [(3, 303), (2, 201)], [(1, 100)]]
    assert page["account"]["posted_minor"] == 510
    with pytest.raises(TransferNotFound):
        await explore.transfer_with_entries(pool, 1)
    with pytest.raises(AccountNotFound):
        await explore.account_entries(pool, 2**62, None)
    with pytest.raises(ValidationFailed):
        await explore.account_entries(pool, b, "not-a-cursor")
