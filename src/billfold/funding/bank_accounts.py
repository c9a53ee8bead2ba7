"""Linked bank accounts: linking (number encrypted at rest), micro-deposit verification, unlinking.

Only the last four digits ever leave the service; the full number is decrypted for one purpose,
writing the NACHA file the bank receives.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from billfold.funding.ach import routing_checksum_ok
from billfold.funding.service import Funding
from billfold.platform.crypto import Sealed
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.risk.flags import raise_flag
from billfold.wallet.money import parse_amount

ACCOUNT_TYPES = ("checking", "savings")
MAX_VERIFY_FAILURES = 3
MAX_HOLDER_NAME = 100
_ROUTING = re.compile(r"[0-9]{9}")
_ACCOUNT = re.compile(r"[0-9]{4,17}")
MICRO_DEPOSIT = "micro_deposit"
INDEX_PURPOSE = "bank_account"
# A bank's returns name an entry by its trace number for up to 60 days after settlement (an
# unauthorised debit); a number stays with its entry until twice that after it was sent.
TRACE_HELD = timedelta(days=120)

BANK_COLUMNS = """
id, user_id, routing_number, account_last4, account_type, holder_name, status, verify_failures,
micro_amounts, created_at, verified_at
"""


class BankAccountExists(BillfoldError):
    code = "bank_account_already_linked"
    status = 409
    title = "Bank account already linked"


class BankAccountLocked(BillfoldError):
    code = "bank_account_locked"
    status = 409
    title = "Bank account locked after too many wrong verification amounts"


class VerificationFailed(BillfoldError):
    code = "verification_failed"
    status = 422
    title = "Wrong micro-deposit amounts"


@dataclass(frozen=True)
class LinkRequest:
    routing_number: str
    account_number: str
    holder_name: str
    account_type: str


def check_link_bank_account(
    routing_number: str, account_number: str, holder_name: str, account_type: str
) -> LinkRequest:
    routing = routing_number.strip()
    if not _ROUTING.fullmatch(routing) or not routing_checksum_ok(routing):
        raise ValidationFailed(
            f"routing number '{routing[:20]}' is not a valid ABA routing number",
            field="routing_number",
        )
    number = account_number.strip()
    if not _ACCOUNT.fullmatch(number):
        # The value is not repeated: it may be a real account number with a typo.
        raise ValidationFailed(
            f"account number must be 4 to 17 digits (got {len(number)} characters)",
            field="account_number",
        )
    name = " ".join(holder_name.split())
    if not 1 <= len(name) <= MAX_HOLDER_NAME:
        raise ValidationFailed(
            f"account holder name must be 1 to {MAX_HOLDER_NAME} characters",
            field="account_holder_name",
        )
    if account_type not in ACCOUNT_TYPES:
        raise ValidationFailed(
            f"account type '{account_type[:20]}' is not one of {', '.join(ACCOUNT_TYPES)}",
            field="account_type",
        )
    return LinkRequest(routing, number, name, account_type)


def sealed_context(bank_account_id: uuid.UUID) -> str:
    return f"bank_accounts.account_number:{bank_account_id}"


async def do_link_bank_account(
    funding: Funding, user_id: uuid.UUID, request: LinkRequest
) -> dict[str, Any]:
    """Store the account (its number sealed to its row), flag a number other users linked too,
    and send the two micro-deposits."""
    bank_account_id = uuid.uuid4()
    sealed = funding.keys.seal(request.account_number, sealed_context(bank_account_id))
    index = funding.keys.blind_index(
        f"{request.routing_number}:{request.account_number}", INDEX_PURPOSE
    )
    amounts = [1 + secrets.randbelow(99), 1 + secrets.randbelow(99)]
    async with funding.pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO bank_accounts (id, user_id, routing_number, account_last4,
                    account_number_enc, account_number_dek, key_id, account_index, holder_name,
                    account_type, micro_amounts)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                RETURNING {BANK_COLUMNS}
                """,
                bank_account_id,
                user_id,
                request.routing_number,
                request.account_number[-4:],
                sealed.ciphertext,
                sealed.wrapped_key,
                sealed.key_id,
                index,
                request.holder_name,
                request.account_type,
                amounts,
            )
        except asyncpg.UniqueViolationError:
            raise BankAccountExists(
                f"bank account ending {request.account_number[-4:]} is already linked",
                last4=request.account_number[-4:],
            ) from None
        await _flag_shared(conn, user_id, bank_account_id, index)
        odfi = funding.settings.ach_odfi_routing
        funding_ids = [
            await _micro_deposit(conn, odfi, user_id, bank_account_id, a) for a in amounts
        ]
    # The micro-deposits cost us money when they go out; booked once, under the account's id.
    total = sum(amounts)
    await funding.ledger.move(
        "funding",
        f"micro:{bank_account_id}",
        debit_account_id=funding.accounts.micro_deposits,
        credit_account_id=funding.accounts.bank_clearing,
        amount_minor=total,
        currency=WALLET_CURRENCY,
        code=MICRO_DEPOSIT,
        metadata={"bank_account_id": str(bank_account_id), "funding_ids": funding_ids},
    )
    assert row is not None
    return bank_account_view(row)


