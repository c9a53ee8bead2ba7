"""The contract is the OpenAPI document: every response an operation can give is in it.

A client generated from `/openapi.json` must know every status it may get back and its body.
Each documented error status is an `application/problem+json` body (api.problems.Problem)
listing the codes it may carry (in words, and in `x-problem-codes`). They come from two places
and are rendered one way (api.problems.problem_responses):

- what an endpoint itself refuses, declared where it is routed:
  `responses=problem_responses(HandleTaken, ...)`;
- what every operation of a kind answers, whatever its endpoint does, declared once here
  (`answered_by_kind`): the input gate's refusals (api.inputs) on every operation, 401 on an
  operation that takes a bearer token, what a shared dependency refuses (`DEPENDENCIES`: a
  rate limit, the operators' 404) and admission control's 503 (api.admission) under `/api/`.

The constraints of the inputs are stated with them (api.fields); what a schema allows, the API
accepts as to form (a refusal of what it says, like a recipient who does not exist, is one of
the documented responses).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from billfold.api.admin import admin_user
from billfold.api.admission import BOUNDED_PREFIX, Overloaded
from billfold.api.inputs import PayloadTooLarge, UnsupportedMediaType
from billfold.api.limits import limit_login, limit_merchant, limit_money
from billfold.api.problems import (
    CODES_KEY,
    PROBLEM_SCHEMA_NAME,
    Busy,
    Problem,
    add_codes,
    problem_responses,
)
from billfold.platform.errors import BillfoldError, NotFound, TooManyRequests, ValidationFailed
from billfold.platform.security import Unauthenticated

Errors = tuple[type[BillfoldError], ...]

# What a dependency refuses, on every operation that takes it.
DEPENDENCIES: dict[Callable[..., Any], Errors] = {
    limit_login: (TooManyRequests,),
    limit_money: (TooManyRequests,),
    limit_merchant: (TooManyRequests,),
    # Not an operator: as for no route at all.
    admin_user: (NotFound,),
}
# FastAPI's own description of a 422, replaced by the problem the API answers.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_responses(app: FastAPI) -> None:
    """Makes `app.openapi()` (and so /openapi.json and /docs) give every response of every
    operation: what FastAPI documents, completed as the module docstring says."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(app, generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def complete(app: FastAPI, spec: dict[str, Any]) -> None:
    """Adds what each operation answers by its kind, in place."""
    for method, path, route in operations(app):
        operation = spec["paths"][path][method.lower()]
        responses = operation.setdefault("responses", {})
        by_status: dict[int, list[type[BillfoldError]]] = {}
        for error in answered_by_kind(route, method, path, operation):
            by_status.setdefault(error.status, []).append(error)
        for status, errors in by_status.items():
            documented = responses.get(str(status))
            if documented is None or CODES_KEY not in documented:
                # Absent, or FastAPI's own 422 (a JSON body the API never sends).
                documented = problem_responses(errors[0])[status]
            responses[str(status)] = documented = copy.deepcopy(documented)
            add_codes(documented, errors)
        operation["responses"] = dict(sorted(responses.items()))
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA_NAME] = Problem.model_json_schema()
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)


def operations(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path as OpenAPI names it, route) of every documented operation."""
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path_format
        if isinstance(route, APIRoute) and route.include_in_schema and path is not None:
            for method in sorted(route.methods or ()):
                yield method, path, route


def answered_by_kind(
    route: APIRoute, method: str, path: str, operation: dict[str, Any]
) -> list[type[BillfoldError]]:
    """What an operation answers because of what it is, whatever its endpoint does."""
    # The input gate (api.inputs), before anything else: a body over the cap (refused from its
    # Content-Length whatever the route), a NUL or lone surrogate in any parameter.
    errors: list[type[BillfoldError]] = [PayloadTooLarge, ValidationFailed]
    if getattr(route, "accepts", None):
        errors.append(UnsupportedMediaType)
    if operation.get("security"):
        errors.append(Unauthenticated)
    for call in _dependencies(route.dependant):
        errors += DEPENDENCIES.get(call, ())
    if path.startswith(BOUNDED_PREFIX):
        errors.append(Overloaded)
        if method != "GET":
            # A write waits for the rows it changes; past lock_timeout it is refused, unchanged.
            errors.append(Busy)
    return errors


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _dependencies(dependency)
