"""Checkout sessions: an amount a merchant's server asks to be paid once, before it expires, in
its app or as a dynamic QR code. open -> paid | expired | canceled, each once.

Of payers who try at once, one pays: a payment first claims the open session (one UPDATE of its
row: `claim_session`), and only the claimer's payment is made. A claim is void once it is
older than CLAIM_WINDOW_S, unless the payment it made is held by the risk engine: that one
keeps the session until it is decided (its pending row in merchant_payments says so). The
claimer's payment marks the session paid in the ledger's own transaction (merchants.records);
a refused one gives the claim up (`release_claim`). A session past its expiry with no live
claim is expired when it is read (or paid, or canceled), and by each process's sweep
(`keep_expiring`), whichever comes first: the UPDATE that expires it is conditional, so it
happens, and is told, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from billfold.events import outbox
from billfold.ledger.errors import IdempotencyKeyReused
from billfold.merchants import qr
from billfold.merchants.events import SessionFacts, session_event
from billfold.merchants.profiles import Merchant, MerchantSuspended, parse_id
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.platform.logging import get_logger
from billfold.platform.tasks import raise_if_cancelling
from billfold.wallet.money import parse_amount

log = get_logger("billfold.merchants.checkout")

EXPIRES_IN_S_DEFAULT = 900
EXPIRES_IN_S_MIN, EXPIRES_IN_S_MAX = 60, 86_400
MAX_REFERENCE = 64
MAX_KEY_LENGTH = 255
# The largest amount a dynamic code's field 54 holds (10 digits before the point: merchants.qr).
QR_MAX_MINOR = 10**12 - 1
# A claim this old is void (its payment would have been stored or refused long before),
# unless the payment it made is held.
CLAIM_WINDOW_S = 60
# The sweep: how often each process looks, and how many sessions it expires at a time.
SWEEP_INTERVAL_S = 5.0
SWEEP_BATCH = 500

SESSION_COLUMNS = """s.id, s.merchant_id, s.amount_minor, s.currency, s.reference, s.status,
s.expires_at, s.payment_id, s.created_at, s.closed_at"""
# A claim that still holds: recent, or its payment held for the risk engine's step-up or review
# (merchant_payments_session_idx serves the lookup).
LIVE_CLAIM = f"""(s.claimed_by IS NOT NULL AND (
    s.claimed_at > now() - make_interval(secs => {CLAIM_WINDOW_S})
    OR EXISTS (SELECT 1 FROM merchant_payments p
                WHERE p.session_id = s.id AND p.status <> 'DECLINED'
                  AND p.status IN ('PENDING_VERIFICATION', 'PENDING_REVIEW'))))"""

_CREATE = f"""
INSERT INTO checkout_sessions AS s (id, merchant_id, amount_minor, currency, reference,
                                    idempotency_key, request_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
RETURNING {SESSION_COLUMNS}
"""
_BY_KEY = f"""
SELECT {SESSION_COLUMNS}, s.request_hash FROM checkout_sessions s
 WHERE s.merchant_id = $1 AND s.idempotency_key = $2
"""
_BY_ID = f"SELECT {SESSION_COLUMNS} FROM checkout_sessions s WHERE s.id = $1"
_CLAIM = f"""
UPDATE checkout_sessions s SET claimed_by = $2, claim_key = $3, claimed_at = now()
 WHERE s.id = $1 AND s.status = 'open' AND s.expires_at > now()
   AND (s.claimed_by IS NULL OR (s.claimed_by = $2 AND s.claim_key = $3) OR NOT {LIVE_CLAIM})
RETURNING {SESSION_COLUMNS}
"""
_RELEASE = """
UPDATE checkout_sessions s SET claimed_by = NULL, claim_key = NULL, claimed_at = NULL
 WHERE s.id = $1 AND s.claimed_by = $2 AND s.claim_key = $3 AND s.status = 'open'
   AND NOT EXISTS (SELECT 1 FROM merchant_payments p
                    WHERE p.session_id = s.id AND p.status <> 'DECLINED'
                      AND p.status IN ('PENDING_VERIFICATION', 'PENDING_REVIEW'))
"""
# Expired: open, past its expiry, and no live claim. With the merchant's name and owner, for
# the event.
_EXPIRE = f"""
UPDATE checkout_sessions s SET status = 'expired', closed_at = now()
  FROM merchants m
 WHERE {{which}} AND m.id = s.merchant_id
   AND s.status = 'open' AND s.expires_at <= now() AND NOT {LIVE_CLAIM}
RETURNING {SESSION_COLUMNS}, m.name AS merchant_name, m.owner_id
"""
_EXPIRE_ONE = _EXPIRE.format(which="s.id = $1")
# Locked and skipped when locked, so that the sweeps of many processes share the work.
_EXPIRE_DUE = _EXPIRE.format(
    which=f"""s.id IN (SELECT s.id FROM checkout_sessions s
                 WHERE s.status = 'open' AND s.expires_at <= now() AND NOT {LIVE_CLAIM}
                 ORDER BY s.expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"""
)
_LOCK_OWN = f"""
SELECT {SESSION_COLUMNS}, s.expires_at <= now() AS due, {LIVE_CLAIM} AS live
  FROM checkout_sessions s WHERE s.id = $1 AND s.merchant_id = $2 FOR UPDATE
"""
_CANCEL = f"""
UPDATE checkout_sessions s SET status = 'canceled', closed_at = now()
 WHERE s.id = $1 RETURNING {SESSION_COLUMNS}
"""


class SessionNotOpen(BillfoldError):
    code = "session_not_open"
    status = 409
    title = "The checkout session is not open"


@dataclass(frozen=True)
class Session:
    id: uuid.UUID
    merchant_id: uuid.UUID
    amount_minor: int
    currency: str
    reference: str | None
    status: str
    expires_at: datetime
    payment_id: uuid.UUID | None
    created_at: datetime
    closed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Session:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def facts(self, merchant_name: str, owner_id: uuid.UUID) -> SessionFacts:
        return SessionFacts(
            self.id,
            self.merchant_id,
            merchant_name,
            owner_id,
            self.amount_minor,
            self.currency,
            self.reference,
            self.expires_at,
        )


@dataclass(frozen=True)
class NewSession:
    amount_minor: int
    reference: str | None
    expires_in_s: int
    key: str
    request_hash: bytes


def check_create_session(
    merchant: Merchant, amount: object, reference: object, expires_in_s: object, key: str | None
) -> NewSession:
    """The request validated: an Idempotency-Key, an amount a dynamic code can hold, a
    reference of 1 to 64 characters, an expiry of 60 s to a day (900 s if not given); the
    merchant active. Takes no lock."""
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            f"idempotency key is {len(key)} characters, at most {MAX_KEY_LENGTH}",
            field="idempotency_key",
        )
    amount_minor = parse_amount(amount, WALLET_CURRENCY)
    if amount_minor > QR_MAX_MINOR:
        most = format_amount(QR_MAX_MINOR, WALLET_CURRENCY)
        raise ValidationFailed(
            f"amount {format_amount(amount_minor, WALLET_CURRENCY)} is more than a checkout "
            f"session takes ({most})",
            field="amount",
        )
    if reference is not None and not (
        isinstance(reference, str) and 1 <= len(reference) <= MAX_REFERENCE
    ):
        raise ValidationFailed(
            f"reference must be 1 to {MAX_REFERENCE} characters", field="reference"
        )
    seconds = EXPIRES_IN_S_DEFAULT if expires_in_s is None else expires_in_s
    if type(seconds) is not int or not EXPIRES_IN_S_MIN <= seconds <= EXPIRES_IN_S_MAX:
        raise ValidationFailed(
            f"expires_in_s {str(seconds)[:30]!r} must be a whole number of seconds from "
            f"{EXPIRES_IN_S_MIN} to {EXPIRES_IN_S_MAX}",
            field="expires_in_s",
        )
    if not merchant.active:
        raise MerchantSuspended(f"merchant {merchant.id} is suspended: it opens no sessions")
    digest = hashlib.blake2b(
        orjson.dumps([amount_minor, WALLET_CURRENCY, reference, seconds]), digest_size=16
    ).digest()
    return NewSession(amount_minor, reference, seconds, key, digest)


async def do_create_session(
    pool: asyncpg.Pool, merchant: Merchant, new: NewSession
) -> tuple[dict[str, Any], bool]:
    """Open the session, told as `checkout.session.created`; with a key the merchant used
    before, the session it opened (as it stands now: True, a replay), or IdempotencyKeyReused
    for another request. Locks: the unique (merchant, key) index entry, for the INSERT: of
    concurrent requests with one key, one opens the session and the others read it."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            _CREATE,
            uuid.uuid4(),
            merchant.id,
            new.amount_minor,
            WALLET_CURRENCY,
            new.reference,
            new.key,
            new.request_hash,
            new.expires_in_s,
        )
        if row is not None:
            session = Session.from_row(row)
            created = session_event(
                "checkout.session.created", session.facts(merchant.name, merchant.owner_id), "open"
            )
            await outbox.write(conn, [created])
            return session_view(session, merchant), False
    first = await pool.fetchrow(_BY_KEY, merchant.id, new.key)
    if first is None:  # the conflicting row is never deleted
        raise LookupError(f"checkout session of key {new.key[:64]!r} vanished")
    if first["request_hash"] != new.request_hash:
        raise IdempotencyKeyReused(
            f"idempotency key '{new.key[:64]}' was used for another checkout session",
            idempotency_key=new.key[:64],
        )
    session = await settle_expiry(pool, Session.from_row(first), merchant)
    return session_view(session, merchant), True


async def get_session(
    pool: asyncpg.Pool | asyncpg.Connection, session_id: str | uuid.UUID
) -> Session:
    """A session by id, whoever's it is (the caller checks what it may see); 404 if none."""
    found = parse_id(session_id, "checkout session", "session_id")
    row = await pool.fetchrow(_BY_ID, found)
    if row is None:
        raise session_not_found(session_id)
    return Session.from_row(row)


async def show_session(pool: asyncpg.Pool, merchant: Merchant, session_id: str) -> dict[str, Any]:
    """One of the merchant's sessions (another's is a 404), expired if its time is up."""
    session = await get_session(pool, session_id)
    if session.merchant_id != merchant.id:
        raise session_not_found(session_id)
    return session_view(await settle_expiry(pool, session, merchant), merchant)


async def do_cancel_session(
    pool: asyncpg.Pool, merchant: Merchant, session_id: str
) -> dict[str, Any]:
    """Cancel an open session of the merchant's, told as `checkout.session.canceled`; a
    canceled one is answered as it is. 409 `session_not_open` for a paid or expired one (one
    whose time is up is expired now, and told), or one a payer is paying.

    Locks: the session's row (FOR UPDATE) from the check to the change."""
    found = parse_id(session_id, "checkout session", "session_id")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_LOCK_OWN, found, merchant.id)
        if row is None:
            raise session_not_found(session_id)
        session = Session.from_row(row)
        if session.status == "open" and row["due"] and not row["live"]:
            expired = await _expire(conn, _EXPIRE_ONE, found)
            session = expired[0] if expired else session
        elif session.status == "open" and not row["live"]:
            canceled = await conn.fetchrow(_CANCEL, found)
            assert canceled is not None  # the row is locked
            session = Session.from_row(canceled)
            told = session.facts(merchant.name, merchant.owner_id)
            await outbox.write(conn, [session_event("checkout.session.canceled", told, "canceled")])
            return session_view(session, merchant)
    if session.status == "canceled":
        return session_view(session, merchant)
    raise not_open(session.id, session.status)


