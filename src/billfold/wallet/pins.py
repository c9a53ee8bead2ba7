"""The user's PIN: set or changed only with the password (or the PIN it replaces), and checked
when a step-up asks for it.

A PIN confirms movements the risk engine held for verification. Setting it with the login
token alone let whoever held a session (a stolen phone, a copied token) answer the step-up
meant to stop them, so a change needs what a session alone does not give. A PIN *changed* in
the last PIN_CHANGE_COOLING does not clear a step-up: the movement goes to review instead
(wallet.held, funding.risk_holds). A first PIN set within PIN_CHANGE_COOLING of sign-up is
onboarding, not a change, and clears one at once; a first PIN on an older account is a change
(the thief who phished the password of an account that never had a PIN). See
docs/decisions.md, "A step-up a thief cannot answer".
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.platform.errors import BillfoldError, NotFound, TooManyRequests, ValidationFailed
from billfold.platform.security import hash_password, verify_password
from billfold.wallet.users import WrongPassword, clear_failures, take_attempt

# A PIN changed this recently does not clear a step-up.
PIN_CHANGE_COOLING = timedelta(hours=24)
MIN_PIN_DIGITS, MAX_PIN_DIGITS = 4, 8


class PinNotSet(BillfoldError):
    code = "pin_not_set"
    status = 422
    title = "No PIN is set"


class ReauthenticationRequired(BillfoldError):
    code = "reauthentication_required"
    status = 403
    title = "Confirm it is you"


class WrongCurrentPin(BillfoldError):
    code = "wrong_current_pin"
    status = 403
    title = "Wrong current PIN"


class PinChangeLocked(TooManyRequests):
    code = "pin_change_locked"
    title = "Too many failed PIN changes"


class PinChangedMeanwhile(BillfoldError):
    code = "pin_changed_meanwhile"
    status = 409
    title = "The PIN changed meanwhile"


class WrongPin(BillfoldError):
    """A wrong PIN answering a step-up; `attempts_left` before the movement is declined."""

    code = "wrong_pin"
    status = 403
    title = "Wrong PIN"


@dataclass(frozen=True)
class PinChange:
    user_id: uuid.UUID
    pin_hash: str  # the new PIN's Argon2 hash
    replaces: str | None  # the hash of the PIN it replaces, as checked; None for a first PIN


@dataclass(frozen=True)
class PinCheck:
    right: bool
    # Changed within PIN_CHANGE_COOLING: a right PIN then sends a step-up to review.
    changed_recently: bool


def check_pin_format(pin: str, field: str = "pin") -> str:
    if not (pin.isascii() and pin.isdigit() and MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS):
        raise ValidationFailed(
            f"{field} must be {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits", field=field
        )
    return pin


async def check_set_pin(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    user_id: uuid.UUID,
    pin: str,
    *,
    password: str | None,
    current_pin: str | None,
) -> PinChange:
    """The change, once the caller proved it is the user: their password, or their current
    PIN when they have one (each given must be right). Each attempt counts until a right one
    clears the count (users.take_attempt: attempts at once count too); at login_max_failures
    in a row, PIN changes are locked for login_lock_s seconds, so that a session cannot try
    every PIN. Neither the password nor a PIN is ever named in an error."""
    check_pin_format(pin)
    if password is None and current_pin is None:
        raise ReauthenticationRequired(
            "setting or changing a PIN needs your password ('password'), or your current PIN "
            "('current_pin') when you have one",
            field="password",
        )
    row = await pool.fetchrow("SELECT password_hash, pin_hash FROM users WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"user {user_id} does not exist", user_id=str(user_id))
    if current_pin is not None and row["pin_hash"] is None:
        raise PinNotSet("no PIN is set, so there is no current PIN: give your password instead")
    lock_key = f"pin-change-failures:{user_id}"
    await take_attempt(redis, settings, lock_key, PinChangeLocked)
    if password is not None and not await _matches(row["password_hash"], password):
        raise WrongPassword("the password is wrong", field="password")
    if current_pin is not None and not await _matches(row["pin_hash"], current_pin):
        raise WrongCurrentPin("the current PIN is wrong", field="current_pin")
    await clear_failures(redis, lock_key)
    # Argon2 takes a sizeable fraction of a second by design: off the event loop.
    hashed = await asyncio.to_thread(hash_password, pin)
    return PinChange(user_id, hashed, row["pin_hash"])


async def do_set_pin(pool: asyncpg.Pool, change: PinChange) -> None:
    """Stores the new PIN under the user's row lock (the UPDATE takes it), if the PIN is still
    the one check_set_pin checked against: of two changes proved with one credential at once,
    the second is refused (PinChangedMeanwhile). Replacing a PIN, or setting a first one on an
    account older than PIN_CHANGE_COOLING, starts PIN_CHANGE_COOLING (`pin_changed_at`); a new
    account's first PIN leaves it NULL."""
    stored = await pool.fetchval(
        """UPDATE users
              SET pin_hash = $2,
                  pin_changed_at = CASE
                      WHEN pin_hash IS NULL AND created_at > now() - $4::interval
                      THEN pin_changed_at ELSE now() END
            WHERE id = $1 AND pin_hash IS NOT DISTINCT FROM $3
        RETURNING true""",
        change.user_id,
        change.pin_hash,
        change.replaces,
        PIN_CHANGE_COOLING,
    )
    if stored is None:
        raise PinChangedMeanwhile("the PIN was set or changed meanwhile; try again")


async def has_pin(pool: asyncpg.Pool, user_id: uuid.UUID) -> bool:
    """Whether the user has set a PIN."""
    found = await pool.fetchval("SELECT pin_hash IS NOT NULL FROM users WHERE id = $1", user_id)
    return bool(found)


async def check_pin(pool: asyncpg.Pool, user_id: uuid.UUID, pin: str) -> PinCheck:
    """Whether `pin` is the user's PIN, and whether it was changed within PIN_CHANGE_COOLING;
    PinNotSet when they have none."""
    row = await pool.fetchrow(
        "SELECT pin_hash, pin_changed_at > now() - $2::interval AS recent FROM users WHERE id = $1",
        user_id,
        PIN_CHANGE_COOLING,
    )
    if row is None or row["pin_hash"] is None:
        raise PinNotSet("set a PIN first: PUT /api/v1/users/{user_id}/pin")
    return PinCheck(await _matches(row["pin_hash"], pin), bool(row["recent"]))


async def _matches(hashed: str | None, secret: str) -> bool:
    return await asyncio.to_thread(verify_password, hashed, secret)
