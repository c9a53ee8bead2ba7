"""An owner's webhook endpoints: register, list, read, change, delete, rotate the secret.

Every query filters by the owner: another person's endpoint id answers 404, as a missing one
does. The signing secret is returned once, when it is made (at registration and at each
rotation), and otherwise kept sealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.platform.strict import shown
from billfold.webhooks import signing
from billfold.webhooks.service import Webhooks
from billfold.webhooks.urls import check_url

# The event catalogue (docs/events.md): what an endpoint may ask for; ALL is every kind, the
# kinds to come included.
KINDS = (
    "transfer.completed",
    "transfer.held",
    "transfer.verified",
    "transfer.declined",
    "review.decided",
    "funding.pending",
    "funding.settled",
    "funding.returned",
    "card.chargeback",
    "cashout.requested",
    "cashout.paid",
    "cashout.returned",
    "payout.requested",
    "payout.paid",
    "payout.returned",
    "payout.declined",
    "user.frozen",
    "user.unfrozen",
    "debt.opened",
    "debt.recovered",
    "webhook.endpoint.disabled",
    "refund.completed",
    "payment.completed",
    "payment.held",
    "payment.declined",
    "checkout.session.created",
    "checkout.session.paid",
    "checkout.session.expired",
    "checkout.session.canceled",
)
ALL = "*"
MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 200
LOCK_SPACE = 0x0B0C  # advisory locks' first key: an owner's endpoints, counted one at a time

COLUMNS = """
id, user_id, url, event_types, description, enabled, failing_since, disabled_at, created_at,
updated_at, previous_expires_at
"""
SEALED_COLUMNS = "secret_enc, secret_dek, key_id"


class EndpointLimitReached(BillfoldError):
    code = "webhook_endpoint_limit"
    status = 409
    title = "Too many webhook endpoints"


class EndpointDisabled(BillfoldError):
    code = "webhook_endpoint_disabled"
    status = 409
    title = "Webhook endpoint disabled"


@dataclass(frozen=True)
class EndpointRequest:
    url: str
    event_types: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class EndpointChange:
    """What a PATCH changes: None leaves a field as it is."""

    url: str | None
    event_types: tuple[str, ...] | None
    description: str | None
    enabled: bool | None


def check_event_types(types: Sequence[str] | None) -> tuple[str, ...]:
    """The kinds asked for, each once (ALL alone if it is among them); None is ALL."""
    if types is None:
        return (ALL,)
    if not types:
        raise ValidationFailed(
            "event_types must name at least one kind, or '*' for all", field="event_types"
        )
    for kind in types:
        if kind != ALL and kind not in KINDS:
            raise ValidationFailed(
                f"event type {shown(kind)} is not in the catalogue (docs/events.md), nor '*'",
                field="event_types",
                event_type=kind[:40],
            )
    return (ALL,) if ALL in types else tuple(dict.fromkeys(types))


def check_description(text: str) -> str:
    description = " ".join(text.split())
    if len(description) > MAX_DESCRIPTION:
        raise ValidationFailed(
            f"description is {len(description)} characters, at most {MAX_DESCRIPTION}",
            field="description",
        )
    return description


def check_create_endpoint(
    settings: Settings, url: str, event_types: Sequence[str] | None, description: str | None
) -> EndpointRequest:
    return EndpointRequest(
        check_url(url, settings.webhooks_local_allowed),
        check_event_types(event_types),
        check_description(description or ""),
    )


async def do_create_endpoint(
    hooks: Webhooks, user_id: uuid.UUID, request: EndpointRequest
) -> dict[str, Any]:
    """Store the endpoint with a new secret (sealed); its view with the secret, shown this once.
    Locks: the owner's advisory lock (LOCK_SPACE), so that concurrent registrations are counted
    against MAX_ENDPOINTS one at a time."""
    endpoint_id = uuid.uuid4()
    secret = signing.new_secret()
    sealed = signing.seal(hooks.keys, secret, endpoint_id, signing.CURRENT)
    async with hooks.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))", LOCK_SPACE, user_id
        )
        count = await conn.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE user_id = $1", user_id
        )
        if count >= MAX_ENDPOINTS:
            raise EndpointLimitReached(
                f"you have {count} webhook endpoints, the most there may be; delete one first",
                limit=MAX_ENDPOINTS,
            )
        row = await conn.fetchrow(
            f"""INSERT INTO webhook_endpoints (id, user_id, url, event_types, description,
                    {SEALED_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                RETURNING {COLUMNS}""",
            endpoint_id,
            user_id,
            request.url,
            list(request.event_types),
            request.description,
            sealed.ciphertext,
            sealed.wrapped_key,
            sealed.key_id,
        )
    return {**endpoint_view(row), "secret": secret}


def endpoint_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "endpoint_id": str(row["id"]),
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "description": row["description"],
        "enabled": row["enabled"],
        "failing_since": _iso(row["failing_since"]),
        "disabled_at": _iso(row["disabled_at"]),
        "previous_secret_expires_at": _iso(row["previous_expires_at"]),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def endpoint_uuid(endpoint_id: str) -> uuid.UUID:
    """The id as a uuid; an id in any other form names nothing (404)."""
    try:
        return uuid.UUID(endpoint_id)
    except ValueError:
        raise _not_found(endpoint_id) from None


def _not_found(endpoint_id: object) -> NotFound:
    text = str(endpoint_id)
    return NotFound(f"webhook endpoint {shown(text)} does not exist", endpoint_id=text[:64])


async def access_endpoint(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: uuid.UUID,
    endpoint_id: str,
    *,
    lock: bool = False,
) -> asyncpg.Record:
    """The owner's endpoint (locked FOR UPDATE with `lock`, in the caller's transaction)."""
    row = await conn.fetchrow(
        f"""SELECT {COLUMNS}, {SEALED_COLUMNS} FROM webhook_endpoints
             WHERE id = $1 AND user_id = $2 {"FOR UPDATE" if lock else ""}""",
        endpoint_uuid(endpoint_id),
        user_id,
    )
    if row is None:
        raise _not_found(endpoint_id)
    return row


async def get_endpoint(pool: asyncpg.Pool, user_id: uuid.UUID, endpoint_id: str) -> dict[str, Any]:
    return endpoint_view(await access_endpoint(pool, user_id, endpoint_id))


async def list_endpoints(pool: asyncpg.Pool, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The owner's endpoints, oldest first (at most MAX_ENDPOINTS)."""
    rows = await pool.fetch(
        f"""SELECT {COLUMNS} FROM webhook_endpoints WHERE user_id = $1
             ORDER BY created_at, id LIMIT {MAX_ENDPOINTS}""",
        user_id,
    )
    return [endpoint_view(row) for row in rows]


def check_update_endpoint(
    settings: Settings,
    url: str | None,
    event_types: Sequence[str] | None,
    description: str | None,
    enabled: bool | None,
) -> EndpointChange:
    return EndpointChange(
        None if url is None else check_url(url, settings.webhooks_local_allowed),
        None if event_types is None else check_event_types(event_types),
        None if description is None else check_description(description),
        enabled,
    )


async def do_update_endpoint(
    pool: asyncpg.Pool, user_id: uuid.UUID, endpoint_id: str, change: EndpointChange
) -> dict[str, Any]:
    """Change the endpoint. Disabling it pauses its pending deliveries; enabling a disabled one
    resumes them, each with a retry window starting anew. Locks: the endpoint's row, then its
    pending deliveries' rows (the dispatcher's order: endpoint, then delivery)."""
    async with pool.acquire() as conn, conn.transaction():
        before = await access_endpoint(conn, user_id, endpoint_id, lock=True)
        row = await conn.fetchrow(
            f"""UPDATE webhook_endpoints
                   SET url = coalesce($2, url), event_types = coalesce($3, event_types),
                       description = coalesce($4, description), enabled = coalesce($5, enabled),
                       disabled_at = CASE WHEN $5 IS NULL THEN disabled_at
                                          WHEN $5 THEN NULL
                                          ELSE coalesce(disabled_at, now()) END,
                       failing_since = CASE WHEN $5 AND NOT enabled THEN NULL
                                            ELSE failing_since END,
                       updated_at = now()
                 WHERE id = $1
             RETURNING {COLUMNS}""",
            before["id"],
            change.url,
            None if change.event_types is None else list(change.event_types),
            change.description,
            change.enabled,
        )
        if change.enabled and not before["enabled"]:
            await conn.execute(
                """UPDATE webhook_deliveries SET retry_from = now(), next_attempt_at = now()
                    WHERE endpoint_id = $1 AND status = 'pending'""",
                before["id"],
            )
    return endpoint_view(row)


async def do_delete_endpoint(pool: asyncpg.Pool, user_id: uuid.UUID, endpoint_id: str) -> None:
    """Delete the endpoint, its deliveries and their attempts (an attempt under way is not
    recorded). Locks: the endpoint's row, then its deliveries'."""
    deleted = await pool.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2 RETURNING id",
        endpoint_uuid(endpoint_id),
        user_id,
    )
    if deleted is None:
        raise _not_found(endpoint_id)