async def claim_session(
    pool: asyncpg.Pool, session_id: uuid.UUID, payer_id: uuid.UUID, key: str
) -> Session:
    """Claim the open session for the payment `key` of `payer_id` (again, if it is theirs
    already); 409 `session_not_open` if it is paid, expired, canceled or being paid by
    another payment. One UPDATE, which takes the session's row lock for its duration: of
    concurrent payers, one claims it."""
    row = await pool.fetchrow(_CLAIM, session_id, payer_id, key)
    if row is not None:
        return Session.from_row(row)
    session = await get_session(pool, session_id)
    if session.status == "open" and session.expires_at <= datetime.now(UTC):
        async with pool.acquire() as conn, conn.transaction():
            expired = await _expire(conn, _EXPIRE_ONE, session_id)
        session = expired[0] if expired else session
    raise not_open(session.id, session.status)


async def release_claim(
    conn: asyncpg.Pool | asyncpg.Connection, session_id: uuid.UUID, payer_id: uuid.UUID, key: str
) -> None:
    """Give up a claim whose payment was not made (refused, or failed before the ledger), so
    that another payer may pay at once; a paid session, and one whose payment is held, keep
    theirs. One UPDATE of the session's row."""
    await conn.execute(_RELEASE, session_id, payer_id, key)


