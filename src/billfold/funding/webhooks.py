"""The bank partner's webhooks: verified (Standard Webhooks), stored in an inbox, applied once.

A delivery is checked before anything is stored: HMAC-SHA256 over id, timestamp and body with
the partner's secret, a timestamp within five minutes. It then goes into `webhook_inbox` under
its webhook id by the first delivery that claims it, so two deliveries of one id apply it once:
a copy that arrives while it is being applied gets a 409 to retry, one after it a `duplicate`.
An attempt that fails releases its claim, so the next delivery applies it; one whose process
died is applied by the recovery sweep once its claim is stale. Every effect is idempotent (see
funding.rails), so applying twice is safe, only wasteful.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billfold.config import Settings
from billfold.funding import rails
from billfold.funding.service import Funding
from billfold.platform import retention
from billfold.platform.errors import BillfoldError, ValidationFailed
from billfold.platform.security import kept_secret
from billfold.platform.strict import loads, shown

TOLERANCE_S = 300
EVENT_TYPES = ("ach.settled", "ach.returned", "card.chargeback")
MAX_BODY_BYTES = 64 * 1024
MAX_TIMESTAMP_DIGITS = 12
MAX_REASON = 64  # a chargeback's reason, told to the person (funding.events)
# A claim this old with nothing applied belongs to a process that died: a redelivery reapplies.
STALE_CLAIM_S = 60.0


class InvalidSignature(BillfoldError):
    code = "invalid_webhook_signature"
    status = 401
    title = "Webhook signature invalid"


class WebhookInProgress(BillfoldError):
    code = "webhook_in_progress"
    status = 409
    title = "This webhook is being applied by another delivery"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


class StaleWebhook(BillfoldError):
    code = "webhook_timestamp_out_of_range"
    status = 401
    title = "Webhook timestamp too far from now"


@dataclass(frozen=True)
class Delivery:
    status: str  # applied | ignored | refused | duplicate
    detail: str


def webhook_secret(settings: Settings) -> str:
    if settings.bank_webhook_secret:
        return settings.bank_webhook_secret
    return kept_secret(
        settings,
        "bank_webhook_secret",
        lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    )


def verify(secret: str, lowered: dict[str, str], body: bytes) -> dict[str, Any]:
    """The event, if the delivery (headers with lower-case names) is authentic and fresh; else
    a 401 naming what failed."""
    stamp = lowered.get("webhook-timestamp", "")
    # ASCII digits only: str.isdigit() is true of a superscript two (which int() refuses, a 500)
    # and of other scripts' digits (which int() reads).
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        raise InvalidSignature(
            f"webhook-timestamp {shown(stamp)} is not a number of seconds since 1970",
            header="webhook-timestamp",
        )
    if abs(time.time() - int(stamp)) > TOLERANCE_S:
        raise StaleWebhook(
            f"webhook-timestamp {stamp[:12]} is more than {TOLERANCE_S} s from now",
            header="webhook-timestamp",
        )
    try:
        Webhook(secret).verify(body, lowered, json_parse=False)
    except (WebhookVerificationError, ValueError) as error:
        raise InvalidSignature(f"webhook signature does not verify: {error}") from None
    # Strictly (platform.strict): a key given twice, or a NUL the inbox could not store, is
    # refused even from the bank.
    return check_event(loads(body))


def check_event(event: object) -> dict[str, Any]:
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise ValidationFailed("webhook body must be an object with 'type' and 'data'")
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise ValidationFailed(
            f"event type '{str(kind)[:40]}' is not one of {', '.join(EVENT_TYPES)}", field="type"
        )
    data = event["data"]
    if not isinstance(data.get("transfer_id"), str):
        raise ValidationFailed("event data needs a 'transfer_id' string", field="transfer_id")
    if kind == "ach.returned" and not rails.valid_return_code(data.get("return_code")):
        raise ValidationFailed(
            f"return code '{str(data.get('return_code'))[:8]}' is not a NACHA code like R01",
            field="return_code",
        )
    reason = data.get("reason")
    if kind == "card.chargeback" and reason is not None and not _plain_reason(reason):
        raise ValidationFailed(
            f"chargeback reason {shown(str(reason))} is not 1 to {MAX_REASON} printable "
            "ASCII characters",
            field="reason",
        )
    return event


def _plain_reason(reason: object) -> bool:
    """A chargeback's reason as the processor gives it ("fraudulent", "10.4"): it goes into
    the event told to the person, so only short printable ASCII."""
    return (
        isinstance(reason, str)
        and 1 <= len(reason) <= MAX_REASON
        and reason.isascii()
        and reason.isprintable()
    )


def sign(secret: str, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """Headers and body of a signed delivery: what the partner (or the sandbox) sends."""
    body = orjson.dumps(event)
    webhook_id = f"msg_{secrets.token_urlsafe(16)}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, now, body.decode())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return headers, body


async def receive(funding: Funding, headers: dict[str, str], body: bytes) -> Delivery:
    """Verify, store in the inbox, apply once."""
    if len(body) > MAX_BODY_BYTES:
        raise ValidationFailed(f"webhook body is {len(body)} bytes, at most {MAX_BODY_BYTES}")
    lowered = {k.lower(): v for k, v in headers.items()}
    event = verify(webhook_secret(funding.settings), lowered, body)
    webhook_id = lowered["webhook-id"][:255]
    claim = await _claim(funding, webhook_id, event)
    if claim == "applied":
        return Delivery("duplicate", f"webhook {webhook_id} was received before")
    if claim == "in_progress":
        raise WebhookInProgress(
            f"webhook {webhook_id} is being applied; deliver it again shortly",
            webhook_id=webhook_id,
        )
    return await apply_claimed(funding, webhook_id, event)


async def apply_claimed(funding: Funding, webhook_id: str, event: dict[str, Any]) -> Delivery:
    """Apply an event this process has claimed, and mark it applied. If applying fails, the
    claim is released at once, so that the partner's next delivery applies it."""
    try:
        outcome = await apply(funding, event)
    except BaseException:
        await funding.pool.execute(
            """UPDATE webhook_inbox SET claimed_at = '-infinity'
                WHERE webhook_id = $1 AND applied_at IS NULL""",
            webhook_id,
        )
        raise
    await funding.pool.execute(
        "UPDATE webhook_inbox SET applied_at = now(), outcome = $2 WHERE webhook_id = $1",
        webhook_id,
        f"{outcome.result}: {outcome.detail}",
    )
    return Delivery(outcome.result, outcome.detail)


