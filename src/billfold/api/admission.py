"""Admission control: past a bound on the API requests in flight, refuse at once.

A process that takes every request it is sent, when sent more than it can serve, serves each
later and later: at twice its capacity a transfer's answer came after seconds, past the
2-second promise for a P2P transfer and past the client's patience (docs/benchmarks.md,
"Overload"). Refusing the excess at once keeps the admitted ones fast; the refused one is told
to come back (Retry-After) and loses nothing.

The refusal is made before the request reaches anything else: no token is checked, no rate
limit counted, no idempotency key claimed, no risk counter touched. So a retry with the same
Idempotency-Key is safe; it is the first time the service sees that request.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from billfold.api.problems import ProblemResponse
from billfold.platform.errors import BillfoldError
from billfold.platform.metrics import REQUESTS_SHED

# What is bounded: the API. Health and readiness probes, metrics and the docs are never shed,
# so that an overloaded process still reports itself (and is not restarted for being slow).
BOUNDED_PREFIX = "/api/"
RETRY_AFTER_S = 1


class Overloaded(BillfoldError):
    """The process has as many requests in flight as it takes: nothing was done."""

    code = "overloaded"
    status = 503
    title = "Overloaded"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(RETRY_AFTER_S)}


class _Route(NamedTuple):
    """What the request middleware labels a refused request's metrics with (its `path`), as it
    would the route template: a refused request never reached the router."""

    path: str


SHED_ROUTE = _Route("shed")


class Admission:
    """Lets at most `limit` API requests of this process in at once (0: no bound); refuses the
    others at once with 503 `overloaded` and `Retry-After`.

    Each worker process builds its own app, hence its own count. A request counts from when it
    is let in until its response has been sent (or it was cancelled).
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.limit
            or scope["type"] != "http"
            or not scope["path"].startswith(BOUNDED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            REQUESTS_SHED.inc()
            scope["route"] = SHED_ROUTE
            await _refusal(scope, self.limit)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _refusal(scope: Scope, limit: int) -> ProblemResponse:
    error = Overloaded(
        f"the server is working on {limit} requests, as many as it takes at once; nothing was "
        f"done: retry after {RETRY_AFTER_S} s (with the same Idempotency-Key)",
        retry_after_s=RETRY_AFTER_S,
    )
    return ProblemResponse(
        error.to_problem(instance=scope["path"]), status_code=error.status, headers=error.headers()
    )