async def settle_expiry(pool: asyncpg.Pool, session: Session, merchant: Merchant) -> Session:
    """The session, expired now (and told) if it is open, its time is up and no payment holds
    it; otherwise as it was read."""
    if session.status != "open" or session.expires_at > datetime.now(UTC):
        return session
    async with pool.acquire() as conn, conn.transaction():
        expired = await _expire(conn, _EXPIRE_ONE, session.id)
    return expired[0] if expired else session


async def expire_due(pool: asyncpg.Pool, limit: int = SWEEP_BATCH) -> int:
    """Expire up to `limit` sessions whose time is up, each told as `checkout.session.expired`
    in the same transaction; how many. Locks: each session's row, skipping those another
    process (or a payer, or a read) holds, so that sweeps in several processes share the
    work and expire each session once."""
    async with pool.acquire() as conn, conn.transaction():
        return len(await _expire(conn, _EXPIRE_DUE, limit))


async def keep_expiring(pool: asyncpg.Pool, interval_s: float = SWEEP_INTERVAL_S) -> None:
    """Expire sessions whose time is up, every few seconds, for as long as the process serves.
    A failed sweep is logged and the next one tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            expired = await expire_due(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise_if_cancelling()
            log.warning("checkout session sweep failed", error=str(error))
            continue
        if expired:
            log.info("checkout sessions expired", count=expired)


async def _expire(conn: asyncpg.Connection, statement: str, argument: object) -> list[Session]:
    """Run an expiring statement on `conn` (in the caller's transaction) and tell of each
    session it expired."""
    rows = await conn.fetch(statement, argument)
    sessions = [Session.from_row(row) for row in rows]
    await outbox.write(
        conn,
        [
            session_event(
                "checkout.session.expired",
                session.facts(row["merchant_name"], row["owner_id"]),
                "expired",
            )
            for session, row in zip(sessions, rows, strict=True)
        ],
    )
    return sessions


def session_view(session: Session, merchant: Merchant) -> dict[str, Any]:
    """A session as its merchant sees it, with the dynamic QR code a payer scans."""
    payload = qr.Payload(
        merchant.id,
        merchant.mcc,
        session.currency,
        merchant.country,
        merchant.name,
        merchant.city,
        session.amount_minor,
        str(session.id),
    )
    return {
        "session_id": str(session.id),
        "merchant_id": str(session.merchant_id),
        "status": session.status,
        "amount": format_amount(session.amount_minor, session.currency),
        "currency": session.currency,
        "reference": session.reference,
        "qr_payload": qr.encode(payload),
        "expires_at": session.expires_at.isoformat(),
        "payment_id": str(session.payment_id) if session.payment_id else None,
        "created_at": session.created_at.isoformat(),
        "closed_at": session.closed_at.isoformat() if session.closed_at else None,
    }


def session_not_found(session_id: object) -> NotFound:
    text = str(session_id)[:40]
    return NotFound(f"checkout session '{text}' does not exist", session_id=text)


def not_open(session_id: uuid.UUID, status: str) -> SessionNotOpen:
    if status == "open":
        return SessionNotOpen(
            f"checkout session {session_id} is being paid by another payment",
            session_id=str(session_id),
            session_status=status,
        )
    return SessionNotOpen(
        f"checkout session {session_id} is {status}",
        session_id=str(session_id),
        session_status=status,
    )
