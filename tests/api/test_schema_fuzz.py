"""No request the OpenAPI schema describes, valid or not, gets a 500; every 4xx is a problem.

Schemathesis generates the requests from the app's own schema. Its ASGI transport would run the
app on an event loop of its own and start a second lifespan, so the cases are drawn by Hypothesis
in a worker thread and sent through the module's HTTP client on the test's loop. Every request
carries a real user's token, except the negative cases in which schemathesis leaves it out on
purpose, and those must be answered with a problem too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

MakePerson = Callable[..., Awaitable[Any]]
Send = Callable[[dict[str, Any]], httpx.Response]

EXAMPLES_PER_OPERATION = 30
# A floor, so that a schema that lost its paths cannot make the run vacuous.
KNOWN_OPERATIONS = {
    "GET /healthz",
    "POST /api/v1/users",
    "POST /api/v1/auth/token",
    "GET /api/v1/users/me",
    "GET /api/v1/wallet/{user_id}",
    "POST /api/v1/transfers",
    "GET /api/v1/transfers/{transfer_id}",
}
# Generated ids almost never name anything; half the cases get real ones instead, so that the
# code behind the ownership checks is fuzzed too.
REAL_PATH_IDS = {"user_id", "transfer_id"}
REAL_BODY_IDS = {"sender_id", "recipient"}
SEND_TIMEOUT_S = 30


async def test_no_generated_request_is_a_server_error(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Positive and negative cases for every operation, sent as a funded user: no 5xx at all."""
    alice, bob = await make_person("1000.00"), await make_person()
    sent = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 201, sent.text
    real_ids = {
        "user_id": alice.user_id,
        "sender_id": alice.user_id,
        "transfer_id": sent.json()["transfer_id"],
        "recipient": bob.username,
    }
    schema = schemathesis.openapi.from_dict(app.openapi(), config=schemathesis.Config())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} >= KNOWN_OPERATIONS
    loop = asyncio.get_running_loop()

    def send(request: dict[str, Any]) -> httpx.Response:
        call = client.request(**request)
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=SEND_TIMEOUT_S)

    failures = await asyncio.to_thread(fuzz, operations, send, alice.auth, real_ids)
    assert not failures, "\n\n".join(failures)


def fuzz(
    operations: list[Any], send: Send, auth: dict[str, str], real_ids: dict[str, str]
) -> list[str]:
    """Runs every operation in each mode it has inputs for; the shrunk failure of each, if any."""
    failures = []
    for operation in operations:
        has_inputs = any(operation.iter_parameters()) or bool(operation.body)
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] * has_inputs)]
        for mode in modes:
            try:
                fuzz_operation(operation, mode, send, auth, real_ids)
            except AssertionError as failure:
                failures.append(f"{operation.label} ({mode}): {failure}")
    return failures


def fuzz_operation(
    operation: Any, mode: GenerationMode, send: Send, auth: dict[str, str], ids: dict[str, str]
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode), use_real_ids=st.booleans())
    def check(case: Case, use_real_ids: bool) -> None:
        if use_real_ids:
            with_real_ids(case, ids)
        request = as_httpx(case.as_transport_kwargs(base_url="http://test", headers=auth))
        response = send(request)
        described = f"{request} -> {response.status_code} {response.headers} {response.text}"
        assert response.status_code < 500, described
        assert response.status_code < 400 or is_problem(response), described

    check()


def with_real_ids(case: Case, ids: dict[str, str]) -> None:
    path_parameters = case.path_parameters or {}
    for name in REAL_PATH_IDS & path_parameters.keys():
        path_parameters[name] = ids[name]
    body = case.body if isinstance(case.body, dict) else {}
    for name in REAL_BODY_IDS & body.keys():
        body[name] = ids[name]


def as_httpx(request: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis's `requests` keyword arguments, as `httpx` takes them."""
    unknown = request.keys() - {"method", "url", "headers", "params", "cookies", "json", "data"}
    assert not unknown, f"teach as_httpx to send {sorted(unknown)} (multipart files?)"
    kwargs = {k: request[k] for k in ("method", "url", "headers", "params")}
    # httpx deprecates per-request cookies; they go in the header a real client would send.
    if request["cookies"]:
        kwargs["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in request["cookies"].items())
    if "json" in request:
        kwargs["json"] = request["json"]
    data = request.get("data")
    kwargs["content" if isinstance(data, bytes | str) else "data"] = data
    return kwargs


def is_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type") == "application/problem+json"
