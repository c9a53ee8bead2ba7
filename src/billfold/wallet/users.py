"""Users: sign-up with three handles, login with any of them, and each user's wallet (their
PIN: wallet.pins)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.config import Settings
from billfold.ledger.accounts import open_account
from billfold.ledger.model import AccountKind
from billfold.platform import db
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import BillfoldError, NotFound, TooManyRequests, ValidationFailed
from billfold.platform.security import Unauthenticated, hash_password, verify_password
from billfold.wallet.handles import (
    HANDLE_KINDS,
    Handle,
    normalise_email,
    normalise_phone,
    normalise_username,
    parse_handle,
)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

USER_COLUMNS = "u.id, u.username, u.email, u.phone, u.is_admin, u.status, w.account_id"


class HandleTaken(BillfoldError):
    code = "handle_taken"
    status = 409
    title = "Handle already taken"


class LoginLocked(TooManyRequests):
    code = "login_locked"
    title = "Too many failed logins"


class WrongPassword(BillfoldError):
    code = "wrong_password"
    status = 403
    title = "Wrong password"


class PasswordChangedMeanwhile(BillfoldError):
    code = "password_changed_meanwhile"
    status = 409
    title = "The password changed meanwhile"


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    username: str
    email: str
    phone: str
    is_admin: bool
    status: str
    account_id: int  # the user's USD wallet in the ledger

    @property
    def frozen(self) -> bool:
        return self.status == "frozen"


@dataclass(frozen=True)
class SignUp:
    username: str
    email: str
    phone: str
    password: str


@dataclass(frozen=True)
class PasswordChange:
    user_id: uuid.UUID
    password_hash: str  # the new password's Argon2 hash
    replaces: str  # the hash of the password it replaces, as checked


def check_password(password: str, field: str = "password") -> str:
    """A new password as sign-up takes one (its length; the value is never named)."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"{field} must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
            field=field,
        )
    return password


def check_sign_up(username: str, email: str, phone: str, password: str) -> SignUp:
    check_password(password)
    return SignUp(
        normalise_username(username), normalise_email(email), normalise_phone(phone), password
    )


async def do_create_user(pool: asyncpg.Pool, sign_up: SignUp) -> User:
    """Create the user and open their USD wallet, in one transaction.

    Takes no locks beyond the unique indexes on the handles, which decide between two sign-ups
    racing for one handle."""
    # Argon2 takes a sizeable fraction of a second by design: off the event loop.
    password_hash = await asyncio.to_thread(hash_password, sign_up.password)
    async with pool.acquire() as conn, conn.transaction():
        try:
            user_id = await conn.fetchval(
                "INSERT INTO users (username, email, phone, password_hash)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                sign_up.username,
                sign_up.email,
                sign_up.phone,
                password_hash,
            )
        except asyncpg.UniqueViolationError as taken:
            field = str(taken.constraint_name).removeprefix("users_").removesuffix("_key")
            value = getattr(sign_up, field, "")
            raise HandleTaken(f"{field} '{value}' is already taken", field=field) from None
        account = await open_account(
            conn, kind=AccountKind.WALLET, owner=f"user:{user_id}", currency=WALLET_CURRENCY
        )
        await conn.execute(
            "INSERT INTO wallets (user_id, currency, account_id) VALUES ($1, $2, $3)",
            user_id,
            WALLET_CURRENCY,
            account.id,
        )
    return User(
        user_id, sign_up.username, sign_up.email, sign_up.phone, False, "active", account.id
    )


_USERS_WITH_WALLET = (
    f"SELECT {USER_COLUMNS} FROM users u"
    f" JOIN wallets w ON w.user_id = u.id AND w.currency = '{WALLET_CURRENCY}'"
)
_BY_HANDLE = {kind: f"{_USERS_WITH_WALLET} WHERE u.{kind} = $1" for kind in HANDLE_KINDS}
_BY_ID = f"{_USERS_WITH_WALLET} WHERE u.id = $1"
# The caller (by id) and the user a handle names, in one round trip.
_PARTIES = {
    kind: f"({_BY_ID}) UNION ALL ({_USERS_WITH_WALLET} WHERE u.{kind} = $2)"
    for kind in HANDLE_KINDS
}


