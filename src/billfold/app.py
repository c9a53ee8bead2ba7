"""The ASGI app. Nothing happens at import: `create_app` builds it and its lifespan connects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import asyncpg
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from redis.asyncio import Redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from billfold.api import (
    admin,
    auth,
    checkout,
    direct,
    docs,
    funding,
    health,
    history,
    merchant_sales,
    merchants,
    notifications,
    payments,
    payouts,
    sandbox,
    wallet,
    webhook_endpoints,
)
from billfold.api.admission import Admission
from billfold.api.contract import document_responses
from billfold.api.inputs import InputRoute
from billfold.api.middleware import RequestContextMiddleware
from billfold.api.problems import install_problem_handlers
from billfold.config import Settings, proxy_networks
from billfold.events import consumer as events_consumer
from billfold.events import figures, relay
from billfold.funding.cards import NoProcessor, SandboxProcessor
from billfold.funding.recovery import keep_booking
from billfold.funding.sandbox import auto_settle
from billfold.funding.service import Funding
from billfold.funding.webhooks import purge_inbox
from billfold.ledger.engine import Ledger
from billfold.ledger.retention import purge_idempotency_keys
from billfold.merchants import checkout as merchant_checkout
from billfold.merchants import holds as merchant_holds
from billfold.merchants import records as merchant_records
from billfold.merchants import refunds
from billfold.merchants.schedule import keep_paying_out
from billfold.merchants.service import Merchants
from billfold.notifications.service import Notifications
from billfold.platform import db, partitions, retention, tasks
from billfold.platform.embedded import ensure_database, ensure_redis
from billfold.platform.logging import configure_logging, get_logger
from billfold.platform.metrics import mark_worker_exited
from billfold.platform.migrate import apply_migrations
from billfold.platform.redis import create_redis
from billfold.platform.replica import REPLICA_COMMAND_TIMEOUT_S, Reads
from billfold.platform.runtime import tune_gc
from billfold.risk.assessments import RECORD_WITH_TRANSFER, WITH_TRANSFER
from billfold.risk.engine import PAST_POOL, RulesEngine, load_scorer
from billfold.risk.gate import AllowAll, Gate, RiskEngine
from billfold.risk.rules import RiskRules
from billfold.wallet.balances import BalanceCache
from billfold.wallet.standing import engine_freezer
from billfold.wallet.users import UserCache
from billfold.web import site as web
from billfold.webhooks import dispatch, fanout
from billfold.webhooks.service import Webhooks

log = get_logger("billfold.app")
# The endpoints served past the router (api.direct.HotRoutes): most of the traffic.
HOT_ENDPOINTS = (wallet.send_money, payments.make_payment)


def create_app(settings: Settings) -> FastAPI:
    """The service, configured by `settings`. Connections are opened by its lifespan."""
    app = FastAPI(
        title="Billfold",
        summary="An open-source digital wallet backend.",
        version=_package_version(),
        lifespan=_lifespan,
        # Metrics are Prometheus (platform.metrics) and logs structlog (platform.logging).
        # FastAPI's OpenTelemetry would otherwise ask, on every request, whether a provider
        # has been configured since.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Served by api.docs, through the input gate and without a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(auth.router)
    app.include_router(wallet.router)
    app.include_router(history.router)
    app.include_router(funding.router)
    app.include_router(admin.router)
    app.include_router(notifications.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(merchants.router)
    app.include_router(merchant_sales.router)
    app.include_router(checkout.router)
    app.include_router(payments.router)
    app.include_router(payouts.router)
    if settings.sandbox_enabled:
        app.include_router(sandbox.router)
    web.install(app)
    routes = [context.original_route for context in iter_route_contexts(app.routes)]
    # Every request passes the input gate (api.inputs): a router without it, or a route of
    # another kind (a mount, a plain Starlette route), would let a NUL, a duplicate key or an
    # oversized body through to its endpoints.
    ungated = [getattr(r, "path", repr(r)) for r in routes if not isinstance(r, InputRoute)]
    if ungated:
        raise RuntimeError(f"routes without the input gate (api.inputs.InputRoute): {ungated}")
    document_responses(app)
    # Middleware added last runs first: the request context, admission (api.admission), then
    # the hot routes (api.direct).
    hot = [r for r in routes if isinstance(r, APIRoute) and r.endpoint in HOT_ENDPOINTS]
    assert len(hot) == len(HOT_ENDPOINTS), "a hot endpoint has no route"
    app.add_middleware(direct.HotRoutes, routes=hot, handlers=app.exception_handlers)
    app.add_middleware(Admission, limit=settings.requests_in_flight_max)
    app.add_middleware(RequestContextMiddleware)
    proxies = proxy_networks(settings.trusted_proxies)
    if proxies:
        # Outermost, so that everything within (the limits, the risk engine's signals) sees the
        # client the trusted proxies name. Each server Billfold starts leaves the headers alone
        # (cli._serve): this is the one place they are read.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=[str(p) for p in proxies])
    return app


def factory() -> FastAPI:
    """Entry point for `uvicorn --factory billfold.app:factory`: settings from the environment.

    Each uvicorn worker process calls this, so it also sets up that process's logging. Give
    uvicorn `--no-proxy-headers`, as `billfold serve` does: uvicorn's own handling trusts
    X-Forwarded-For from 127.0.0.1 by default, whatever BILLFOLD_TRUSTED_PROXIES says.
    """
    settings = Settings()
    configure_logging(settings)
    return create_app(settings)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        database_url = await asyncio.to_thread(ensure_database, settings)
        redis_url = await asyncio.to_thread(ensure_redis, settings)
        pool = await db.create_pool(database_url, settings)
        stack.push_async_callback(db.close_pool, pool)
        redis = await create_redis(redis_url)
        stack.push_async_callback(redis.aclose)
        if settings.migrate_on_start:
            async with pool.acquire() as conn:
                applied = await apply_migrations(conn)
            for name in applied:
                log.info("migration applied", migration=name)
        scoring = settings.risk_engine == "rules"
        # With scoring, allowed transfers' assessments are written in the ledger's batches.
        side_statements = {WITH_TRANSFER: RECORD_WITH_TRANSFER} if scoring else {}
        side_statements |= refunds.SIDE_STATEMENTS  # refunds completed with their money
        # Merchant payments' rows, written with their money (merchants.records).
        side_statements |= merchant_records.SIDE_STATEMENTS
        ledger = Ledger(pool, settings, side_statements=side_statements)
        balances = BalanceCache(redis)
        ledger.after_commit = balances.put_many
        app.state.reads = await _start_reads(stack, settings, pool, redis)
        if app.state.reads.replica is not None:
            # Read-your-writes on the replica: each batch's WAL position, by account.
            ledger.after_commit_position = app.state.reads.remember
        await db.open_connections(pool, settings.db_pool_max)
        await ledger.warm_up()
        await ledger.start()
        stack.push_async_callback(ledger.stop)
        sweeper = asyncio.create_task(_sweep_expired_holds(ledger), name="hold-sweeper")
        stack.push_async_callback(tasks.stop, sweeper)
        for task in _upkeep(pool, settings):
            stack.push_async_callback(tasks.stop, task)
        if settings.events_relay:
            # One relay a process; it stops before the pool it reads closes (the stack unwinds).
            relaying = asyncio.create_task(relay.serve(pool, settings, redis_url), name="relay")
            stack.push_async_callback(tasks.stop, relaying)
        if settings.events_consumers:
            # Its mailer stops after the consumers that feed it (the stack unwinds).
            told = await Notifications.start(pool, settings)
            stack.push_async_callback(told.stop)
            for consumer in _consumers(pool, settings, told):
                task = asyncio.create_task(
                    events_consumer.serve(consumer, settings, redis_url), name=consumer.group
                )
                stack.push_async_callback(tasks.stop, task)
        app.state.webhooks = Webhooks.start(pool, settings)
        if settings.webhooks_dispatcher:
            # On connections of its own: a slow receiver never holds one the money path needs.
            hooks_pool = await db.create_pool(database_url, settings, size=dispatch.CONNECTIONS)
            stack.push_async_callback(hooks_pool.close)
            dispatching = asyncio.create_task(
                dispatch.serve(hooks_pool, app.state.webhooks), name="webhook-dispatcher"
            )
            stack.push_async_callback(tasks.stop, dispatching)
        app.state.funding = await Funding.start(pool, ledger, settings)
        app.state.merchants = await Merchants.start(pool, ledger, settings)
        merchant_holds.register()
        expiring = asyncio.create_task(
            merchant_checkout.keep_expiring(pool), name="checkout-sweeper"
        )
        stack.push_async_callback(tasks.stop, expiring)
        # Refunds reserved by a process that died before moving them (merchants.refunds).
        resuming = asyncio.create_task(refunds.keep_resuming(pool, ledger), name="refund-resumer")
        stack.push_async_callback(tasks.stop, resuming)
        app.state.cards = SandboxProcessor(pool) if settings.sandbox_enabled else NoProcessor()
        recovery = asyncio.create_task(
            keep_booking(app.state.funding, app.state.cards), name="funding-recovery"
        )
        stack.push_async_callback(tasks.stop, recovery)
        if settings.sandbox_enabled and settings.sandbox_settle_after_s > 0:
            settler = asyncio.create_task(
                auto_settle(app.state.funding, settings.sandbox_settle_after_s),
                name="sandbox-settler",
            )
            stack.push_async_callback(tasks.stop, settler)
        stack.callback(mark_worker_exited)
        app.state.pool = pool
        app.state.redis = redis
        app.state.ledger = ledger
        app.state.balances = balances
        app.state.risk = await _start_risk(stack, settings, database_url, pool, redis)
        # Without scoring there is nothing to bound (config.risk_concurrency) and nothing whose
        # overrun should refuse a large movement (config.risk_fail_closed_minor).
        bounded = scoring and settings.risk_concurrency > 0
        app.state.risk_slots = asyncio.Semaphore(settings.risk_concurrency) if bounded else None
        app.state.fail_closed_minor = settings.risk_fail_closed_minor if scoring else 0
        app.state.users = UserCache(settings.user_cache_ttl_s)
        if settings.payouts_scheduler:
            paying = asyncio.create_task(
                keep_paying_out(app.state.funding, lambda: _gate(app), settings),
                name="payout-scheduler",
            )
            stack.push_async_callback(tasks.stop, paying)
        log.info("started", workers=settings.workers, migrate_on_start=settings.migrate_on_start)
        tune_gc()
        yield
        log.info("stopping")


def _consumers(
    pool: asyncpg.Pool, settings: Settings, told: Notifications
) -> list[events_consumer.Consumer]:
    """The stream's consumer groups this process takes part in (events.consumer)."""
    return [
        events_consumer.Consumer("notifications", told.handle),
        events_consumer.Consumer("webhooks", fanout.handler(pool)),
        figures.consumer(pool, settings),
    ]


