"""Cards: the processor tokenises the number; Billfold keeps the token (sealed: it charges the
card), brand, last4 and expiry.

`CardProcessor` is what Billfold asks of a processor. `SandboxProcessor` is the product's own
stand-in (on by default on the embedded stack): test numbers that approve, decline, or fail for
insufficient funds. It keeps no card number either, only what a number behaves like.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from billfold.platform.crypto import KeyRing, Sealed
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.platform.strict import ascii_digits

# `token` is set only on rows written before migration 0014 and not yet sealed.
CARD_COLUMNS = (
    "id, user_id, token, token_enc, token_dek, key_id, brand, last4, exp_month, exp_year,"
    " status, created_at"
)
MAX_TOKEN_LENGTH = 100
INDEX_PURPOSE = "cards.token"
SEAL_BATCH = 500

# Test numbers and what they do; any other valid number approves.
SANDBOX_BEHAVIOUR = {
    "4000000000000002": "decline",
    "4000000000009995": "insufficient_funds",
}


class CardProcessorUnavailable(BillfoldError):
    code = "card_processor_unavailable"
    status = 503
    title = "No card processor is configured"


@dataclass(frozen=True)
class CardDetails:
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class Charge:
    approved: bool
    decline_code: str | None = None
    replayed: bool = False  # the outcome of an earlier charge with the same idempotency key


class CardProcessor(Protocol):
    """A processor's tokens belong to the customer who tokenised the card (the user): another
    customer's token is as unknown as one never made."""

    async def describe(self, token: str, customer: uuid.UUID) -> CardDetails | None: ...

    async def charge(
        self, token: str, amount_minor: int, idempotency_key: str, customer: uuid.UUID
    ) -> Charge: ...


class NoProcessor:
    """Where no processor is configured: card requests get a clear 503."""

    async def describe(self, token: str, customer: uuid.UUID) -> CardDetails | None:
        raise CardProcessorUnavailable("card funding is not configured on this deployment")

    async def charge(
        self, token: str, amount_minor: int, idempotency_key: str, customer: uuid.UUID
    ) -> Charge:
        raise CardProcessorUnavailable("card funding is not configured on this deployment")


