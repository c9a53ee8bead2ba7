"""Starting money movements: ACH add-funds, card add-funds, cash-out (and a merchant's payout, a
cash-out from its merchant account).

Each starts the same way: under the user's row lock (so limits hold under concurrency), a
request already made with the same Idempotency-Key is answered again; otherwise the limits are
checked and the movement recorded. The ledger then moves or holds the money under keys derived
from the movement's id, so re-running a step never moves money twice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.funding import rails
from billfold.funding.ach import add_banking_days
from billfold.funding.bank_accounts import access_bank_account, next_trace_number
from billfold.funding.cards import CardProcessor, access_card, card_token
from billfold.funding.events import tell
from billfold.funding.limits import check_limits, instant_minor
from billfold.funding.service import (
    FUNDING_COLUMNS,
    BankAccountNotVerified,
    CardDeclined,
    Funding,
    FundingTransfer,
    Payee,
    RiskHold,
)
from billfold.ledger.errors import IdempotencyKeyReused
from billfold.ledger.model import Leg
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import NotFound
from billfold.wallet import debts
from billfold.wallet.refusals import in_wallet_terms
from billfold.wallet.users import User

CLIENT = "funding"
ADD_FUNDS = "add_funds"
CASH_OUT = "cash_out"
PAYOUT = "payout"


async def check_source(
    funding: Funding, user: User, bank_account_id: str | None, card_id: str | None
) -> None:
    """Refuse a source the user can't move money with (another's or an unknown bank account or
    card, a bank account not verified) before the movement is scored, so that a request
    refused for its input leaves nothing behind, not even an assessment. The movement checks
    it again."""
    if card_id is not None:
        await access_card(funding.pool, user.id, card_id)
    elif bank_account_id is not None:
        await _verified_bank(funding, user, bank_account_id)


async def add_funds_ach(
    funding: Funding,
    user: User,
    amount_minor: int,
    bank_account_id: str,
    key: str,
    held: RiskHold | None = None,
) -> tuple[FundingTransfer, bool]:
    """Pull money from a verified bank account: pending until it settles, but for what the
    availability policy advances. Held by risk: recorded, nothing booked. Returns the movement
    and whether it is a replay."""
    bank = await _verified_bank(funding, user, bank_account_id)
    async with funding.user_locks.hold(user.id), funding.pool.acquire() as conn, conn.transaction():
        found = await _existing(conn, user, key, ("ach", ADD_FUNDS, amount_minor, bank["id"]))
        if found is None:
            tier_name = await check_limits(conn, funding.settings, user.id, ADD_FUNDS, amount_minor)
            advance = await instant_minor(conn, funding.settings, user.id, tier_name, amount_minor)
            row = await conn.fetchrow(
                f"""
                INSERT INTO funding_transfers (id, user_id, rail, purpose, bank_account_id,
                    amount_minor, currency, advance_minor, estimated_completion, trace_number,
                    idempotency_key, risk_status, assessment_id)
                VALUES ($9, $1, 'ach', 'add_funds', $2, $3, $4, $5, $6, $7, $8, $10, $11)
                RETURNING {FUNDING_COLUMNS}
                """,
                user.id,
                bank["id"],
                amount_minor,
                WALLET_CURRENCY,
                advance,
                estimated_completion(funding),
                await next_trace_number(conn, funding.settings.ach_odfi_routing),
                key,
                movement_id(user, key),
                *_risk_columns(held),
            )
            assert row is not None
            found = FundingTransfer.from_row(row)
            await tell(conn, "pending", found)
            replayed = False
        else:
            replayed = True
    with in_wallet_terms(user.account_id, amount_minor, WALLET_CURRENCY):
        return await book_add_funds(funding, user.account_id, found), replayed


async def book_add_funds(funding: Funding, wallet_id: int, ft: FundingTransfer) -> FundingTransfer:
    """The ledger side of an ACH add-funds: the pending hold and the advance. Idempotent;
    nothing while risk holds the movement."""
    if ft.hold_id is not None or ft.status != "pending" or ft.risk_status is not None:
        return ft
    meta = {"funding_id": str(ft.id), "user_id": str(ft.user_id)}
    hold_id = None
    if ft.amount_minor > ft.advance_minor:
        hold = await funding.ledger.hold(
            CLIENT,
            f"{ft.id}:hold",
            debit_account_id=funding.accounts.bank_clearing,
            credit_account_id=wallet_id,
            amount_minor=ft.amount_minor - ft.advance_minor,
            currency=ft.currency,
            code=ADD_FUNDS,
            metadata=meta,
        )
        hold_id = hold.id
    if ft.advance_minor:
        await funding.ledger.move(
            CLIENT,
            f"{ft.id}:advance",
            debit_account_id=funding.accounts.bank_clearing,
            credit_account_id=wallet_id,
            amount_minor=ft.advance_minor,
            currency=ft.currency,
            code=ADD_FUNDS,
            metadata={**meta, "advance": True},
        )
    row = await funding.pool.fetchrow(
        f"UPDATE funding_transfers SET hold_id = $2 WHERE id = $1 RETURNING {FUNDING_COLUMNS}",
        ft.id,
        hold_id,
    )
    assert row is not None
    return FundingTransfer.from_row(row)


async def cash_out(
    funding: Funding,
    user: User,
    amount_minor: int,
    bank_account_id: str,
    key: str,
    held: RiskHold | None = None,
    payee: Payee | None = None,
) -> tuple[FundingTransfer, bool]:
    """Push money to a verified bank account: held at once, posted when it settles. Held by
    risk, the money is reserved all the same, but the movement waits to be released. With a
    `payee`, a payout: the money leaves the payee's account rather than the user's wallet."""
    bank = await _verified_bank(funding, user, bank_account_id)
    purpose = PAYOUT if payee is not None else CASH_OUT
    source = payee.account_id if payee is not None else user.account_id
    async with funding.user_locks.hold(user.id), funding.pool.acquire() as conn, conn.transaction():
        found = await _existing(conn, user, key, ("ach", purpose, amount_minor, bank["id"]))
        if found is not None:
            return found, True
        await check_limits(conn, funding.settings, user.id, purpose, amount_minor)
        funding_id = movement_id(user, key)
        # The hold first: a refusal (insufficient funds, frozen, money owed) rolls this
        # transaction back, so nothing is recorded and the request changed nothing. The
        # ledger keeps the refusal under the hold's key: a retry gets it again, as a replay.
        meta = {"funding_id": str(funding_id), "user_id": str(user.id)}
        if payee is not None:
            meta["merchant_id"] = str(payee.merchant_id)
        with in_wallet_terms(source, amount_minor, WALLET_CURRENCY):
            hold = await funding.ledger.hold(
                CLIENT,
                f"{funding_id}:hold",
                debit_account_id=source,
                credit_account_id=funding.accounts.bank_clearing,
                amount_minor=amount_minor,
                currency=WALLET_CURRENCY,
                code=purpose,
                metadata=meta,
            )
        row = await conn.fetchrow(
            f"""
            INSERT INTO funding_transfers (id, user_id, rail, purpose, bank_account_id,
                amount_minor, currency, hold_id, estimated_completion, trace_number,
                idempotency_key, risk_status, assessment_id, account_id, merchant_id)
            VALUES ($1, $2, 'ach', $12, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $14)
            RETURNING {FUNDING_COLUMNS}
            """,
            funding_id,
            user.id,
            bank["id"],
            amount_minor,
            WALLET_CURRENCY,
            hold.id,
            estimated_completion(funding),
            await next_trace_number(conn, funding.settings.ach_odfi_routing),
            key,
            *_risk_columns(held),
            purpose,
            payee.account_id if payee is not None else None,
            payee.merchant_id if payee is not None else None,
        )
        assert row is not None
        movement = FundingTransfer.from_row(row)
        await tell(conn, "pending", movement)
        return movement, False


async def add_funds_card(
    funding: Funding,
    processor: CardProcessor,
    user: User,
    amount_minor: int,
    card_id: str,
    key: str,
    held: RiskHold | None = None,
) -> tuple[FundingTransfer, bool]:
    """Charge a card (amount plus fee) and credit the wallet at once: settled when charged
    (`funding.settled`, in the transaction that records it). Held by risk: recorded, the card
    not charged (funding.risk_holds charges it once released)."""
    card = await access_card(funding.pool, user.id, card_id)
    fee = card_fee_minor(funding, amount_minor)
    async with funding.user_locks.hold(user.id), funding.pool.acquire() as conn, conn.transaction():
        found = await _existing(conn, user, key, ("card", ADD_FUNDS, amount_minor, card["id"]))
        if found is None and held is not None:
            await check_limits(conn, funding.settings, user.id, ADD_FUNDS, amount_minor)
            row = await conn.fetchrow(
                f"""
                INSERT INTO funding_transfers (id, user_id, rail, purpose, card_id, amount_minor,
                    fee_minor, currency, idempotency_key, risk_status, assessment_id)
                VALUES ($1, $2, 'card', 'add_funds', $3, $4, $5, $6, $7, $8, $9)
                RETURNING {FUNDING_COLUMNS}
                """,
                movement_id(user, key),
                user.id,
                card["id"],
                amount_minor,
                fee,
                WALLET_CURRENCY,
                key,
                *_risk_columns(held),
            )
            assert row is not None
            return FundingTransfer.from_row(row), False
        if found is None:
            await check_limits(conn, funding.settings, user.id, ADD_FUNDS, amount_minor)
            # Keyed by the user's own idempotency key: a retry after a crash here is answered by
            # the processor as the first charge was, never charged twice.
            token = card_token(funding.keys, card)
            charge = await processor.charge(token, amount_minor + fee, f"{user.id}:{key}", user.id)
            if not charge.approved:
                declined = CardDeclined(
                    f"card ending {card['last4']} was declined ({charge.decline_code})",
                    decline_code=charge.decline_code,
                    card_id=str(card["id"]),
                )
                # The processor keeps a charge's outcome under its key, as the ledger does:
                # a retry of a declined add-funds is its answer again, and says so.
                declined.replayed = charge.replayed
                raise declined
            row = await conn.fetchrow(
                f"""
                INSERT INTO funding_transfers (id, user_id, rail, purpose, card_id, amount_minor,
                    fee_minor, currency, status, settled_at, idempotency_key)
                VALUES ($7, $1, 'card', 'add_funds', $2, $3, $4, $5, 'settled', now(), $6)
                RETURNING {FUNDING_COLUMNS}
                """,
                user.id,
                card["id"],
                amount_minor,
                fee,
                WALLET_CURRENCY,
                key,
                movement_id(user, key),
            )
            assert row is not None
            found, replayed = FundingTransfer.from_row(row), False
            await tell(conn, "settled", found)
        else:
            replayed = True
    with in_wallet_terms(user.account_id, amount_minor, WALLET_CURRENCY):
        return await book_card_funding(funding, user, found), replayed


async def book_card_funding(funding: Funding, user: User, ft: FundingTransfer) -> FundingTransfer:
    """Credit the wallet with a charged card add-funds. Idempotent; nothing before the card is
    charged (`pending`: held by risk, or released and not charged yet) or once declined."""
    if ft.posted_id is not None or ft.status in ("pending", "declined"):
        return ft
    legs = [
        (funding.accounts.card_clearing, -(ft.amount_minor + ft.fee_minor)),
        (user.account_id, ft.amount_minor),
    ]
    if ft.fee_minor:
        legs.append((funding.accounts.fee_revenue, ft.fee_minor))
    transfer = await funding.ledger.transfer(
        CLIENT,
        f"{ft.id}:capture",
        [Leg(account, amount, ft.currency) for account, amount in legs],
        code=ADD_FUNDS,
        metadata={"funding_id": str(ft.id), "user_id": str(user.id), "fee_minor": ft.fee_minor},
    )
    row = await funding.pool.fetchrow(
        f"UPDATE funding_transfers SET posted_id = $2 WHERE id = $1 RETURNING {FUNDING_COLUMNS}",
        ft.id,
        transfer.id,
    )
    assert row is not None
    # Money that comes in repays what the user owes first.
    await debts.collect(funding.pool, funding.ledger, user.id, user.account_id)
    return FundingTransfer.from_row(row)


async def access_movement(pool: asyncpg.Pool, user: User, funding_id: str) -> FundingTransfer:
    """An add-funds, cash-out or payout of the user's, by its uuid; any other id (another's, a
    micro-deposit, one that does not exist) is a 404."""
    ft = await rails.load(pool, funding_id)
    if ft is None or ft.user_id != user.id or ft.purpose == "micro_deposit":
        raise NotFound(f"transfer '{funding_id[:40]}' does not exist", transfer_id=funding_id[:40])
    return ft


async def exists(pool: asyncpg.Pool, user_id: uuid.UUID, key: str) -> bool:
    """Whether a movement was made with this key (its retry is answered, not scored again)."""
    found = await pool.fetchval(
        "SELECT 1 FROM funding_transfers WHERE user_id = $1 AND idempotency_key = $2", user_id, key
    )
    return found is not None


def movement_id(user: User, key: str) -> uuid.UUID:
    """A movement's id follows from the user's idempotency key, and the ledger keys from the id:
    a retry after a failure anywhere meets the ledger's record of what the first try did (a
    cash-out's hold made before a crash is found again, not made twice or left orphaned)."""
    return uuid.uuid5(_MOVEMENTS, f"{user.id}:{key}")