async def _start_risk(
    stack: AsyncExitStack, settings: Settings, database_url: str, pool: asyncpg.Pool, redis: Redis
) -> RiskEngine:
    """The engine behind the risk gate, warmed up: the rules and the model (risk_engine
    "rules"), their past queries on a pool of their own, a user they freeze frozen by the wallet
    (wallet.standing); otherwise AllowAll."""
    if settings.risk_engine != "rules":
        allow = AllowAll(redis)
        await allow.warm_up()
        return allow
    pasts = await db.create_pool(database_url, settings, **PAST_POOL)
    stack.push_async_callback(db.close_pool, pasts)
    engine = RulesEngine(
        pool,
        redis,
        RiskRules.model_validate(settings.risk_rules),
        load_scorer(settings.risk_model),
        freeze=engine_freezer(pool),
        pasts=pasts,
        with_transfers=True,
    )
    stack.push_async_callback(engine.log.flush)
    await engine.warm_up()
    return engine


async def _start_reads(
    stack: AsyncExitStack, settings: Settings, pool: asyncpg.Pool, redis: Redis
) -> Reads:
    """Where reads that may be stale run: the replica's pool beside the primary's, if there is
    a replica (platform.replica)."""
    replica = None
    if settings.database_replica_url:
        replica = await db.create_pool(
            settings.database_replica_url, settings, command_timeout_s=REPLICA_COMMAND_TIMEOUT_S
        )
        stack.push_async_callback(db.close_pool, replica)
    return Reads.of(pool, replica, redis, settings)


