"""Every error leaves the service as RFC 9457 `application/problem+json`.

BillfoldError carries its own code and status; request validation and routing errors are mapped
here; anything unexpected becomes a bare 500 in the request middleware (see middleware.py), so
that no traceback or internal message ever reaches a client.
"""

from __future__ import annotations

from typing import Any

import orjson
from asyncpg.exceptions import LockNotAvailableError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.responses import Response

from billfold.platform.errors import BillfoldError, problem_body
from billfold.platform.strict import SECRET_FIELDS

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


class ProblemResponse(Response):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, **fields: Any
) -> ProblemResponse:
    body = problem_body(status, code, title, detail, instance, fields)
    return ProblemResponse(body, status_code=status)


def problem_responses(*errors: type[BillfoldError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for an endpoint's errors: each status with the codes it may carry."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        codes.setdefault(error.status, []).append(error.code)
    return {
        status: {
            "description": "code: " + ", ".join(f"`{code}`" for code in listed),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status, listed in sorted(codes.items())
    }


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
    """A row another request holds for longer than lock_timeout: that request's transaction was
    rolled back, so nothing changed, and trying again shortly will likely work."""
    response = problem(
        503,
        "busy",
        "Busy",
        "the data this request needs is locked by another request; retry shortly",
        instance=request.url.path,
    )
    response.headers["Retry-After"] = "1"
    return response


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