_MOVEMENTS = uuid.UUID("6f1d2b7e-4c1a-4e7b-9a51-0b2f6d9c3e11")


def card_fee_minor(funding: Funding, amount_minor: int) -> int:
    """Basis points of the amount, rounded up to the cent, plus the fixed part."""
    settings = funding.settings
    return -(-amount_minor * settings.card_fee_bps // 10_000) + settings.card_fee_fixed_minor


def estimated_completion(funding: Funding) -> Any:
    today = datetime.now(UTC).date()
    return add_banking_days(today, funding.settings.ach_settlement_days)


async def _verified_bank(funding: Funding, user: User, bank_account_id: str) -> asyncpg.Record:
    bank = await access_bank_account(funding.pool, user.id, bank_account_id)
    if bank["status"] != "verified":
        raise BankAccountNotVerified(
            f"bank account '{bank_account_id}' is {bank['status'].replace('_', ' ')}; "
            "confirm its micro-deposits first",
            bank_account_id=bank_account_id,
        )
    return bank


async def _existing(
    conn: asyncpg.Connection, user: User, key: str, request: tuple[str, str, int, uuid.UUID]
) -> FundingTransfer | None:
    """Lock the user (limits and keys are checked one request at a time per user) and find a
    movement made with this key; the same key with another request is refused."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
    row = await conn.fetchrow(
        f"SELECT {FUNDING_COLUMNS} FROM funding_transfers WHERE user_id = $1"
        " AND idempotency_key = $2",
        user.id,
        key,
    )
    if row is None:
        return None
    found = FundingTransfer.from_row(row)
    source = found.bank_account_id or found.card_id
    if (found.rail, found.purpose, found.amount_minor, source) != request:
        raise IdempotencyKeyReused(
            f"idempotency key '{key[:64]}' was used for another request", idempotency_key=key
        )
    return found


def _risk_columns(held: RiskHold | None) -> tuple[str | None, int | None]:
    return (held.status, held.assessment_id) if held is not None else (None, None)