def _gate(app: FastAPI) -> Gate:
    """The risk gate as a request would have it now (api.signals.risk_gate), for the work a
    process does on its own (the daily payouts)."""
    s = app.state
    return Gate(s.risk, s.redis, s.settings.risk_budget_ms, s.fail_closed_minor, s.risk_slots)


def _package_version() -> str:
    try:
        return version("billfold")
    except PackageNotFoundError:
        return "0.0.0"


def _upkeep(pool: asyncpg.Pool, settings: Settings) -> list[asyncio.Task[None]]:
    """Every process keeps the months ahead partitioned and purges what is past retention
    (both safe with several processes at it)."""
    purging = retention.keep_purging(
        settings.purge_every_s,
        lambda: purge_idempotency_keys(
            pool, settings.idempotency_retention_h, settings.purge_batch
        ),
        lambda: purge_inbox(pool, settings.funding_inbox_retention_days, settings.purge_batch),
    )
    ensuring = partitions.keep_ensuring(pool, settings.partitions_months_ahead)
    return [
        asyncio.create_task(purging, name="retention-purge"),
        asyncio.create_task(ensuring, name="partitions"),
    ]


# How often each process looks for expired holds to void.
SWEEP_INTERVAL_S = 5.0


async def _sweep_expired_holds(ledger: Ledger) -> None:
    """Release the money of holds past their expiry, every few seconds, for as long as the
    process serves. A failed sweep is logged and the next one tries again."""
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        try:
            voided = await ledger.void_expired_holds()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            tasks.raise_if_cancelling()
            log.warning("hold sweep failed", error=str(error))
            continue
        if voided:
            log.info("expired holds voided", count=voided)