async def find_user(source: asyncpg.Pool | asyncpg.Connection, handle: Handle) -> User | None:
    query = _BY_HANDLE[handle.kind]
    if isinstance(source, asyncpg.Pool):
        row = await db.fetchrow(source, query, handle.value)
    else:
        row = await source.fetchrow(query, handle.value)
    return User(*row) if row else None


async def grant_admin(pool: asyncpg.Pool, handle_text: str) -> User:
    """Give the user `handle_text` names the admin role; NotFound if nobody has it."""
    handle = parse_handle(handle_text)
    user = await find_user(pool, handle)
    if user is None:
        raise NotFound(f"no user has the {handle.kind} '{handle.value}'", handle=handle_text[:60])
    await pool.execute("UPDATE users SET is_admin = true WHERE id = $1", user.id)
    return await get_user(pool, user.id)


async def usernames(
    source: asyncpg.Pool | asyncpg.Connection, user_ids: Iterable[str]
) -> dict[str, str]:
    """The username of each of `user_ids` (uuid strings) that names a user; one query."""
    ids = sorted({uuid.UUID(text) for text in user_ids if text})
    if not ids:
        return {}
    rows = await source.fetch("SELECT id, username FROM users WHERE id = ANY($1::uuid[])", ids)
    return {str(row["id"]): row["username"] for row in rows}


