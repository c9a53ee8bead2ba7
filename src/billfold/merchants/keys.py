"""Merchants' API keys: a merchant's server signs in with `Authorization: Bearer sk_...` and acts
for that merchant only. The secret is shown once, when it is made; only its SHA-256 is kept
(the secret is 32 random bytes, so no salt or slow hash is needed to keep it from being
guessed). Each request looks the key up, so a revoked key is refused at once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import asyncpg

from billfold.merchants.profiles import MERCHANT_COLUMNS, Merchant, owned_merchant, parse_id
from billfold.platform.errors import BillfoldError, NotFound
from billfold.platform.security import Unauthenticated

PREFIX = "sk_"
SHOWN_CHARS = 8  # of the secret after its prefix, to tell keys apart in a list
MAX_KEYS = 20  # live keys per merchant
# last_used_at is written at most this often per key, so that a busy key costs no write a
# request.
USED_EVERY_S = 60


class KeyLimitReached(BillfoldError):
    code = "api_key_limit_reached"
    status = 409
    title = "Too many API keys"


def is_merchant_secret(token: str) -> bool:
    """Whether a bearer token is a merchant key (rather than a person's access token)."""
    return token.startswith(PREFIX)


def digest(secret: str) -> bytes:
    """What the table keeps of a key's secret."""
    return hashlib.sha256(secret.encode()).digest()


async def do_create_key(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str
) -> dict[str, Any]:
    """A new key for a merchant of the owner's; the answer holds its secret, shown this once.

    Locks: the merchant's row (FOR UPDATE) while its live keys are counted."""
    secret = PREFIX + secrets.token_urlsafe(32)
    async with pool.acquire() as conn, conn.transaction():
        merchant = await owned_merchant(conn, owner_id, merchant_id)
        await conn.execute("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE", merchant.id)
        live = await conn.fetchval(
            "SELECT count(*) FROM merchant_api_keys WHERE merchant_id = $1 AND revoked_at IS NULL",
            merchant.id,
        )
        if live >= MAX_KEYS:
            raise KeyLimitReached(f"a merchant may have at most {MAX_KEYS} live keys; revoke one")
        row = await conn.fetchrow(
            """INSERT INTO merchant_api_keys (merchant_id, prefix, secret_hash)
               VALUES ($1, $2, $3) RETURNING id, prefix, created_at, last_used_at, revoked_at""",
            merchant.id,
            secret[: len(PREFIX) + SHOWN_CHARS],
            digest(secret),
        )
    assert row is not None
    return {**key_view(row), "secret": secret}


async def list_keys(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str
) -> list[dict[str, Any]]:
    """The merchant's keys, revoked ones too, oldest first; never a secret."""
    merchant = await owned_merchant(pool, owner_id, merchant_id)
    rows = await pool.fetch(
        """SELECT id, prefix, created_at, last_used_at, revoked_at FROM merchant_api_keys
            WHERE merchant_id = $1 ORDER BY created_at, id""",
        merchant.id,
    )
    return [key_view(row) for row in rows]


async def do_revoke_key(
    pool: asyncpg.Pool, owner_id: uuid.UUID, merchant_id: str, key_id: str
) -> None:
    """Revoke a key: the next request with it is refused (401). Revoking a revoked key changes
    nothing. Takes the key's row lock for its one UPDATE."""
    merchant = await owned_merchant(pool, owner_id, merchant_id)
    key = parse_id(key_id, "API key", "key_id")
    found = await pool.fetchval(
        """UPDATE merchant_api_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE id = $1 AND merchant_id = $2 RETURNING id""",
        key,
        merchant.id,
    )
    if found is None:
        raise NotFound(f"API key '{key_id[:40]}' does not exist", key_id=key_id[:40])


async def authenticate(pool: asyncpg.Pool, secret: str) -> Merchant:
    """The merchant a live key names; 401 for an unknown or revoked key (not told apart)."""
    columns = ", ".join(f"m.{c.strip()}" for c in MERCHANT_COLUMNS.split(","))
    row = await pool.fetchrow(
        f"""SELECT {columns}, k.id AS key_id,
                   k.last_used_at IS NULL
                   OR k.last_used_at < now() - make_interval(secs => $2) AS stale
              FROM merchant_api_keys k JOIN merchants m ON m.id = k.merchant_id
             WHERE k.secret_hash = $1 AND k.revoked_at IS NULL""",
        digest(secret),
        USED_EVERY_S,
    )
    if row is None:
        raise Unauthenticated("the API key is unknown or revoked")
    if row["stale"]:
        await pool.execute(
            "UPDATE merchant_api_keys SET last_used_at = now() WHERE id = $1", row["key_id"]
        )
    return Merchant.from_row(row)


def key_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "key_id": str(row["id"]),
        "prefix": row["prefix"],
        "created_at": row["created_at"].isoformat(),
        "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }
