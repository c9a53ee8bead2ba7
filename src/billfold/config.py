"""One Settings object, read from the environment once and passed down."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FundingLimits(BaseModel):
    """What one verification tier may move over the rails, in cents."""

    model_config = {"frozen": True}

    add_funds_daily_minor: int = Field(ge=0)
    add_funds_monthly_minor: int = Field(ge=0)
    cash_out_daily_minor: int = Field(ge=0)
    cash_out_monthly_minor: int = Field(ge=0)
    # A merchant's payouts, summed over all of one owner's merchants: a business's takings,
    # apart from the person's own cash-outs.
    payout_daily_minor: int = Field(default=25_000_00, ge=0)
    payout_monthly_minor: int = Field(default=100_000_00, ge=0)


DEFAULT_FUNDING_LIMITS = {
    # A user with a verified bank account.
    "basic": FundingLimits(
        add_funds_daily_minor=2_500_00,
        add_funds_monthly_minor=10_000_00,
        cash_out_daily_minor=2_500_00,
        cash_out_monthly_minor=10_000_00,
    ),
    # Old enough, with a deposit settled and never a return (see funding.availability).
    "established": FundingLimits(
        add_funds_daily_minor=10_000_00,
        add_funds_monthly_minor=40_000_00,
        cash_out_daily_minor=10_000_00,
        cash_out_monthly_minor=40_000_00,
        payout_daily_minor=100_000_00,
        payout_monthly_minor=400_000_00,
    ),
}


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

    # A request body larger than this is refused (413) before it is read (api.inputs).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

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

    # Events (events/): written to the outbox with every change (the ledger's batches too);
    # published by a relay in each process to Redis Streams on the service's Redis, or to NATS
    # JetStream when events_url is nats://. Published rows are kept events_retention_h hours.
    outbox: bool = True
    events_url: str | None = None
    events_relay: bool = True
    # The consumer groups (notifications, webhooks, figures) run in every API process too.
    events_consumers: bool = True
    events_retention_h: float = 72.0
    # A consumer group's message that a member took and did not acknowledge (the process died)
    # goes to another member after this long.
    events_redeliver_after_s: float = Field(default=30.0, gt=0)
    # Relays share the outbox by partition (of the ordering key): one relay at a time publishes
    # a partition, in order. With one, every event is published in commit order.
    events_partitions: int = Field(default=1, ge=1, le=1024)

    # Webhooks to apps (webhooks/): a dispatcher in every process POSTs the deliveries that are
    # due, at most webhooks_concurrency at once, each given up after webhooks_timeout_s. A
    # failed one is tried again after a random wait of up to webhooks_retry_first_s doubled
    # with each failure (at most webhooks_retry_max_s), until webhooks_retry_window_s after its
    # first try; then the endpoint, if nothing succeeded meanwhile, is disabled.
    webhooks_dispatcher: bool = True
    webhooks_concurrency: int = Field(default=16, ge=1, le=256)
    webhooks_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhooks_retry_first_s: float = Field(default=5.0, gt=0)
    webhooks_retry_max_s: float = Field(default=6 * 3600.0, gt=0)
    webhooks_retry_window_s: float = Field(default=3 * 86400.0, gt=0)
    # How often an idle dispatcher looks for due deliveries.
    webhooks_poll_s: float = Field(default=1.0, gt=0, le=60)
    # After a secret is rotated, the old one signs beside the new one this long.
    webhooks_secret_grace_s: float = Field(default=86400.0, ge=0)
    # Endpoints on plain http or private addresses (loopback, 10/8, link-local...): refused
    # (server-side request forgery) unless allowed; unset, allowed with the sandbox only.
    webhooks_allow_local: bool | None = None

    # Signs access tokens. Unset, a random key is made once and kept in the data dir (0600), so
    # that every worker on that dir shares it; set it in production.
    secret_key: str | None = Field(default=None, min_length=32)
    token_ttl_s: int = 3600
    # After this many wrong passwords in a row a person (every handle of theirs) is locked for
    # login_lock_s seconds; a handle that names nobody is locked alone.
    # The web app's sessions (web.sessions): one ends after this long without a request, and
    # in any case this long after the login.
    web_session_idle_s: int = Field(default=1800, ge=60)
    web_session_max_s: int = Field(default=43200, ge=60)
    login_max_failures: int = 10
    login_lock_s: int = 1800
    # The risk engine must score a movement within this budget, or the movement goes on (with
    # reason risk_timeout). Scoring takes about 2-3 ms here (two queries, one Redis script); the
    # budget leaves room for a loaded database before failing open.
    risk_budget_ms: float = 25.0
    # With the risk engine on, the P2P transfers (scoring and ledger) and funding assessments a
    # process works on at once (0: no bound); the others wait their turn before their scoring
    # budget starts. Unbounded, at saturation the wait for the busy process counted against the
    # budget and most transfers went on unscored (docs/risk.md, "Admission").
    risk_concurrency: int = Field(default=16, ge=0)
    # With the risk engine on, a movement of at least this many minor units (USD cents) whose
    # scoring overruns the budget is refused with 503 risk_unavailable (retry) instead of going
    # on unscored. 0: every overrun fails open.
    risk_fail_closed_minor: int = Field(default=100_000, ge=0)
    # "rules": the risk engine scores every movement before money moves (risk.engine); "off":
    # everything passes.
    risk_engine: str = Field(default="rules", pattern="^(rules|off)$")
    # The learned model beside the rules: "shipped" (the model in the package), a directory
    # that `billfold risk train --out DIR` wrote (its CURRENT file names the version), or "off".
    risk_model: str = "shipped"
    # Rule thresholds, as JSON: the fields of risk.rules.RiskRules, which the risk engine is
    # built from (and `billfold serve` checks at start); unset keys keep their defaults.
    risk_rules: dict[str, Any] = Field(default_factory=dict)
    # How long the transfer path trusts a user it has looked up (see wallet.users.UserCache).
    user_cache_ttl_s: float = 300.0
    # Admission (api.admission): the API requests a process works on at once. Past it, a request
    # is refused at once with 503 `overloaded` and Retry-After, before any work is done, instead
    # of waiting in a queue without bound. 0: no bound. Health, metrics and docs are never shed.
    requests_in_flight_max: int = Field(default=64, ge=0)
    # Repeats of one warning within this many seconds are counted and written as one line at its
    # end (platform.logging.RepeatedWarnings). 0: every warning is written.
    log_repeat_interval_s: float = Field(default=10.0, ge=0)

    # Rate limits, each a number of requests per rate_limit_period_s (a burst of that many, then
    # an even pace); 0 turns one off. They live in Redis: without it, requests go unthrottled.
    rate_limit_period_s: int = Field(default=60, ge=1)
    login_limit_per_address: int = Field(default=30, ge=0)
    money_limit_per_user: int = Field(default=600, ge=0)
    money_limit_per_address: int = Field(default=1200, ge=0)
    # The reverse proxies in front of Billfold: addresses and CIDR networks, comma separated.
    # A request whose peer is one of them comes from the right-most X-Forwarded-For entry that
    # is not one of them; from any other peer the header is ignored, or a client could pick its
    # own address and escape the per-address limits. Empty: the peer is the client.
    trusted_proxies: str = ""
    # Replaced by trusted_proxies: it trusted the first X-Forwarded-For entry from any peer.
    # Setting it true is refused at start, rather than ignored, so that an upgrade says what to
    # set instead.
    trust_forwarded_for: bool = False

    # Encryption at rest (see platform.crypto): `key_id:base64,...`, the first one encrypts.
    data_keys: str | None = None
    blind_index_key: str | None = None

    # The bank partner. Its webhooks are signed with this Standard Webhooks secret (whsec_...);
    # unset, one is made and kept in the data dir (the sandbox partner signs with it too).
    bank_webhook_secret: str | None = None
    # The sandbox bank partner and card processor: on by default on the embedded stack only.
    sandbox: bool | None = None
    # The sandbox settles every pending ACH transfer this many seconds after it starts; 0: never.
    sandbox_settle_after_s: float = Field(default=0.0, ge=0)
    # ACH: an add-funds settles this many banking days after it starts.
    ach_settlement_days: int = Field(default=3, ge=0, le=10)
    # The ODFI (our bank) and company identity written into NACHA files.
    ach_odfi_routing: str = "091000019"
    ach_company_id: str = "1234567890"
    ach_company_name: str = "BILLFOLD"
    # Funds availability: an established user may spend this much of an ACH deposit before it
    # settles (0, the default: nothing before settlement).
    ach_instant_limit_minor: int = Field(default=0, ge=0)
    # Established: a user this old with at least one settled deposit and no return.
    established_after_days: int = Field(default=30, ge=0)
    # Card funding: the fee, in basis points of the amount plus a fixed part, paid by the user.
    card_fee_bps: int = Field(default=300, ge=0, le=10_000)
    card_fee_fixed_minor: int = Field(default=0, ge=0)
    # Merchant payments: the fee, in basis points of the amount (rounded half up) plus a fixed
    # part, paid by the merchant out of the price (merchants.fees: always below the amount).
    merchant_fee_bps: int = Field(default=190, ge=0, le=10_000)
    merchant_fee_fixed_minor: int = Field(default=10, ge=0)
    funding_limits: dict[str, FundingLimits] = Field(
        default_factory=lambda: dict(DEFAULT_FUNDING_LIMITS)
    )

    # Merchants' daily payouts (payout_schedule 'daily'): this process runs them (each merchant
    # is paid once a day whatever the number of processes), from this hour (UTC) on, for a
    # balance of at least payout_min_minor cents.
    payouts_scheduler: bool = True
    payout_hour_utc: int = Field(default=0, ge=0, le=23)
    payout_min_minor: int = Field(default=100, ge=1)

    # Notifications (notifications/): email goes to the SMTP server smtp_url names
    # (smtp://host:port, or smtps:// for TLS from the start; user and password in the URL or in
    # smtp_user / smtp_password). Unset, to the local sink: an SMTP server in one of the
    # service's processes that keeps each message under data_dir/mail (`billfold mail list`).
    smtp_url: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=300)
    mail_from: str = "Billfold <notifications@billfold.localhost>"
    # Notifications are kept this many days, read or not (their emails too).
    notifications_retention_days: int = Field(default=180, ge=1)
    # Retention (ledger.retention, platform.retention): people's idempotency keys are kept this
    # many hours (a retry after that is a new transfer), the bank's applied webhooks this many
    # days; every process purges them each purge_every_s, purge_batch rows a transaction.
    idempotency_retention_h: float = Field(default=24.0, gt=0)
    funding_inbox_retention_days: int = Field(default=30, ge=1)
    purge_every_s: float = Field(default=300.0, gt=0)
    purge_batch: int = Field(default=5_000, ge=1, le=100_000)
    # Monthly partitions (platform.partitions) are created this many months ahead.
    partitions_months_ahead: int = Field(default=2, ge=0, le=24)

    # Reads that may be stale (a person's history and its searches) go to this streaming
    # replica of DATABASE_URL (platform.replica); unset, everything reads the primary. A read of
    # an account waits at most replica_wait_ms for the replica to replay the account's last
    # write, else reads the primary; each write's position is remembered in Redis for
    # replica_remember_s (keep it well above the replica's worst lag).
    database_replica_url: str | None = Field(default=None, validation_alias="DATABASE_REPLICA_URL")
    replica_wait_ms: float = Field(default=100.0, ge=0, le=10_000)
    replica_remember_s: float = Field(default=600.0, gt=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        return ",".join(str(network) for network in proxy_networks(value))

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://host[:port] or smtps://host[:port]")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as error:
            raise ValueError(f"has a bad port ({error})") from None
        return value

    @field_validator("trust_forwarded_for")
    @classmethod
    def _refuse_trust_forwarded_for(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "BILLFOLD_TRUST_FORWARDED_FOR is gone: set BILLFOLD_TRUSTED_PROXIES to the"
                " addresses of the proxies in front of Billfold (e.g. 127.0.0.1 or 10.0.0.0/8)"
            )
        return value

    @property
    def sandbox_enabled(self) -> bool:
        return self.embedded_db if self.sandbox is None else self.sandbox

    @property
    def webhooks_local_allowed(self) -> bool:
        if self.webhooks_allow_local is None:
            return self.sandbox_enabled
        return self.webhooks_allow_local

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(text: str) -> list[Network]:
    """The networks a trusted_proxies value names (an address is a network of one). Raises
    ValueError naming an entry that is neither an address nor a network (nor `*`: trusting
    every peer is what trusted_proxies exists to stop)."""
    networks = []
    for entry in (item.strip() for item in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as error:
            raise ValueError(f"'{entry}' is not an IP address or network ({error})") from None
    return networks
