"""A user's standing is written by the wallet alone: a freeze reaches the ledger and its audit
record in one transaction, and concurrent changes of one user are audited in the order made."""

from __future__ import annotations

import asyncio
import itertools
import secrets

import asyncpg

from billfold.risk.operators import audit_trail
from billfold.wallet.standing import do_user_action, engine_freezer
from billfold.wallet.users import User, check_sign_up, do_create_user


async def _new_user(pool: asyncpg.Pool) -> User:
    name = f"standing_{secrets.token_hex(4)}"
    phone = f"+1415{2_000_000 + secrets.randbelow(8_000_000)}"
    return await do_create_user(
        pool, check_sign_up(name, f"{name}@example.com", phone, "a-password-1")
    )


async def test_the_engine_freeze_reaches_the_ledger_with_its_record(pool: asyncpg.Pool) -> None:
    """engine_freezer freezes the user and their wallet's ledger account, audited as the
    engine's action (no operator) with its reason and detail."""
    user = await _new_user(pool)

    await engine_freezer(pool)(str(user.id), "risk engine: test", {"declines": 5})
    status = await pool.fetchval("SELECT status FROM users WHERE id = $1", user.id)
    frozen = await pool.fetchval("SELECT frozen FROM accounts WHERE id = $1", user.account_id)
    trail = await audit_trail(pool, str(user.id))

    assert (status, frozen) == ("frozen", True)
    assert [(r["operator_id"], r["action"], r["reason"]) for r in trail] == [
        ("risk-engine", "freeze", "risk engine: test")
    ]
    assert trail[0]["detail"] == {"declines": 5, "before": "active", "after": "frozen"}


async def test_concurrent_changes_of_one_user_are_audited_in_order(pool: asyncpg.Pool) -> None:
    """Freezes and unfreezes of one user at once: each waits for the user's row lock, so each
    record's `before` is the `after` of the record before it, and the status is the last one's."""
    user = await _new_user(pool)
    actions = ["freeze", "unfreeze"] * 10

    done = await asyncio.gather(
        *(do_user_action(pool, None, action, str(user.id), "test") for action in actions)
    )
    trail = list(reversed(await audit_trail(pool, str(user.id))))
    status = await pool.fetchval("SELECT status FROM users WHERE id = $1", user.id)

    assert len(trail) == len(actions) == len(done)
    chain = [(r["detail"]["before"], r["detail"]["after"]) for r in trail]
    assert all(before == after for (_, after), (before, _) in itertools.pairwise(chain))
    assert chain[0][0] == "active" and status == chain[-1][1]