class SandboxProcessor:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def tokenize(
        self, customer: uuid.UUID, number: str, exp_month: int, exp_year: int, cvc: str
    ) -> dict[str, Any]:
        """Check the card as a processor would and hand out a token, the customer's alone.
        Errors never repeat the number or the CVC."""
        digits = number.replace(" ", "").replace("-", "")
        if not ascii_digits(digits, 19) or len(digits) < 12 or not luhn_ok(digits):
            raise ValidationFailed("card number is not a valid card number", field="number")
        check_expiry(exp_month, exp_year)
        if not (ascii_digits(cvc, 4) and len(cvc) >= 3):
            raise ValidationFailed("cvc must be 3 or 4 digits", field="cvc")
        token = f"tok_{secrets.token_urlsafe(18)}"
        details = CardDetails(card_brand(digits), digits[-4:], exp_month, exp_year)
        await self._pool.execute(
            """INSERT INTO sandbox_card_tokens
                   (token, brand, last4, exp_month, exp_year, behaviour, user_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            token,
            details.brand,
            details.last4,
            exp_month,
            exp_year,
            SANDBOX_BEHAVIOUR.get(digits, "approve"),
            customer,
        )
        return {"token": token, **details.__dict__}

    async def describe(self, token: str, customer: uuid.UUID) -> CardDetails | None:
        row = await self._pool.fetchrow(
            """SELECT brand, last4, exp_month, exp_year FROM sandbox_card_tokens
                WHERE token = $1 AND user_id = $2""",
            token,
            customer,
        )
        return CardDetails(**dict(row)) if row else None

    async def charge(
        self, token: str, amount_minor: int, idempotency_key: str, customer: uuid.UUID
    ) -> Charge:
        """Declines another customer's token as `invalid_token`, as an unknown one. A token
        made before tokens had owners (migration 0022) charges for the card stored with it."""
        behaviour = await self._pool.fetchval(
            """SELECT behaviour FROM sandbox_card_tokens
                WHERE token = $1 AND (user_id = $2 OR user_id IS NULL)""",
            token,
            customer,
        )
        approved = behaviour == "approve"
        decline = None if approved else (behaviour or "invalid_token")
        row = await self._pool.fetchrow(
            """
            WITH new AS (
                INSERT INTO sandbox_card_charges (idempotency_key, token, amount_minor, approved,
                                                  decline_code)
                VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING
                RETURNING approved, decline_code)
            SELECT approved, decline_code, false AS replayed FROM new
            UNION ALL
            SELECT approved, decline_code, true FROM sandbox_card_charges
             WHERE idempotency_key = $1
            LIMIT 1
            """,
            idempotency_key,
            token,
            amount_minor,
            approved,
            decline,
        )
        assert row is not None
        return Charge(row["approved"], row["decline_code"], row["replayed"])


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or "2221" <= digits[:4] <= "2720":
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if digits.startswith("6011") or digits.startswith("65"):
        return "discover"
    return "unknown"


def check_expiry(exp_month: int, exp_year: int) -> None:
    if not 1 <= exp_month <= 12:
        raise ValidationFailed(f"exp_month {exp_month} is not a month", field="exp_month")
    now = datetime.now(UTC)
    if not now.year <= exp_year <= now.year + 20 or (exp_year, exp_month) < (now.year, now.month):
        raise ValidationFailed(
            f"card expiry {exp_month:02d}/{exp_year} is in the past or too far ahead",
            field="exp_year",
        )


def sealed_context(card_id: uuid.UUID) -> str:
    return f"cards.token:{card_id}"


async def add_card(
    pool: asyncpg.Pool, keys: KeyRing, processor: CardProcessor, user_id: uuid.UUID, token: str
) -> dict[str, Any]:
    """Store a tokenised card: the token, sealed to its row, and what may be shown. Errors do
    not repeat the token: it charges the card. Another user's token is unknown, as to the
    processor; a token stored already is refused only to the user whose token it is."""
    if not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        raise ValidationFailed(f"token must be 1 to {MAX_TOKEN_LENGTH} characters", field="token")
    details = await processor.describe(token, user_id)
    if details is None:
        raise ValidationFailed("the token is unknown to the processor", field="token")
    card_id = uuid.uuid4()
    sealed = keys.seal(token, sealed_context(card_id))
    row = await pool.fetchrow(
        f"""
        INSERT INTO cards (id, user_id, token_enc, token_dek, key_id, token_index, brand, last4,
                           exp_month, exp_year)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (token_index) DO NOTHING
        RETURNING {CARD_COLUMNS}
        """,
        card_id,
        user_id,
        sealed.ciphertext,
        sealed.wrapped_key,
        sealed.key_id,
        keys.blind_index(token, INDEX_PURPOSE),
        details.brand,
        details.last4,
        details.exp_month,
        details.exp_year,
    )
    if row is None:
        raise ValidationFailed("the token is already used by a card", field="token")
    return card_view(row)


def card_token(keys: KeyRing, row: asyncpg.Record) -> str:
    """The processor token of a card row (its id, token, token_enc, token_dek and key_id)."""
    if row["token_enc"] is None:
        plain: str = row["token"]  # written before migration 0014, not yet sealed
        return plain
    sealed = Sealed(row["token_enc"], row["token_dek"], row["key_id"])
    return keys.open(sealed, sealed_context(row["id"]))


async def seal_plaintext_tokens(pool: asyncpg.Pool, keys: KeyRing) -> int:
    """Seal the tokens of cards written before migration 0014; the number sealed. Every
    process runs it when it starts, before it serves: two at once seal a row once (each
    update requires the plaintext still there)."""
    sealed_rows = 0
    while True:
        rows = await pool.fetch(
            "SELECT id, token FROM cards WHERE token IS NOT NULL ORDER BY id LIMIT $1",
            SEAL_BATCH,
        )
        if not rows:
            return sealed_rows
        updates = []
        for row in rows:
            sealed = keys.seal(row["token"], sealed_context(row["id"]))
            index = keys.blind_index(row["token"], INDEX_PURPOSE)
            updates.append((row["id"], sealed.ciphertext, sealed.wrapped_key, sealed.key_id, index))
        done: int = await pool.fetchval(
            """WITH done AS (
                   UPDATE cards c SET token = NULL, token_enc = u.enc, token_dek = u.dek,
                                      key_id = u.key_id, token_index = u.index
                     FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::text[], $5::bytea[])
                          AS u(id, enc, dek, key_id, index)
                    WHERE c.id = u.id AND c.token IS NOT NULL
                   RETURNING 1)
               SELECT count(*) FROM done""",
            *map(list, zip(*updates, strict=True)),
        )
        sealed_rows += done


async def access_card(pool: asyncpg.Pool, user_id: uuid.UUID, card_id: str) -> asyncpg.Record:
    missing = NotFound(f"card '{card_id[:40]}' does not exist", card_id=card_id[:40])
    try:
        parsed = uuid.UUID(card_id)
    except ValueError:
        raise missing from None
    row = await pool.fetchrow(
        f"SELECT {CARD_COLUMNS} FROM cards WHERE id = $1 AND user_id = $2 AND status = 'active'",
        parsed,
        user_id,
    )
    if row is None:
        raise missing
    return row


async def list_cards(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {CARD_COLUMNS} FROM cards WHERE user_id = $1 AND status = 'active'"
        " ORDER BY created_at",
        user_id,
    )
    return [card_view(r) for r in rows]


async def remove_card(pool: asyncpg.Pool, user_id: uuid.UUID, card_id: str) -> None:
    row = await access_card(pool, user_id, card_id)
    await pool.execute("UPDATE cards SET status = 'removed' WHERE id = $1", row["id"])


def card_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "card_id": str(row["id"]),
        "brand": row["brand"],
        "last4": row["last4"],
        "exp_month": row["exp_month"],
        "exp_year": row["exp_year"],
        "status": row["status"],
    }
