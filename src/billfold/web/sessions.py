"""Browser sessions: a random id in an HttpOnly cookie, the person it signs in kept in Redis.

Redis holds the session (the user id and when it began), never money. A session ends after
`web_session_idle_s` without a request (each request renews it) and `web_session_max_s` after
its login in any case; logging out deletes it at once, so a stolen cookie dies with it. Only a
digest of the id is a Redis key: whoever reads Redis cannot sign in with what is there.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from billfold.config import Settings

SESSION_COOKIE = "bf_session"
_PREFIX = "web:session:"
# A person's sessions (the digests of their ids), so that a password change can end the others.
_PERSON = "web:sessions-of:"


@dataclass(frozen=True)
class WebSession:
    id: str  # the cookie's value
    user_id: uuid.UUID
    started: float  # the login, in seconds since the epoch


def _key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(redis: Redis, settings: Settings, user_id: uuid.UUID) -> WebSession:
    """A new session for `user_id`, just signed in."""
    session = WebSession(secrets.token_urlsafe(32), user_id, time.time())
    body = orjson.dumps({"user_id": str(user_id), "started": session.started})
    await redis.set(_key(session.id), body, ex=settings.web_session_idle_s)
    await redis.sadd(_PERSON + str(user_id), _key(session.id))
    await redis.expire(_PERSON + str(user_id), settings.web_session_max_s)
    return session


async def read_session(
    redis: Redis, settings: Settings, session_id: str | None
) -> WebSession | None:
    """The live session the cookie names, renewed for another idle period; None when it is
    unknown, ended or past its maximum age."""
    if not session_id or len(session_id) > 128:
        return None
    key = _key(session_id)
    raw = await redis.get(key)
    if raw is None:
        return None
    data = orjson.loads(raw)
    started = float(data["started"])
    if time.time() - started > settings.web_session_max_s:
        await redis.delete(key)
        return None
    await redis.expire(key, settings.web_session_idle_s)
    return WebSession(session_id, uuid.UUID(data["user_id"]), started)


async def close_session(redis: Redis, session_id: str | None) -> None:
    """Log out: the session is gone at once."""
    if session_id and len(session_id) <= 128:
        await redis.delete(_key(session_id))


async def close_other_sessions(redis: Redis, user_id: uuid.UUID, keep: str | None) -> int:
    """End every session of `user_id`'s but `keep` (the one asking: a password change); how
    many ended."""
    index = _PERSON + str(user_id)
    kept = _key(keep) if keep else None
    others = [key for key in await redis.smembers(index) if key != kept]
    if not others:
        return 0
    ended = await redis.delete(*others)
    await redis.srem(index, *others)
    return int(ended)