async def _claim(funding: Funding, webhook_id: str, event: dict[str, Any]) -> str:
    """`claimed`: this delivery applies the event (it is the first, or the earlier claim is
    stale and nothing was applied); `applied`: it was applied before; `in_progress`: another
    delivery is applying it now. No lock is held while applying, so copies arriving together
    are answered at once instead of queueing for the first one's connection."""
    inserted = await funding.pool.fetchval(
        """INSERT INTO webhook_inbox (webhook_id, source, event_type, payload)
           VALUES ($1, 'bank', $2, $3) ON CONFLICT (webhook_id) DO NOTHING RETURNING 1""",
        webhook_id,
        event["type"],
        event,
    )
    if inserted:
        return "claimed"
    row = await funding.pool.fetchrow(
        """UPDATE webhook_inbox SET claimed_at = CASE
                   WHEN applied_at IS NULL AND claimed_at < now() - make_interval(secs => $2)
                   THEN now() ELSE claimed_at END
            WHERE webhook_id = $1
        RETURNING applied_at IS NOT NULL AS applied, claimed_at = now() AS claimed""",
        webhook_id,
        STALE_CLAIM_S,
    )
    if row is None or row["applied"]:
        return "applied"
    return "claimed" if row["claimed"] else "in_progress"


async def reapply_stale(funding: Funding) -> int:
    """Apply the inbox's events whose claim went stale unapplied (the process applying them
    died): the partner may not deliver them again. Returns how many were applied."""
    rows = await funding.pool.fetch(
        """UPDATE webhook_inbox SET claimed_at = now()
            WHERE webhook_id IN (
                SELECT webhook_id FROM webhook_inbox
                 WHERE applied_at IS NULL AND claimed_at < now() - make_interval(secs => $1)
                 ORDER BY received_at LIMIT 100 FOR UPDATE SKIP LOCKED)
        RETURNING webhook_id, payload""",
        STALE_CLAIM_S,
    )
    for row in rows:
        await apply_claimed(funding, row["webhook_id"], row["payload"])
    return len(rows)


async def apply(funding: Funding, event: dict[str, Any]) -> rails.Outcome:
    data = event["data"]
    ft = await rails.load(funding.pool, data["transfer_id"])
    if ft is None:
        return rails.Outcome("refused", f"transfer '{data['transfer_id'][:40]}' is unknown")
    if event["type"] == "ach.settled":
        return await rails.settle(funding, ft)
    if event["type"] == "ach.returned":
        if ft.rail != "ach":
            return rails.Outcome("refused", f"transfer {ft.id} is not an ACH transfer")
        return await rails.return_(funding, ft, data["return_code"])
    if ft.rail != "card":
        return rails.Outcome("refused", f"transfer {ft.id} is not a card transfer")
    return await rails.return_(funding, ft, rails.CHARGEBACK, reason=data.get("reason"))


# Applied events only: one not applied yet is work still to do (reapply_stale).
PURGE_INBOX = """
DELETE FROM webhook_inbox WHERE webhook_id = ANY(ARRAY(
    SELECT webhook_id FROM webhook_inbox
     WHERE applied_at IS NOT NULL AND received_at < now() - make_interval(days => $2)
     ORDER BY received_at LIMIT $1
       FOR UPDATE SKIP LOCKED))
"""


async def purge_inbox(pool: asyncpg.Pool, retention_days: int, batch: int) -> int:
    """Delete the applied webhooks received more than `retention_days` ago, `batch` at a time;
    how many. A delivery of one after that would be applied again, and every effect is
    idempotent (keyed by the funding transfer), so it changes nothing."""
    return await retention.purge(pool, "webhook_inbox", PURGE_INBOX, retention_days, batch=batch)