async def _flag_shared(
    conn: asyncpg.Connection, user_id: uuid.UUID, bank_account_id: uuid.UUID, index: bytes
) -> None:
    """The same bank account linked by other users is a risk signal, not an error."""
    others = await conn.fetch(
        "SELECT DISTINCT user_id FROM bank_accounts WHERE account_index = $1 AND user_id <> $2",
        index,
        user_id,
    )
    if others:
        await raise_flag(
            conn,
            user_id,
            "shared_bank_account",
            {
                "bank_account_id": str(bank_account_id),
                "other_user_ids": [str(r["user_id"]) for r in others[:20]],
            },
        )


async def _micro_deposit(
    conn: asyncpg.Connection,
    odfi: str,
    user_id: uuid.UUID,
    bank_account_id: uuid.UUID,
    amount: int,
) -> str:
    funding_id = await conn.fetchval(
        """
        INSERT INTO funding_transfers (user_id, rail, purpose, bank_account_id, amount_minor,
            currency, trace_number, idempotency_key)
        VALUES ($1, 'ach', 'micro_deposit', $2, $3, $4, $5, 'micro:' || gen_random_uuid())
        RETURNING id
        """,
        user_id,
        bank_account_id,
        amount,
        WALLET_CURRENCY,
        await next_trace_number(conn, odfi),
    )
    return str(funding_id)


async def next_trace_number(conn: asyncpg.Connection, odfi_routing: str) -> str:
    """Our bank's 8-digit id and a 7-digit sequence (NACHA trace numbers), which starts over
    after 9,999,999: the next one no entry unsent or sent within TRACE_HELD holds (migration
    0015)."""
    trace: str = await conn.fetchval("SELECT next_ach_trace($1, $2)", odfi_routing, TRACE_HELD)
    return trace


async def access_bank_account(
    pool: asyncpg.Pool | asyncpg.Connection,
    user_id: uuid.UUID,
    bank_account_id: str,
    *,
    lock: bool = False,
) -> asyncpg.Record:
    """The user's own linked account; any other id answers 404, as a missing one does."""
    missing = NotFound(
        f"bank account '{bank_account_id[:40]}' does not exist",
        bank_account_id=bank_account_id[:40],
    )
    try:
        parsed = uuid.UUID(bank_account_id)
    except ValueError:
        raise missing from None
    row = await pool.fetchrow(
        f"SELECT {BANK_COLUMNS} FROM bank_accounts WHERE id = $1 AND user_id = $2"
        f" AND status <> 'unlinked'{' FOR UPDATE' if lock else ''}",
        parsed,
        user_id,
    )
    if row is None:
        raise missing
    return row


