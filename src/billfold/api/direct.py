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
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from billfold.api import identity
from billfold.api.inputs import JSON, CheckedRequest, admit
from billfold.platform.strict import loads

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
    """The body as `model`: read by the input gate (api.inputs: the size cap, the media type,
    strict JSON), then validated; a bad body is the 422 FastAPI's validation gives."""
    document = (
        await request.json() if isinstance(request, CheckedRequest) else loads(await request.body())
    )
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status_code, headers, media_type=JSON)


def openapi(body: type[BaseModel], *headers: tuple[Any, ...]) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that reads its bearer token, `headers` (name, maximum
    length, description[, more of its schema]) and a JSON `body` through this module."""
    return {
        "security": [{"HTTPBearer": []}],
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string", "maxLength": max_length, **dict(*schema)},
            }
            for name, max_length, description, *schema in headers
        ],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": body.model_json_schema()}},
        },
    }


class HotRoutes:
    """Serves the endpoints that carry most of the traffic straight from their route, past
    Starlette's routing.

    Every request otherwise passes the exception middleware, the router, which tries route
    after route, and two wrappers that make its `Request` and catch its errors: 70 µs of a
    transfer's CPU, measured in-process (docs/decisions.md). For a request to a hot route
    (method and exact path), this makes the `Request`, calls the endpoint, and turns an error
    into the response the app's exception handlers give it, as those layers do. Anything else,
    and a request under a `root_path`, goes on to the app. A hot endpoint takes only the
    `Request` and returns a `Response` (it reads the rest through this module).
    """

    def __init__(self, app: ASGIApp, routes: list[APIRoute], handlers: dict[Any, Any]) -> None:
        self.app = app
        # Each with the media types its body may have (api.inputs), for the same input gate
        # the router's InputRoute passes its requests through; None for a route without it.
        self._routes = {
            (method, route.path): (route, getattr(route, "accepts", None))
            for route in routes
            for method in route.methods or ()
        }
        # As Starlette splits them: 500 and Exception are the last resort, not handled here.
        self._handlers = {k: v for k, v in handlers.items() if k not in (500, Exception)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = (
            self._routes.get((scope["method"], scope["path"]))
            if scope["type"] == "http" and not scope.get("root_path")
            else None
        )
        if hot is None:
            await self.app(scope, receive, send)
            return
        route, accepts = hot
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        request = CheckedRequest(scope, receive, send)
        try:
            if accepts is not None:
                await admit(request, accepts)
            response = await route.endpoint(request)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                raise
            response = await handler(request, error)
            error.__traceback__ = None
        await response(scope, receive, send)

    def _handler(self, error: Exception) -> Any:
        if isinstance(error, HTTPException) and error.status_code in self._handlers:
            return self._handlers[error.status_code]
        return next((self._handlers[c] for c in type(error).__mro__ if c in self._handlers), None)