async def do_rotate_secret(hooks: Webhooks, user_id: uuid.UUID, endpoint_id: str) -> dict[str, Any]:
    """A new secret, shown this once; the current one becomes the previous one and signs beside
    it for webhooks_secret_grace_s (a previous one still in its grace is dropped). Locks: the
    endpoint's row."""
    secret = signing.new_secret()
    grace_s = hooks.settings.webhooks_secret_grace_s
    async with hooks.pool.acquire() as conn, conn.transaction():
        row = await access_endpoint(conn, user_id, endpoint_id, lock=True)
        sealed = signing.seal(hooks.keys, secret, row["id"], signing.CURRENT)
        previous = signing.seal(
            hooks.keys, signing.current_secret(hooks.keys, row), row["id"], signing.PREVIOUS
        )
        expires_at = datetime.now(UTC) + timedelta(seconds=grace_s) if grace_s > 0 else None
        kept = expires_at is not None
        await conn.execute(
            """UPDATE webhook_endpoints
                  SET secret_enc = $2, secret_dek = $3, key_id = $4, previous_enc = $5,
                      previous_dek = $6, previous_key_id = $7, previous_expires_at = $8,
                      updated_at = now()
                WHERE id = $1""",
            row["id"],
            sealed.ciphertext,
            sealed.wrapped_key,
            sealed.key_id,
            previous.ciphertext if kept else None,
            previous.wrapped_key if kept else None,
            previous.key_id if kept else None,
            expires_at,
        )
    return {
        "endpoint_id": str(row["id"]),
        "secret": secret,
        "previous_secret_expires_at": _iso(expires_at),
    }
