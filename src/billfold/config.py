"""One Settings object, read from the environment once and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Billfold's configuration. Every field maps to an environment variable (see README)."""

    model_config = SettingsConfigDict(env_prefix="BILLFOLD_", extra="ignore", frozen=True)

    # DATABASE_URL / REDIS_URL are the conventional un-prefixed names.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    data_dir: Path = Path(".billfold")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "INFO"
    log_json: bool = True

    db_pool_min: int = 2
    db_pool_max: int = 10
    # A transfer waits at most this long for a row lock before the engine retries it.
    lock_timeout_ms: int = 2000
    statement_timeout_ms: int = 30000

    # Group commit: gather transfers for at most batch_window_ms or until batch_max arrive.
    batch_window_ms: float = 1.0
    batch_max: int = 250
    batch_retries: int = 8
    # Number of batches that may be in flight at once (each on its own connection).
    batch_concurrency: int = 2

    migrate_on_start: bool = True

    # Signs access tokens. Unset, a random key is made once and kept in the data dir (0600), so
    # that every worker on that dir shares it; set it in production.
    secret_key: str | None = Field(default=None, min_length=32)
    token_ttl_s: int = 3600
    # After this many wrong passwords in a row a handle is locked for login_lock_s seconds.
    login_max_failures: int = 10
    login_lock_s: int = 1800
    # The risk engine must score a movement within this budget, or the movement goes on.
    risk_budget_ms: float = 5.0
    # How long the transfer path trusts a user it has looked up (see wallet.users.UserCache).
    user_cache_ttl_s: float = 300.0

    # Rate limits, each a number of requests per rate_limit_period_s (a burst of that many, then
    # an even pace); 0 turns one off. They live in Redis: without it, requests go unthrottled.
    rate_limit_period_s: int = Field(default=60, ge=1)
    login_limit_per_address: int = Field(default=30, ge=0)
    money_limit_per_user: int = Field(default=600, ge=0)
    money_limit_per_address: int = Field(default=1200, ge=0)
    # Take the client's address from the first X-Forwarded-For entry. Only behind a proxy that
    # sets that header, or any client can pick its own address and escape the per-address limits.
    trust_forwarded_for: bool = False

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None
