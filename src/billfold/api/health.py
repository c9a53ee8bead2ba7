"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from billfold.api.inputs import InputRoute
from billfold.api.problems import ProblemResponse, problem_responses
from billfold.platform.errors import BillfoldError
from billfold.platform.health import readiness
from billfold.platform.metrics import render_latest

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
    checks = await readiness(request.app.state.pool, request.app.state.redis)
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
