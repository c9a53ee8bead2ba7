"""Every error leaves the service as RFC 9457 `application/problem+json`.

BillfoldError carries its own code and status; request validation and routing errors are mapped
here; anything unexpected becomes a bare 500 in the request middleware (see middleware.py), so
that no traceback or internal message ever reaches a client.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from asyncpg.exceptions import LockNotAvailableError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException
from starlette.responses import Response

from billfold.ledger.errors import (
    BalanceLimitExceeded,
    DebtOutstanding,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerBusy,
)
from billfold.platform.errors import BillfoldError, WalletFrozen, problem_body
from billfold.platform.strict import SECRET_FIELDS
from billfold.risk.gate import DeclinedByRisk, RiskUnavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Values echoed back in a validation problem are cut to this many characters.
MAX_ECHOED_VALUE_CHARS = 100
# At most this many validation errors are listed in one problem.
MAX_LISTED_ERRORS = 20

_HTTP_CODES = {
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}

# What moving money out of a wallet may be refused for, once the request is read: every
# endpoint that does (a transfer, a merchant payment) lists them.
MONEY_REFUSALS: tuple[type[BillfoldError], ...] = (
    InsufficientFunds,
    BalanceLimitExceeded,
    WalletFrozen,
    DebtOutstanding,
    IdempotencyKeyReused,
    DeclinedByRisk,
    RiskUnavailable,
    LedgerBusy,
)


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, **fields: Any
) -> ProblemResponse:
    body = problem_body(status, code, title, detail, instance, fields)
    return ProblemResponse(body, status_code=status)


class Problem(BaseModel):
    """What every error answers (RFC 9457 problem details), as `problem` and
    BillfoldError.to_problem build it: the fields below, then the error's own (`field` and
    `errors` for a validation problem, `retry_after_s`, `attempts_left`, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the kind of problem: one per `code`.")
    title: str = Field(description="The kind of problem, in words.")
    status: int = Field(description="The HTTP status.")
    code: str = Field(description="The stable machine code: what a program should test.")
    detail: str = Field(description="This occurrence, naming the value at fault.")
    instance: str | SkipJsonSchema[None] = Field(default=None, description="The request's path.")


PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}
# The machine-readable list of the codes a documented status may carry (an OpenAPI extension).
CODES_KEY = "x-problem-codes"
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def problem_responses(
    *errors: type[BillfoldError], notes: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the errors an endpoint answers: each status, a problem+json
    body, and the codes it may carry (`notes`: a sentence for a status, if its codes need
    one). api.contract adds what every operation of its kind answers."""
    codes: dict[int, list[type[BillfoldError]]] = {}
    for error in errors:
        codes.setdefault(error.status, []).append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, listed in sorted(codes.items()):
        note = (notes or {}).get(status)
        heading = HTTPStatus(status).phrase + (f": {note}" if note else "")
        response: dict[str, Any] = {
            "description": heading + "\n",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": dict(PROBLEM_REF)}},
            CODES_KEY: [],
        }
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        add_codes(response, listed)
        responses[status] = response
    return responses


def add_codes(response: dict[str, Any], errors: list[type[BillfoldError]]) -> None:
    """Lists `errors` in a documented problem response, each code once."""
    for error in errors:
        if error.code not in response[CODES_KEY]:
            response[CODES_KEY].append(error.code)
            response["description"] += f"\n- `{error.code}`: {error.title}"


class Busy(BillfoldError):
    """A row another request holds for longer than lock_timeout: that request's transaction
    was rolled back, so nothing changed, and trying again shortly will likely work."""

    code = "busy"
    status = 503
    title = "Busy"

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "1"}


def internal_error(request_id: str | None) -> ProblemResponse:
    return problem(
        500,
        "internal_error",
        "Internal server error",
        "the server failed to handle this request; quote the request id when reporting it",
        request_id=request_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BillfoldError, _billfold_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(LockNotAvailableError, _busy)


async def _busy(request: Request, error: LockNotAvailableError) -> ProblemResponse:
    busy = Busy("the data this request needs is locked by another request; retry shortly")
    return await _billfold_error(request, busy)


async def _billfold_error(request: Request, error: BillfoldError) -> ProblemResponse:
    return ProblemResponse(
        error.to_problem(instance=request.url.path),
        status_code=error.status,
        headers=error.headers(),
    )


async def _validation_error(request: Request, error: RequestValidationError) -> ProblemResponse:
    errors = [_describe(item) for item in error.errors()[:MAX_LISTED_ERRORS]]
    first = errors[0] if errors else {"field": "request", "message": "is invalid"}
    if "value" in first:
        detail = f"{first['field']} {first['value']!r}: {first['message']}"
    else:
        detail = f"{first['field']}: {first['message']}"
    return problem(
        422,
        "validation_error",
        "Invalid request",
        detail,
        instance=request.url.path,
        field=first["field"],
        errors=errors,
    )


async def _http_error(request: Request, error: HTTPException) -> ProblemResponse:
    code, title = _HTTP_CODES.get(error.status_code, ("http_error", "HTTP error"))
    response = problem(error.status_code, code, title, str(error.detail), instance=request.url.path)
    if error.headers:
        response.headers.update(error.headers)
    if error.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. The router answers 405 with the
    methods of the first route whose path matched, but one path may have several routes (GET
    and POST /api/v1/cards are two)."""
    path, root = request.url.path, request.scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        path = path[len(root) :]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return sorted(methods)


def _describe(item: Any) -> dict[str, Any]:
    """One pydantic error as {field, message[, value]}; `body.amount` becomes `amount`."""
    if item.get("type") == "json_invalid":
        # The location of a JSON syntax error is a character offset, not a field.
        return {"field": "body", "message": "is not valid JSON", "type": "json_invalid"}
    location = [str(part) for part in item.get("loc", ())]
    if len(location) > 1 and location[0] in ("body", "query", "path", "header", "cookie"):
        location = location[1:]
    described: dict[str, Any] = {
        "field": ".".join(location) or "request",
        "message": str(item.get("msg", "is invalid")),
        "type": str(item.get("type", "value_error")),
    }
    # A missing field has no value of its own (pydantic reports the enclosing object).
    if item.get("type") != "missing" and "input" in item:
        secret = bool(location) and location[-1] in SECRET_FIELDS
        described["value"] = "[redacted]" if secret else _echo(item["input"])
    return described


def _echo(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        # An object or list may hold a card or account number: name its type only.
        return f"<{type(value).__name__}>"
    return value[:MAX_ECHOED_VALUE_CHARS]
