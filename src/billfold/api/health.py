"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import APIRouter, Request, Response

from billfold.api.inputs import InputRoute
from billfold.api.problems import ProblemResponse, problem_responses
from billfold.platform.errors import BillfoldError
from billfold.platform.metrics import render_latest
from billfold.platform.migrate import MigrationError, pending_migrations

# Each readiness check gives up after this long; a probe must answer quickly.
CHECK_TIMEOUT_S = 2.0

router = APIRouter(tags=["operations"], route_class=InputRoute)


class NotReady(BillfoldError):
    code = "not_ready"
    status = 503
    title = "Not ready"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP. Says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(NotReady))
async def readyz(request: Request) -> Any:
    """Ready for traffic: PostgreSQL answers, Redis answers PING, and no migration is pending."""
    state = request.app.state
    checks = {
        "database": await _check_database(state.pool),
        "redis": await _check_redis(state.redis),
    }
    if checks["database"] == "ok":
        checks["migrations"] = await _check_migrations(state.pool)
    failed = {name: outcome for name, outcome in checks.items() if outcome != "ok"}
    if not failed:
        return {"status": "ready", "checks": checks}
    detail = "; ".join(f"{name}: {outcome}" for name, outcome in failed.items())
    error = NotReady(detail, failed=sorted(failed), checks=checks)
    return ProblemResponse(error.to_problem(), status_code=error.status)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics() -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)


async def _check_database(pool: asyncpg.Pool) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


async def _check_redis(client: redis.asyncio.Redis) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await client.ping()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, redis.exceptions.RedisError) as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


async def _check_migrations(pool: asyncpg.Pool) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), pool.acquire() as conn:
            pending = await pending_migrations(conn)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, MigrationError) as error:
        return f"cannot read migrations ({type(error).__name__})"
    if pending:
        return f"pending: {', '.join(pending)}"
    return "ok"