async def wallet_account(conn: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> int:
    """The ledger account of the user's wallet."""
    account_id: int = await conn.fetchval(
        "SELECT account_id FROM wallets WHERE user_id = $1 AND currency = $2",
        user_id,
        WALLET_CURRENCY,
    )
    return account_id


async def get_user(pool: asyncpg.Pool, user_id: uuid.UUID) -> User:
    row = await db.fetchrow(pool, _BY_ID, user_id)
    if row is None:
        raise NotFound(f"user {user_id} does not exist", user_id=str(user_id))
    return User(*row)


class UserCache:
    """Users as the transfer path finds them (by id and by handle), kept in this process for
    `ttl_s` seconds so that a transfer costs no lookup round trip.

    Only what may be a little stale is read from here. Ids, handles and wallet accounts do not
    change. A user's status may: the ledger itself refuses debits from a frozen wallet (see
    migrations/0005), so a freeze takes effect at once whatever this cache holds; only the
    courtesy check that a *recipient* is frozen (incoming money is no risk to anyone) can lag by
    up to `ttl_s`. A cached frozen user is read again, so an unfreeze takes effect at once too.
    Nobody found is not cached, so a new sign-up can be paid at once.
    """

    def __init__(self, ttl_s: float, max_users: int = 100_000) -> None:
        self._by_id: TTLCache[uuid.UUID, User] = TTLCache(max_users, ttl_s)
        self._by_handle: TTLCache[tuple[str, str], User] = TTLCache(3 * max_users, ttl_s)

    def put(self, user: User) -> None:
        self._by_id[user.id] = user
        for kind in HANDLE_KINDS:
            self._by_handle[kind, getattr(user, kind)] = user

    async def sender_and_recipient(
        self, pool: asyncpg.Pool, sender_id: uuid.UUID, handle: Handle
    ) -> tuple[User, User | None]:
        """As get_user_and_find, from the cache when both are in it."""
        sender = self._by_id.get(sender_id)
        recipient = self._by_handle.get((handle.kind, handle.value))
        if sender is not None and recipient is not None and not (sender.frozen or recipient.frozen):
            return sender, recipient
        sender, recipient = await get_user_and_find(pool, sender_id, handle)
        self.put(sender)
        if recipient is not None:
            self.put(recipient)
        return sender, recipient


async def get_user_and_find(
    pool: asyncpg.Pool, user_id: uuid.UUID, handle: Handle
) -> tuple[User, User | None]:
    """The user with `user_id` and the user `handle` names (None if nobody), in one query.
    Raises NotFound when `user_id` names nobody."""
    rows = await db.fetch(pool, _PARTIES[handle.kind], user_id, handle.value)
    # Told apart by their columns, not their order: UNION ALL promises none.
    caller = next((r for r in rows if r["id"] == user_id), None)
    named = next((r for r in rows if r[handle.kind] == handle.value), None)
    if caller is None:
        raise NotFound(f"user {user_id} does not exist", user_id=str(user_id))
    return User(*caller), User(*named) if named is not None else None


# KEYS[1] counts failed attempts in a row; ARGV: the count that locks, the lock in seconds. At
# that count: the seconds the lock has left. Otherwise the attempt is counted, before its
# password is checked (a right one clears the count), and 0: of attempts at once, no more than
# the count that locks get to try a password.
_ATTEMPT = """
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
if failures >= tonumber(ARGV[1]) then
  return math.max(redis.call('TTL', KEYS[1]), 1)
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 0
"""


async def authenticate(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, handle_text: str, password: str
) -> User:
    """The user a handle and password name. Wrong passwords count against the person, whichever
    of their handles was given: at login_max_failures in a row all of them are locked for
    login_lock_s seconds. A handle that names nobody counts alone, and locks as a person's
    would, so that a lock says nothing of whether a handle exists."""
    try:
        handle = parse_handle(handle_text)
    except ValidationFailed:
        raise Unauthenticated("wrong handle or password") from None
    row = await pool.fetchrow(
        f"SELECT u.id, u.password_hash FROM users u WHERE u.{handle.kind} = $1", handle.value
    )
    if row is not None:
        lock_key = login_lock_key(row["id"])
    else:
        lock_key = f"login-failures:{handle.kind}:{handle.value}"
    await take_attempt(redis, settings, lock_key)
    stored_hash = row["password_hash"] if row else None
    # Checked against a stand-in hash when nobody has the handle, so as to take as long.
    verified = await asyncio.to_thread(verify_password, stored_hash, password)
    if row is None or not verified:
        raise Unauthenticated("wrong handle or password")
    await clear_failures(redis, lock_key)
    return await get_user(pool, row["id"])


def login_lock_key(user_id: uuid.UUID) -> str:
    """Where a person's failed logins (and failed password changes) are counted."""
    return f"login-failures:user:{user_id}"


async def check_change_password(
    pool: asyncpg.Pool,
    redis: Redis,
    settings: Settings,
    user_id: uuid.UUID,
    current_password: str,
    new_password: str,
) -> PasswordChange:
    """The change, once the caller proved it is the user with their current password. A wrong
    one counts as a failed login does, against the same count (a session cannot try passwords
    faster than the login form can): at login_max_failures in a row both are locked for
    login_lock_s seconds. The new password is checked as sign-up's. No password is ever named
    in an error."""
    check_password(new_password, "new_password")
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    if stored is None:
        raise NotFound(f"user {user_id} does not exist", user_id=str(user_id))
    lock_key = login_lock_key(user_id)
    await take_attempt(redis, settings, lock_key)
    # Argon2 takes a sizeable fraction of a second by design: off the event loop.
    if not await asyncio.to_thread(verify_password, stored, current_password):
        raise WrongPassword("the current password is wrong", field="current_password")
    await clear_failures(redis, lock_key)
    hashed = await asyncio.to_thread(hash_password, new_password)
    return PasswordChange(user_id, hashed, stored)


async def do_change_password(pool: asyncpg.Pool, change: PasswordChange) -> None:
    """Stores the new password's hash under the user's row lock (the UPDATE takes it), if the
    password is still the one check_change_password checked: of two changes proved with one
    password at once, the second is refused (PasswordChangedMeanwhile)."""
    stored = await pool.fetchval(
        "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3 RETURNING true",
        change.user_id,
        change.password_hash,
        change.replaces,
    )
    if stored is None:
        raise PasswordChangedMeanwhile("the password was changed meanwhile; try again")


async def take_attempt(
    redis: Redis, settings: Settings, lock_key: str, locked: type[TooManyRequests] = LoginLocked
) -> None:
    """Counts an attempt against `lock_key`, or raises `locked` once it counts
    login_max_failures failures in a row (for login_lock_s seconds from the last one). The
    caller clears the count (clear_failures) when the attempt succeeds."""
    try:
        wait_s = int(
            await redis.register_script(_ATTEMPT)(
                keys=[lock_key], args=[settings.login_max_failures, settings.login_lock_s]
            )
        )
    except (RedisError, OSError):
        return  # Redis holds no money: without it, logins go on unthrottled rather than stop.
    if wait_s > 0:
        raise locked(f"{locked.title.lower()}; try again in {wait_s} seconds", retry_after_s=wait_s)


async def clear_failures(redis: Redis, lock_key: str) -> None:
    with contextlib.suppress(RedisError):
        await redis.delete(lock_key)
