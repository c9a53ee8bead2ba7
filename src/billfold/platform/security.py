"""Password hashing (Argon2id), signed access tokens (JWT, HS256), signed device tokens, and
the four-eyes rule: no operator decides on their own account or money."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cachetools import TTLCache

from billfold.config import Settings
from billfold.platform.errors import BillfoldError

_hasher = PasswordHasher()
# Verified against when a handle does not exist, so that a miss takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("billfold-no-such-user")
TOKEN_ALGORITHM = "HS256"  # noqa: S105 - an algorithm name


class Unauthenticated(BillfoldError):
    code = "unauthenticated"
    status = 401
    title = "Not authenticated"

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class FourEyes(BillfoldError):
    """An operator deciding on their own account or money: another operator must."""

    code = "four_eyes"
    status = 403
    title = "Another operator must decide"


def check_four_eyes(
    operator_id: uuid.UUID | None, subjects: Iterable[uuid.UUID], what: str
) -> None:
    """Raises FourEyes when the operator is one of the users a decision is about (`subjects`:
    the user acted on, a movement's parties); `what` names the decision's object. No operator:
    the risk engine decides, and may decide on anyone."""
    if operator_id is not None and operator_id in set(subjects):
        raise FourEyes(
            f"{what} is operator {operator_id}'s own: another operator must decide on it",
            operator_id=str(operator_id),
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def secret_key(settings: Settings) -> str:
    """The configured key, or one made once and kept in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    return kept_secret(settings, "secret_key", lambda: secrets.token_urlsafe(48))


def kept_secret(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A secret made once by `make` and kept in the data dir (0600), for when the environment
    sets none: every process on that data dir then shares it. Production sets them all."""
    path = Path(settings.data_dir) / name
    if not path.exists():
        # Written whole to a file of our own, then linked into place: a process that starts at
        # the same moment either links first or finds the complete secret, never half of one.
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def issue_token(user_id: uuid.UUID, key: str, ttl_s: int) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_s, "jti": secrets.token_hex(8)}
    return jwt.encode(claims, key, algorithm=TOKEN_ALGORITHM)


class TokenReader:
    """Reads access tokens, remembering the ones it has verified: an app sends one token many
    times, and checking its signature again each time costs more than the rest of the check.

    Keyed by the whole token string and this reader's key, so only the very token that was
    verified is found; its expiry is still checked on every use.
    """

    def __init__(self, key: str, max_tokens: int = 100_000, ttl_s: float = 300.0) -> None:
        self._key = key
        self._verified: TTLCache[str, tuple[uuid.UUID, int]] = TTLCache(max_tokens, ttl_s)

    def read(self, token: str) -> uuid.UUID:
        found = self._verified.get(token)
        if found is not None:
            user_id, expires_at = found
            if time.time() < expires_at:
                return user_id
            raise Unauthenticated("the access token has expired")
        user_id, expires_at = _verify(token, self._key)
        self._verified[token] = (user_id, expires_at)
        return user_id


def _verify(token: str, key: str) -> tuple[uuid.UUID, int]:
    """The user id and expiry of a valid token; Unauthenticated for an expired, forged or bad
    one."""
    try:
        claims = jwt.decode(
            token, key, algorithms=[TOKEN_ALGORITHM], options={"require": ["sub", "exp"]}
        )
        return uuid.UUID(claims["sub"]), int(claims["exp"])
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthenticated("the access token is not valid") from None


# Device tokens: "dv1.<user id, hex>.<device id>.<signature>", the signature an HMAC-SHA256 of
# "<user id>.<device id>" under a key derived from the secret key. The app keeps the token and
# sends it back in X-Device-Id; the server alone chooses device ids, so none can be guessed.
DEVICE_TOKEN_VERSION = "dv1"  # noqa: S105 - a format tag
_DEVICE_KEY_LABEL = b"billfold device tokens v1"


@dataclass(frozen=True)
class DeviceToken:
    user_id: uuid.UUID  # the user the token was issued to
    device_id: str


def device_key(secret: str) -> bytes:
    """The device tokens' key: derived from the secret key, so that a device token's
    signature is no access token's."""
    return hmac.new(secret.encode(), _DEVICE_KEY_LABEL, hashlib.sha256).digest()


def new_device_id() -> str:
    """A device id nobody can guess (128 random bits)."""
    return secrets.token_urlsafe(16)


def sign_device(key: bytes, user_id: uuid.UUID, device_id: str) -> str:
    """The token binding `device_id` to `user_id`."""
    if not device_id or "." in device_id or len(device_id) > 64:
        raise ValueError(f"device id {device_id[:64]!r} must be 1 to 64 characters and no dot")
    signature = _device_mac(key, user_id, device_id)
    return f"{DEVICE_TOKEN_VERSION}.{user_id.hex}.{device_id}.{signature}"


def read_device_token(key: bytes, token: str) -> DeviceToken | None:
    """The user and device a token names when its signature is ours; None for anything else
    (an unsigned value, a bad signature, a malformed token)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != DEVICE_TOKEN_VERSION or not parts[2]:
        return None
    try:
        user_id = uuid.UUID(hex=parts[1])
    except ValueError:
        return None
    if parts[1] != user_id.hex:
        return None
    if not hmac.compare_digest(parts[3], _device_mac(key, user_id, parts[2])):
        return None
    return DeviceToken(user_id, parts[2])


def _device_mac(key: bytes, user_id: uuid.UUID, device_id: str) -> str:
    mac = hmac.new(key, f"{user_id.hex}.{device_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
