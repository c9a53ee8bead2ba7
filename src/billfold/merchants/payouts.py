"""Payouts: a merchant's money sent to a verified bank account of its owner's, as an ACH credit
over funding's cash-out rail (funding.actions.do_payout), by hand (here) or once a day
(merchants.schedule); and the merchant's payout settings.

The owner asks, with their own token: the bank account is theirs. A payout is held from the
merchant account at once, goes out with the next ACH file, and settles or comes back as a
cash-out does (a return puts the money back in the merchant account). It is scored as the
owner's cash-out, and one the risk checks hold waits for the owner's PIN or a review
(`POST /transfers/{payout_id}/verify`). Each change is told as `payout.*` (funding.events).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billfold.funding import actions
from billfold.funding import payouts as kept
from billfold.funding.bank_accounts import access_bank_account
from billfold.funding.service import BankAccountNotVerified, Funding, FundingTransfer, Payee
from billfold.funding.views import STATUSES
from billfold.merchants.profiles import (
    MERCHANT_COLUMNS,
    Merchant,
    MerchantSuspended,
    owned_merchant,
    parse_id,
)
from billfold.platform import cursors
from billfold.platform.currency import format_amount
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.risk.gate import Gate, Origin
from billfold.wallet.users import User

SCHEDULES = ("manual", "daily")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
_CURSOR = "p"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PayoutAsked:
    """A payout as the API read it: the path's merchant, the body, the Idempotency-Key."""

    merchant_id: str
    amount: object
    bank_account_id: str | None
    idempotency_key: str | None


async def request_payout(
    funding: Funding, gate: Gate, owner: User, asked: PayoutAsked, origin: Origin
) -> tuple[dict[str, Any], bool]:
    """`check_payout`, then `do_payout`: the payout's public form, and whether an earlier
    request with the key made it."""
    checked = await check_payout(funding.pool, owner, asked)
    ft, replayed = await do_payout(funding, gate, checked, origin)
    return payout_view(ft), replayed


async def check_payout(
    pool: asyncpg.Pool, owner: User, asked: PayoutAsked
) -> actions.CheckedPayout:
    """The merchant the owner's (404 otherwise) and active; the request validated
    (funding.actions.check_payout). Takes no lock."""
    merchant = await owned_merchant(pool, owner.id, asked.merchant_id)
    if not merchant.active:
        suspended = f"merchant {merchant.id} is suspended: nothing is paid out"
        raise MerchantSuspended(suspended, merchant_id=str(merchant.id))
    return actions.check_payout(
        actions.PayoutRequest(
            owner, payee(merchant), asked.amount, asked.bank_account_id, asked.idempotency_key
        )
    )


async def do_payout(
    funding: Funding, gate: Gate, checked: actions.CheckedPayout, origin: Origin
) -> actions.Made:
    """Make the payout (funding.actions.do_payout, whose locks it takes: the owner's debt
    lock, then their row). Insufficient money in the merchant account refuses it, nothing
    moved."""
    return await actions.do_payout(funding, gate, checked, origin)


def payee(merchant: Merchant) -> Payee:
    return Payee(merchant.id, merchant.account_id)


