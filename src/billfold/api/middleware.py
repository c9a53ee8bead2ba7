"""Per-request plumbing: request id, access log, HTTP metrics, and the last-resort 500."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billfold.api.problems import internal_error
from billfold.platform.logging import get_logger, request_id_var
from billfold.platform.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
# A client may choose its request id if it is short and plain; otherwise we make one.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

log = get_logger("billfold.http")
# The standard library's logger under `log` (platform.logging): its level decides what is written.
_stdlib_log = logging.getLogger("billfold.http")


class RequestContextMiddleware:
    """Tag each request with an id, log and count it, and turn an unhandled error into a 500.

    The id comes from the X-Request-ID header when acceptable, is echoed in the response header,
    and is on every log line written while the request is served. Unhandled errors are logged
    here with that id and answered with a problem that carries no internal detail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started_at = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                id_header = (REQUEST_ID_HEADER, request_id.encode())
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", method=scope["method"], path=scope["path"])
            if response_started:
                raise
            await internal_error(request_id)(scope, receive, send_with_id)
        finally:
            _observe(scope, status, time.perf_counter() - started_at)
            request_id_var.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            candidate: str = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.match(candidate):
                return candidate
    return f"{_id_prefix}{next(_id_counter):016x}"


# Ids we make: a random half per process and a counter, 32 hex digits like a uuid4's; unique
# without asking the kernel for randomness on every request (as uuid4 does). Not secret: a
# client may choose its own.
_id_prefix: str
_id_counter: Iterator[int]


def _reseed_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count()


_reseed_ids()
os.register_at_fork(after_in_child=_reseed_ids)


def _observe(scope: Scope, status: int, duration_s: float) -> None:
    method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
    # The route template (/accounts/{id}), never the raw path, keeps label cardinality bounded.
    route = getattr(scope.get("route"), "path", "unmatched")
    count, duration = _series(method, route, status)
    count.inc()
    duration.observe(duration_s)
    if _stdlib_log.isEnabledFor(logging.INFO):  # a dropped line costs half a written one
        log.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(duration_s * 1000, 3),
        )


@functools.cache
def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The labelled request counter and duration histogram: looked up once per label set
    (bounded: known methods, route templates, status codes), not on every request."""
    return (
        HTTP_REQUESTS.labels(method, route, str(status)),
        HTTP_REQUEST_DURATION.labels(method, route),
    )