async def do_verify_bank_account(
    funding: Funding, user_id: uuid.UUID, bank_account_id: str, amounts: list[object]
) -> dict[str, Any]:
    """Confirm the two micro-deposit amounts (in any order). Three wrong tries lock it."""
    if not isinstance(amounts, list) or len(amounts) != 2:
        raise ValidationFailed("amounts must be a list of the two deposit amounts", field="amounts")
    given = sorted(parse_amount(a, WALLET_CURRENCY, f"amounts.{i}") for i, a in enumerate(amounts))
    async with funding.pool.acquire() as conn, conn.transaction():
        row = await access_bank_account(conn, user_id, bank_account_id, lock=True)
        if row["status"] == "verified":
            return bank_account_view(row)
        if row["status"] == "locked":
            raise BankAccountLocked(
                f"bank account '{bank_account_id}' is locked", bank_account_id=bank_account_id
            )
        if given == sorted(row["micro_amounts"]):
            row = await conn.fetchrow(
                f"""UPDATE bank_accounts SET status = 'verified', verified_at = now()
                     WHERE id = $1 RETURNING {BANK_COLUMNS}""",
                row["id"],
            )
            assert row is not None
            return bank_account_view(row)
        failures = row["verify_failures"] + 1
        await conn.execute(
            """UPDATE bank_accounts SET verify_failures = $2::int,
                      status = CASE WHEN $2::int >= $3::int THEN 'locked' ELSE status END
                WHERE id = $1""",
            row["id"],
            failures,
            MAX_VERIFY_FAILURES,
        )
    shown = ", ".join(format_amount(a, WALLET_CURRENCY) for a in given)
    if failures >= MAX_VERIFY_FAILURES:
        raise BankAccountLocked(
            f"amounts {shown} are wrong; the bank account is now locked",
            bank_account_id=bank_account_id,
        )
    raise VerificationFailed(
        f"amounts {shown} do not match the deposits",
        attempts_left=MAX_VERIFY_FAILURES - failures,
    )


async def list_bank_accounts(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {BANK_COLUMNS} FROM bank_accounts WHERE user_id = $1 AND status <> 'unlinked'"
        " ORDER BY created_at",
        user_id,
    )
    return [bank_account_view(r) for r in rows]


async def do_unlink_bank_account(
    pool: asyncpg.Pool | asyncpg.Connection,
    user_id: uuid.UUID,
    bank_account_id: str,
    reason: str = "user",
) -> None:
    row = await access_bank_account(pool, user_id, bank_account_id)
    await unlink(pool, row["id"], reason)


async def unlink(
    pool: asyncpg.Pool | asyncpg.Connection, bank_account_id: uuid.UUID, reason: str
) -> None:
    """Unlink by id (the user's request, or a return code's action); once is enough."""
    await pool.execute(
        """UPDATE bank_accounts SET status = 'unlinked', unlinked_at = now(), unlink_reason = $2
            WHERE id = $1 AND status <> 'unlinked'""",
        bank_account_id,
        reason,
    )


async def account_number(funding: Funding, bank_account_id: uuid.UUID) -> str:
    """The full number, decrypted: for the NACHA file only."""
    row = await funding.pool.fetchrow(
        "SELECT account_number_enc, account_number_dek, key_id FROM bank_accounts WHERE id = $1",
        bank_account_id,
    )
    if row is None:
        raise NotFound(f"bank account '{bank_account_id}' does not exist")
    sealed = Sealed(row["account_number_enc"], row["account_number_dek"], row["key_id"])
    return funding.keys.open(sealed, sealed_context(bank_account_id))


def bank_account_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "bank_account_id": str(row["id"]),
        "last4": row["account_last4"],
        "account_type": row["account_type"],
        "status": row["status"],
        "routing_number": row["routing_number"],
        "account_holder_name": row["holder_name"],
        "created_at": row["created_at"].isoformat(),
    }