async def list_payouts(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of a merchant's payouts, newest first, and the next page's cursor (None on the
    last); 404 unless the merchant is the owner's."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit {limit} must be 1 to {MAX_LIMIT}", field="limit")
    after = _position(cursors.decode_pair(_CURSOR, cursor)) if cursor else None
    merchant = await owned_merchant(pool, owner_id, merchant_id)
    found = await kept.payouts_page(pool, merchant.id, after, limit + 1)
    page = found[:limit]
    return {
        "payouts": [payout_view(ft) for ft in page],
        "next_cursor": _cursor(page[-1]) if len(found) > limit else None,
    }


def _cursor(ft: FundingTransfer) -> str:
    micros = (ft.created_at - EPOCH) // timedelta(microseconds=1)
    # A payout always has its hold (migration 0028).
    return cursors.encode_pair(_CURSOR, micros, ft.hold_id or 0)


def _position(pair: tuple[int, int]) -> tuple[datetime, int]:
    try:
        return EPOCH + timedelta(microseconds=pair[0]), pair[1]
    except OverflowError:
        raise ValidationFailed("cursor is not one this API gave out", field="cursor") from None


async def get_payout(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str, payout_id: str
) -> dict[str, Any]:
    """A payout of the owner's merchant; 404 for any other id, as for one that does not
    exist."""
    merchant = await owned_merchant(pool, owner_id, merchant_id)
    found = await kept.find_payout(pool, merchant.id, parse_id(payout_id, "payout", "payout_id"))
    if found is None:
        raise NotFound(f"payout '{payout_id[:40]}' does not exist", payout_id=payout_id[:40])
    return payout_view(found)


def payout_view(ft: FundingTransfer) -> dict[str, Any]:
    """The public form of a payout: its bank account by id only (never its number)."""
    return {
        "payout_id": str(ft.id),
        "merchant_id": str(ft.merchant_id),
        "amount": format_amount(ft.amount_minor, ft.currency),
        "currency": ft.currency,
        "status": STATUSES[ft.risk_status or ft.status],
        "bank_account_id": str(ft.bank_account_id),
        "estimated_completion": ft.estimated_completion.isoformat()
        if ft.estimated_completion
        else None,
        "return_code": ft.return_code,
        "created_at": ft.created_at.isoformat(),
    }


@dataclass(frozen=True)
class PayoutSettings:
    """What a PATCH of a merchant changes: None (not given) leaves a setting as it is; a bank
    account given as null (`bank_given`) clears it."""

    schedule: str | None
    bank_account_id: str | None
    bank_given: bool


def check_payout_settings(
    schedule: str | None, bank_account_id: str | None, bank_given: bool
) -> PayoutSettings:
    """The settings validated as far as they can be without the merchant. Takes no lock."""
    if schedule is None and not bank_given:
        raise ValidationFailed(
            "give payout_schedule or payout_bank_account_id to change", field="payout_schedule"
        )
    if schedule is not None and schedule not in SCHEDULES:
        raise ValidationFailed(
            f"payout_schedule '{schedule[:20]}' is not one of {', '.join(SCHEDULES)}",
            field="payout_schedule",
        )
    return PayoutSettings(schedule, bank_account_id, bank_given)


async def do_update_payout_settings(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str, change: PayoutSettings
) -> Merchant:
    """Set the merchant's payout schedule and bank account. A bank account must be a verified
    one of the owner's (another's is a 404); daily payouts need one (422 naming
    payout_bank_account_id).

    Locks: the merchant's row (FOR UPDATE), from reading its settings to writing them."""
    async with pool.acquire() as conn, conn.transaction():
        owned = await owned_merchant(conn, owner_id, merchant_id)
        locked = await conn.fetchrow(
            f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1 FOR UPDATE", owned.id
        )
        merchant = Merchant.from_row(locked)
        schedule = change.schedule or merchant.payout_schedule
        bank_id = merchant.payout_bank_account_id
        if change.bank_given:
            given = change.bank_account_id
            bank_id = await _verified_bank_id(conn, owner_id, given) if given else None
        elif change.schedule == "daily" and bank_id is not None:
            # Turning daily payouts on checks the account they will go to is still good.
            bank_id = await _verified_bank_id(conn, owner_id, str(bank_id))
        if bank_id is None and schedule == "daily":
            raise ValidationFailed(
                "daily payouts need payout_bank_account_id: a verified bank account of yours",
                field="payout_bank_account_id",
            )
        row = await conn.fetchrow(
            f"""UPDATE merchants SET payout_schedule = $2, payout_bank_account_id = $3,
                       updated_at = now()
                 WHERE id = $1 RETURNING {MERCHANT_COLUMNS}""",
            merchant.id,
            schedule,
            bank_id,
        )
    assert row is not None  # locked above
    return Merchant.from_row(row)


async def _verified_bank_id(
    conn: asyncpg.Connection, owner_id: uuid.UUID, bank_account_id: str
) -> uuid.UUID:
    bank = await access_bank_account(conn, owner_id, bank_account_id)
    if bank["status"] != "verified":
        raise BankAccountNotVerified(
            f"payout_bank_account_id '{bank_account_id}' is {bank['status'].replace('_', ' ')};"
            " confirm its micro-deposits first",
            field="payout_bank_account_id",
            bank_account_id=bank_account_id,
        )
    return uuid.UUID(str(bank["id"]))
