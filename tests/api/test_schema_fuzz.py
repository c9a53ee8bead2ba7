"""The OpenAPI document is the contract: every answer to a request it describes, valid or not,
is one it documents (status, media type, body schema), and none is a server error.

Schemathesis generates the requests from the app's own schema, for every operation in it, and
checks each response with its conformance checks. Its ASGI transport would run the app on an
event loop of its own and start a second lifespan, so the cases are drawn by Hypothesis in a
worker thread and sent through the module's HTTP client on the test's loop. Every request
carries a real user's token and device (an operator's, for the operators' routes), except the
negative cases in which schemathesis leaves them out on purpose.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billfold.wallet.users import grant_admin
from tests.merchants.shop import open_shop

MakePerson = Callable[..., Awaitable[Any]]
Send = Callable[[dict[str, Any]], httpx.Response]

EXAMPLES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
OPERATORS_ROUTES = "/api/v1/admin/"
# The security of the routes only a merchant's key signs in to (Bob's shop's, here).
MERCHANT_KEY = [{"MerchantKey": []}]
# Generated ids almost never name anything; half the cases get real ones instead, so that the
# code behind the ownership checks is fuzzed too.
REAL_PATH_IDS = {
    "user_id",
    "transfer_id",
    "bank_account_id",
    "card_id",
    "funding_id",
    "endpoint_id",
    "session_id",
    "payment_id",
    "merchant_id",
}
REAL_BODY_IDS = {"sender_id", "recipient", "user_id", "bank_account_id", "card_id", "session_id"}
SEND_TIMEOUT_S = 30


async def test_every_answer_to_a_generated_request_is_documented(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
    add_card: Callable[..., Awaitable[str]],
) -> None:
    """Positive and negative cases for every operation in the document, sent as a funded user
    (an operator on the operators' routes): each answer conforms, none is a 5xx."""
    alice, bob, operator = await make_person("1000.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, operator.username)
    sent = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 201, sent.text
    bank_account_id = await link_bank(alice, "20000001")
    funded = await client.post(
        "/api/v1/wallet/add-funds",
        json={"user_id": alice.user_id, "amount": "2.00", "bank_account_id": bank_account_id},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert funded.status_code == 202, funded.text
    endpoint = await client.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/in"},
        headers=alice.auth,
    )
    assert endpoint.status_code == 201, endpoint.text
    merchant = await client.post(
        "/api/v1/merchants",
        json={"name": "Fuzz Cafe", "mcc": "5814", "city": "Oakland", "country": "US"},
        headers=alice.auth,
    )
    assert merchant.status_code == 201, merchant.text
    real_ids = {
        "endpoint_id": endpoint.json()["endpoint_id"],
        "user_id": alice.user_id,
        "sender_id": alice.user_id,
        "transfer_id": sent.json()["transfer_id"],
        "recipient": bob.username,
        "bank_account_id": bank_account_id,
        "card_id": await add_card(alice, "4242424242424242"),
        "funding_id": funded.json()["transfer_id"],
        "merchant_id": merchant.json()["merchant_id"],
    }
    identities = {
        "user": {**alice.auth, "X-Device-Id": alice.device_token},
        "operator": {**operator.auth, "X-Device-Id": operator.device_token},
    }
    # Bob's shop: its server's key signs the merchants' routes in; Alice paid it once.
    shop = await open_shop(client, bob)
    identities["merchant"] = shop.auth
    opened = await client.post(
        "/api/v1/checkout/sessions",
        json={"amount": "1.00"},
        headers={**shop.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert opened.status_code == 201, opened.text
    paid = await client.post(
        "/api/v1/payments",
        json={"qr_payload": shop.static_qr(), "amount": "1.00"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert paid.status_code == 201, paid.text
    real_ids |= {"session_id": opened.json()["session_id"], "payment_id": paid.json()["payment_id"]}
    document = app.openapi()
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert {operation.label for operation in operations} == documented
    signed_by_key = [o for o in operations if o.definition.raw.get("security") == MERCHANT_KEY]
    assert len(signed_by_key) >= 3, "the merchants' routes are sent with a person's token"
    assert len(documented) > 30
    loop = asyncio.get_running_loop()

    def send(request: dict[str, Any]) -> httpx.Response:
        call = client.request(**request)
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=SEND_TIMEOUT_S)

    failures = await asyncio.to_thread(fuzz, operations, send, identities, real_ids)
    assert not failures, "\n\n".join(failures)


def fuzz(
    operations: list[Any],
    send: Send,
    identities: dict[str, dict[str, str]],
    real_ids: dict[str, str],
) -> list[str]:
    """Runs every operation in each mode it has inputs for; the shrunk failure of each, if any."""
    failures = []
    for operation in operations:
        operator = operation.path.startswith(OPERATORS_ROUTES)
        security = operation.definition.raw.get("security")
        who = "merchant" if security == MERCHANT_KEY else "user"
        headers = identities["operator" if operator else who]
        has_inputs = any(operation.iter_parameters()) or bool(operation.body)
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] * has_inputs)]
        for mode in modes:
            try:
                fuzz_operation(operation, mode, send, headers, real_ids)
            except AssertionError as failure:
                failures.append(f"{operation.label} ({mode}): {failure}")
    return failures


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    send: Send,
    headers: dict[str, str],
    ids: dict[str, str],
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
        # A failure is reported as found: shrinking it took minutes.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode), use_real_ids=st.booleans())
    def check(case: Case, use_real_ids: bool) -> None:
        if use_real_ids:
            with_real_ids(case, ids)
        request = as_httpx(case.as_transport_kwargs(base_url="http://test", headers=headers))
        response = send(request)
        try:
            case.validate_response(response, checks=CHECKS, headers=request["headers"])
        except FailureGroup as failure:
            described = f"{request} -> {response.status_code} {response.headers} {response.text}"
            raise AssertionError(f"{failure}\n{described}") from None

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
