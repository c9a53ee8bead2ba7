"""Merchants' business profiles: a person opens one, with a merchant account of its own in the
ledger, and sees only their own."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from billfold.ledger.accounts import open_account
from billfold.ledger.model import AccountKind
from billfold.merchants import qr
from billfold.platform import db
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed

# How many business profiles one person may open.
MAX_PER_OWNER = 20
MERCHANT_COLUMNS = """id, owner_id, account_id, name, mcc, city, country, status,
payout_schedule, payout_bank_account_id, created_at"""
_MCC = re.compile(r"[0-9]{4}")
_COUNTRY = re.compile(r"[A-Z]{2}")


class MerchantLimitReached(BillfoldError):
    code = "merchant_limit_reached"
    status = 409
    title = "Too many business profiles"


class MerchantSuspended(BillfoldError):
    code = "merchant_suspended"
    status = 409
    title = "The merchant is suspended"


@dataclass(frozen=True)
class Merchant:
    id: uuid.UUID
    owner_id: uuid.UUID
    account_id: int  # the merchant account in the ledger (USD)
    name: str
    mcc: str
    city: str
    country: str
    status: str
    payout_schedule: str
    payout_bank_account_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Merchant:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class NewMerchant:
    name: str
    mcc: str
    city: str
    country: str


def check_create_merchant(name: str, mcc: str, city: str, country: str) -> NewMerchant:
    """The profile's fields as the QR code holds them (printable ASCII; name up to 25, city up
    to 15 characters; a 4-digit MCC; an ISO 3166 alpha-2 country). Takes no lock."""
    for field, value, longest in (("name", name, qr.NAME_MAX), ("city", city, qr.CITY_MAX)):
        text = value.strip()
        if not 1 <= len(text) <= longest or not qr.printable(text):
            raise ValidationFailed(
                f"{field} '{value[:40]}' must be 1 to {longest} printable ASCII characters",
                field=field,
            )
    if not _MCC.fullmatch(mcc):
        raise ValidationFailed(
            f"mcc '{mcc[:10]}' is not a 4-digit merchant category code", field="mcc"
        )
    if not _COUNTRY.fullmatch(country):
        raise ValidationFailed(
            f"country '{country[:10]}' is not an ISO 3166 alpha-2 code", field="country"
        )
    return NewMerchant(name.strip(), mcc, city.strip(), country)


async def do_create_merchant(pool: asyncpg.Pool, owner_id: uuid.UUID, new: NewMerchant) -> Merchant:
    """Open the profile and its merchant account in one transaction.

    Locks: the owner's users row (FOR UPDATE) while their profiles are counted, so that
    concurrent sign-ups of one person stay within MAX_PER_OWNER."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner_id)
        count = await conn.fetchval("SELECT count(*) FROM merchants WHERE owner_id = $1", owner_id)
        if count >= MAX_PER_OWNER:
            raise MerchantLimitReached(f"a person may open at most {MAX_PER_OWNER} merchants")
        merchant_id = uuid.uuid4()
        account = await open_account(
            conn,
            kind=AccountKind.MERCHANT,
            owner=f"merchant:{merchant_id}",
            currency=WALLET_CURRENCY,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO merchants (id, owner_id, account_id, name, mcc, city, country)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {MERCHANT_COLUMNS}""",
            merchant_id,
            owner_id,
            account.id,
            new.name,
            new.mcc,
            new.city,
            new.country,
        )
    assert row is not None
    return Merchant.from_row(row)


def parse_id(text: str | uuid.UUID, what: str, field: str) -> uuid.UUID:
    """An id of ours as a uuid; an id in any other form names nothing (404 naming it)."""
    if isinstance(text, uuid.UUID):
        return text
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{what} '{text[:40]}' does not exist", **{field: text[:40]}) from None


def merchant_not_found(merchant_id: object) -> NotFound:
    text = str(merchant_id)[:40]
    return NotFound(f"merchant '{text}' does not exist", merchant_id=text)


async def get_merchant(
    pool: asyncpg.Pool | asyncpg.Connection, merchant_id: str | uuid.UUID
) -> Merchant:
    """A merchant by id, whoever owns it (the caller checks access); 404 if there is none."""
    found = parse_id(merchant_id, "merchant", "merchant_id")
    query = f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1"
    # From a pool, its connection goes back without a reset (platform.db): a payment reads it.
    row = await (
        db.fetchrow(pool, query, found)
        if isinstance(pool, asyncpg.Pool)
        else pool.fetchrow(query, found)
    )
    if row is None:
        raise merchant_not_found(merchant_id)
    return Merchant.from_row(row)


async def owned_merchant(
    pool: asyncpg.Pool | asyncpg.Connection, owner_id: uuid.UUID, merchant_id: str | uuid.UUID
) -> Merchant:
    """The merchant if `owner_id` owns it; 404 otherwise (another's is not told apart from none)."""
    merchant = await get_merchant(pool, merchant_id)
    if merchant.owner_id != owner_id:
        raise merchant_not_found(merchant_id)
    return merchant


async def list_merchants(pool: asyncpg.Pool, owner_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {MERCHANT_COLUMNS} FROM merchants WHERE owner_id = $1 ORDER BY created_at, id",
        owner_id,
    )
    return [merchant_view(Merchant.from_row(row)) for row in rows]


def static_payload(merchant: Merchant) -> str:
    """The text of the merchant's static QR code (EMVCo MPM): who is paid; the payer types the
    amount. The profile's fields were checked for the code when it was made."""
    return qr.encode(
        qr.Payload(
            merchant.id,
            merchant.mcc,
            WALLET_CURRENCY,
            merchant.country,
            merchant.name,
            merchant.city,
        )
    )


def merchant_view(merchant: Merchant) -> dict[str, Any]:
    return {
        "merchant_id": str(merchant.id),
        "name": merchant.name,
        "mcc": merchant.mcc,
        "city": merchant.city,
        "country": merchant.country,
        "status": merchant.status,
        "payout_schedule": merchant.payout_schedule,
        "payout_bank_account_id": str(merchant.payout_bank_account_id)
        if merchant.payout_bank_account_id
        else None,
        "created_at": merchant.created_at.isoformat(),
    }
