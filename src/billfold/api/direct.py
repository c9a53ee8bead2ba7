"""Request plumbing for the hot path, without FastAPI's per-request dependency solving.

`POST /transfers` is most of the traffic. For an endpoint declared with dependencies, FastAPI
walks its dependency graph anew on every request (the bearer token, the rate limits, the client's
signals, each header, the body); measured in-process, that walk was a quarter of a transfer's
CPU (docs/decisions.md, "Wallet API request path"). An endpoint that takes only the `Request`
reads the same things through the functions here, with the same errors: a missing or bad token
is a 401, a header too long and a bad body are the same 422 problems FastAPI's validation gives.
`openapi()` documents what the endpoint reads, so `/docs` and the schema tests see no difference.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from billfold.api import identity

JSON = "application/json"
M = TypeVar("M", bound=BaseModel)


def bearer_user_id(request: Request) -> uuid.UUID:
    """The user id the request's valid bearer token names; 401 without one (the check
    identity.authenticated_id makes, on the header split as HTTPBearer splits it)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return identity.bearer_user_id(request, scheme, token)


def header(request: Request, name: str, max_length: int) -> str | None:
    """A header's value, or None; longer than `max_length` is a 422 naming the header."""
    value = request.headers.get(name)
    if value is not None and len(value) > max_length:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("header", name),
                    "msg": f"String should have at most {max_length} characters",
                    "input": value,
                    "ctx": {"max_length": max_length},
                }
            ]
        )
    return value


async def json_body(request: Request, model: type[M]) -> M:
    """The body parsed and validated as `model` in one pass (pydantic's own JSON parser); a
    bad body is the 422 FastAPI's validation gives."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status_code, headers, media_type=JSON)


def openapi(body: type[BaseModel], *headers: tuple[str, int, str]) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that reads its bearer token, `headers` (name, maximum
    length, description) and a JSON `body` through this module."""
    return {
        "security": [{"HTTPBearer": []}],
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string", "maxLength": max_length},
            }
            for name, max_length, description in headers
        ],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": body.model_json_schema()}},
        },
    }
