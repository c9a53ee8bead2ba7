"""`billfold keys rotate` re-wraps the webhook signing secrets too (signing.SEALED, beside
funding's): after a rotation the endpoints sign with the new key alone, the current secret and
the previous one in its grace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billfold.cli import sealed_columns
from billfold.funding import keys as funding_keys
from billfold.platform.rewrap import rotate
from billfold.webhooks import endpoints, signing
from tests.webhooks.conftest import register
from tests.world import World


def test_keys_rotate_re_wraps_the_signing_secrets_and_funding_s_values() -> None:
    assert set(signing.SEALED) | set(funding_keys.SEALED) <= set(sealed_columns())


async def test_a_key_rotation_keeps_every_signing_secret_readable(world: World) -> None:
    owner = await world.person()
    made = await register(world, owner.id, "https://hooks.example.com/keys")
    rotated = await endpoints.do_rotate_secret(world.state.webhooks, owner.id, made["endpoint_id"])
    sealed = signing.SEALED
    new_keys = world.state.webhooks.keys.with_active("rotated-hooks", b"\x09" * 32)
    result = await rotate(world.state.pool, new_keys, sealed)
    # The database is the session's: rotate back afterwards, for the apps of later modules.
    back = new_keys.with_active("rotated-hooks", b"\x09" * 32)
    back.active = world.state.webhooks.keys.active
    assert result.remaining == 0 and result.rewrapped >= 2
    row = await world.state.pool.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE id = $1", uuid.UUID(made["endpoint_id"])
    )
    assert (row["key_id"], row["previous_key_id"]) == ("rotated-hooks", "rotated-hooks")
    alone = new_keys.only("rotated-hooks")
    signing_now = signing.signing_secrets(alone, row, datetime.now(UTC))
    assert (await rotate(world.state.pool, back, sealed)).remaining == 0
    assert signing_now == [rotated["secret"], made["secret"]]
