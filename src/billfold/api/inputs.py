"""What every request must be before any endpoint reads it: one gate for every route.

Every route of the API is an `InputRoute` (create_app refuses one that is not), and the hot
routes pass the same gate (api.direct). Before the endpoint, its dependencies or FastAPI's
parsing see anything:

- a body larger than `settings.max_body_bytes` (64 KiB) is a 413 `payload_too_large`, refused
  from its Content-Length before it is read, or as soon as a streamed body passes the cap;
- a body in a media type the route does not take (a JSON route sent text/plain, or no
  Content-Type at all) is a 415 `unsupported_media_type` naming both;
- a JSON body is read once, by platform.strict: a key given twice, NaN, invalid UTF-8 or JSON
  is a 422 `validation_error`; the endpoint gets that reading (numbers with a fraction as
  Decimal, so an amount is judged as written);
- a NUL character or a lone surrogate in any text (a path or query parameter, a form field, a
  JSON key or string) is a 422 `validation_error` naming the field.

These are checks of the request's form, made before the caller's token is read (as FastAPI
refuses malformed JSON before any dependency runs); what the values mean is judged after.
Nothing reaches a handler, the database or a log line that they would refuse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from billfold.platform.errors import BillfoldError
from billfold.platform.strict import check_text, loads

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class PayloadTooLarge(BillfoldError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(BillfoldError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class Body(BaseModel):
    """A JSON request body. Its text was checked by the gate before it was parsed."""


class CheckedRequest(Request):
    """A request whose body is read under the size cap and whose JSON is read strictly."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            self._body = await _capped_body(self, _max_body_bytes(self))
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class InputRoute(APIRoute):
    """An APIRoute whose requests pass `admit` before FastAPI reads them."""

    @functools.cached_property
    def accepts(self) -> frozenset[str]:
        """The media types of the request body as the OpenAPI operation states them (a
        declared body parameter's, or `openapi_extra`'s for an endpoint that reads its own);
        none for an endpoint that takes no body."""
        if self.body_field is not None:
            return frozenset({getattr(self.body_field.field_info, "media_type", JSON)})
        body = (self.openapi_extra or {}).get("requestBody", {})
        return frozenset(body.get("content", {}))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admitted(request: Request) -> Response:
            checked = CheckedRequest(request.scope, request.receive)
            await admit(checked, self.accepts)
            return await handler(checked)

        return admitted


async def admit(request: CheckedRequest, accepts: frozenset[str]) -> None:
    """The gate (module docstring): raises the 4xx for the first thing wrong with `request`.
    Cheap for a good request: one pass over the headers, and the body read once."""
    scope = request.scope
    for name, value in scope.get("path_params", {}).items():
        if isinstance(value, str):
            check_text(value, name)
    # A NUL reaches a query parameter percent-encoded (the request line cannot carry one).
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in request.query_params.multi_items():
            check_text(value, name)
    length, content_type, chunked = _framing(scope)
    limit = _max_body_bytes(request)
    # (More digits than any cap has cannot be converted cheaply: they are over it anyway.)
    if length.isdigit() and (len(length) > 18 or int(length) > limit):
        raise _too_large(limit, f"{length[:20].decode()} bytes")
    if not accepts or not (chunked or length.strip(b"0")):
        return  # an endpoint that takes no body does not read one
    media_type = content_type.partition(b";")[0].strip().lower().decode("latin-1")
    if media_type not in accepts:
        given = f"'{media_type}'" if media_type else "no Content-Type"
        raise UnsupportedMediaType(
            f"this endpoint takes {' or '.join(sorted(accepts))}, not {given}",
            content_type=media_type,
            accepted=sorted(accepts),
        )
    if media_type == JSON:
        await request.json()
    elif media_type == FORM:
        await request.body()  # under the cap; the form is parsed from it
        for name, value in (await request.form()).multi_items():
            if not isinstance(value, UploadFile):
                check_text(value, name)


def _framing(scope: Scope) -> tuple[bytes, bytes, bool]:
    """Content-Length (b"" if none), Content-Type (b"" if none), and whether the body is sent
    in chunks: in one pass over the raw headers (ASGI gives their names in lower case)."""
    length = content_type = b""
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"content-type":
            content_type = value
        elif name == b"transfer-encoding":
            chunked = True
    return length, content_type, chunked


def _max_body_bytes(request: Request) -> int:
    return int(request.app.state.settings.max_body_bytes)


async def _capped_body(request: Request, limit: int) -> bytes:
    """The body, read from the ASGI messages until more than `limit` bytes have come."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"more than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int, size: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {size}; this service takes at most {limit} bytes",
        max_body_bytes=limit,
    )
