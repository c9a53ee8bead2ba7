"""Signing secrets and signatures, per Standard Webhooks: `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,` and the base64 HMAC-SHA256 of id, timestamp and body).

A secret (`whsec_` and 32 random bytes in base64) is shown to its owner once and kept sealed
(platform.crypto), bound to its endpoint's row and column. After a rotation both the new and the
previous secret sign, space-separated in one header, until the grace period ends: a receiver
still on the old secret verifies the one, a receiver on the new one the other.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from billfold.platform.crypto import KeyRing, Sealed
from billfold.platform.rewrap import SealedColumn

PREFIX = "whsec_"
SECRET_BYTES = 32
CURRENT = "secret"
PREVIOUS = "previous"


# The sealed columns `billfold keys rotate` re-wraps: the current secret and the previous one.
SEALED = (
    SealedColumn(
        "webhook_endpoints", "secret_enc", "secret_dek", lambda id_: context(id_, CURRENT)
    ),
    SealedColumn(
        "webhook_endpoints",
        "previous_enc",
        "previous_dek",
        lambda id_: context(id_, PREVIOUS),
        key_id="previous_key_id",
    ),
)


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def context(endpoint_id: uuid.UUID, column: str) -> str:
    """What a sealed secret is bound to: its endpoint and whether it is the current one."""
    return f"webhook_endpoints.{column}:{endpoint_id}"


def seal(keys: KeyRing, secret: str, endpoint_id: uuid.UUID, column: str) -> Sealed:
    return keys.seal(secret, context(endpoint_id, column))


def current_secret(keys: KeyRing, row: Mapping[str, Any]) -> str:
    """The current secret of an endpoint row (its secret_* columns)."""
    sealed = Sealed(row["secret_enc"], row["secret_dek"], row["key_id"])
    return keys.open(sealed, context(row["id"], CURRENT))


def signing_secrets(keys: KeyRing, row: Mapping[str, Any], now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one within its
    grace period."""
    found = [current_secret(keys, row)]
    expires_at = row["previous_expires_at"]
    if expires_at is not None and expires_at > now:
        sealed = Sealed(row["previous_enc"], row["previous_dek"], row["previous_key_id"])
        found.append(keys.open(sealed, context(row["id"], PREVIOUS)))
    return found


def signed_headers(
    message_id: str, body: str, signing: Sequence[str], now: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed by each secret in `signing`."""
    signature = " ".join(Webhook(secret).sign(message_id, now, body) for secret in signing)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
