"""Hostile inputs get a 4xx problem naming the value, never a 500, and change nothing (issue 25).

Each one is sent to every operation it applies to; each case was a 500, or was accepted, before
the input gate (api.inputs, platform.strict) and the one amount grammar (wallet.money). After
each, the rows of every table a request could write are as they were.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

import billfold.app
from billfold.api.inputs import InputRoute
from billfold.app import create_app
from billfold.funding import webhooks
from billfold.platform.errors import ValidationFailed
from billfold.platform.security import issue_token
from billfold.wallet.money import amount_pattern
from billfold.wallet.users import grant_admin
from tests.merchants.shop import Shop, open_shop

Person = Any  # tests/api/driver.Person
MakePerson = Callable[..., Awaitable[Person]]
LinkBank = Callable[..., Awaitable[str]]
Call = tuple[str, str, dict[str, Any]]  # method, path, httpx request arguments

# Every table a request may write, and the sums that change without a new row.
STATE = """
SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM transfers) AS transfers,
       (SELECT count(*) FROM entries) AS entries,
       (SELECT count(*) FROM idempotency_keys) AS idempotency_keys,
       (SELECT count(*) FROM funding_transfers) AS funding_transfers,
       (SELECT count(*) FROM bank_accounts) AS bank_accounts,
       (SELECT coalesce(sum(verify_failures), 0) FROM bank_accounts) AS verify_failures,
       (SELECT count(*) FROM cards) AS cards,
       (SELECT count(*) FROM webhook_inbox) AS webhook_inbox,
       (SELECT count(*) FROM operator_actions) AS operator_actions,
       (SELECT count(*) FROM risk_assessments) AS risk_assessments,
       (SELECT count(*) FROM users WHERE status <> 'active') AS not_active,
       (SELECT count(*) FROM users WHERE pin_hash IS NOT NULL) AS pins,
       (SELECT count(*) FROM checkout_sessions) AS checkout_sessions,
       (SELECT count(*) FROM checkout_sessions WHERE claimed_by IS NOT NULL) AS claims,
       (SELECT count(*) FROM merchant_payments) AS merchant_payments
"""


async def state(app: FastAPI) -> dict[str, int]:
    return dict(await app.state.pool.fetchrow(STATE))


def json_call(method: str, path: str, body: Any, headers: dict[str, str]) -> Call:
    """A JSON body as written by json.dumps (ASCII, a lone surrogate as its \\u escape)."""
    content = json.dumps(body).encode()
    return method, path, {"content": content, "headers": {**headers, **JSON}}


JSON = {"Content-Type": "application/json"}


def key(person: Person) -> dict[str, str]:
    return {**person.auth, "Idempotency-Key": uuid.uuid4().hex}


def assert_problem(response: httpx.Response, status: int, code: str, *named: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code, problem
    for part in named:
        assert part in problem["detail"], (part, problem["detail"])


@pytest.fixture
async def alice(make_person: MakePerson) -> Person:
    return await make_person("10.00")


@pytest.fixture
async def bob(make_person: MakePerson) -> Person:
    return await make_person()


@pytest.fixture
async def operator(app: FastAPI, make_person: MakePerson) -> Person:
    person = await make_person()
    await grant_admin(app.state.pool, person.username)
    return person


@pytest.fixture
async def unverified_bank(alice: Person, link_bank: LinkBank) -> str:
    return await link_bank(alice, "12345678", verified=False)


# --- amounts ----------------------------------------------------------------------------------

# As strings: an exponent (1E+999999999 was a 500), other scripts' digits, a separator,
# spaces, a sign, hexadecimal, too many decimal places.
HOSTILE_AMOUNTS = ["1E+999999999", "١٢", "１２", "1_000", " 12.5 ", "1e2", "+1", "0x10", "12.345"]


def amount_calls(person: Person, bob: Person, bank_id: str, amount: Any) -> list[Call]:
    """Every operation that reads an amount, each with `amount`; the field each names."""
    wallet = f"/api/v1/wallet/{person.user_id}"
    movement = {"user_id": person.user_id, "amount": amount}
    transfer = {"sender_id": person.user_id, "recipient": bob.username, "amount": amount}
    return [
        json_call("POST", "/api/v1/transfers", transfer, key(person)),
        json_call(
            "POST",
            "/api/v1/wallet/add-funds",
            {**movement, "card_id": str(uuid.uuid4())},
            key(person),
        ),
        json_call(
            "POST", "/api/v1/wallet/cash-out", {**movement, "bank_account_id": bank_id}, key(person)
        ),
        json_call(
            "POST",
            f"/api/v1/bank-accounts/{bank_id}/verify",
            {"amounts": [amount, "0.01"]},
            person.auth,
        ),
        ("GET", f"{wallet}/transactions", {"params": {"min_amount": amount}, **auth(person)}),
        ("GET", f"{wallet}/transactions", {"params": {"max_amount": amount}, **auth(person)}),
    ]


AMOUNT_FIELDS = ["amount", "amount", "amount", "amounts.0", "min_amount", "max_amount"]


def auth(person: Person) -> dict[str, Any]:
    return {"headers": person.auth}


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS)
async def test_a_hostile_amount_is_refused_by_every_operation_naming_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Person,
    bob: Person,
    unverified_bank: str,
    amount: str,
) -> None:
    """Transfers, add-funds, cash-out, bank verification and the history's amount filters
    all read an amount with one parser: each refuses it as `invalid_amount` naming the field
    and the value, and nothing is moved, stored or counted (a wrong verify try included)."""
    before = await state(app)
    calls = amount_calls(alice, bob, unverified_bank, amount)
    for (method, path, arguments), field in zip(calls, AMOUNT_FIELDS, strict=True):
        response = await client.request(method, path, **arguments)
        assert_problem(response, 422, "invalid_amount", f"{field} '{amount}'")
        assert response.json()["field"] == field
    assert await state(app) == before


@pytest.mark.parametrize(
    ("written", "named"),
    [("1E+999999999", "1E+999999999"), ("1e2", "1E+2"), ("12.345", "12.345"), ("-1", "-1")],
)
async def test_a_json_number_amount_is_judged_as_written(
    app: FastAPI,
    client: httpx.AsyncClient,
    alice: Person,
    bob: Person,
    unverified_bank: str,
    written: str,
    named: str,
) -> None:
    """A JSON number follows the same grammar, read from its text: an exponent is refused
    even where its value (100) would be a fine amount, and 1E+999999999 is not infinity."""
    before = await state(app)
    calls = amount_calls(alice, bob, unverified_bank, "AMOUNT")[:4]
    for method, path, arguments in calls:
        content = arguments["content"].replace(b'"AMOUNT"', written.encode())
        response = await client.request(method, path, **{**arguments, "content": content})
        assert_problem(response, 422, "invalid_amount", named)
    assert await state(app) == before


async def test_an_amount_too_long_to_read_is_refused_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bob: Person, unverified_bank: str
) -> None:
    """Thousands of digits are refused before any arithmetic (Python refuses to convert more
    than 4,300 digits): as a string, an `invalid_amount`; as a JSON number, a body problem."""
    before = await state(app)
    for method, path, arguments in amount_calls(alice, bob, unverified_bank, "9" * 5000)[:4]:
        response = await client.request(method, path, **arguments)
        assert_problem(response, 422, "invalid_amount", "is longer than 24 characters", "9999")
        number = arguments["content"].replace(b'"' + b"9" * 5000 + b'"', b"9" * 5000)
        response = await client.request(method, path, **{**arguments, "content": number})
        assert_problem(response, 422, "validation_error", "is longer than 40 characters", "9999")
    assert await state(app) == before


async def test_plain_amounts_are_still_accepted(
    client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    """The grammar's own forms, as strings and as JSON numbers, move money."""
    for written, shown in [
        (b'"1.50"', "1.50"),
        (b'"2"', "2.00"),
        (b"1", "1.00"),
        (b"0.25", "0.25"),
    ]:
        method, path, arguments = amount_calls(alice, bob, "-", "AMOUNT")[0]
        content = arguments["content"].replace(b'"AMOUNT"', written)
        response = await client.request(method, path, **{**arguments, "content": content})
        assert response.status_code == 201, response.text
        assert response.json()["amount"] == shown


def test_every_amount_field_states_the_grammar_in_the_schema(app: FastAPI) -> None:
    """The OpenAPI document gives each amount's pattern (the one parser's grammar, zero and
    amounts over the largest excluded: tests/wallet/test_money.py)."""
    spec = app.openapi()
    pattern = amount_pattern("USD")
    schemas = spec["components"]["schemas"]
    transfer = spec["paths"]["/api/v1/transfers"]["post"]["requestBody"]["content"]
    bodies = [
        transfer["application/json"]["schema"]["properties"]["amount"],
        schemas["MovementIn"]["properties"]["amount"],
        schemas["VerifyIn"]["properties"]["amounts"]["items"],
    ]
    for schema in bodies:
        assert schema["anyOf"][0] == {"type": "string", "pattern": pattern, "maxLength": 24}
    history = spec["paths"]["/api/v1/wallet/{user_id}/transactions"]["get"]["parameters"]
    filters = [p["schema"] for p in history if p["name"] in ("min_amount", "max_amount")]
    assert [f["pattern"] for f in filters] == [pattern, pattern]


@pytest.fixture
async def bobs_shop(client: httpx.AsyncClient, bob: Person) -> Shop:
    return await open_shop(client, bob)


def merchant_calls(payer: Person, shop: Shop, amount: Any) -> list[Call]:
    """The merchant operations that read an amount: a static code's payment, and a session."""
    payment = {"qr_payload": shop.static_qr(), "amount": amount}
    merchant_key = {**shop.auth, "Idempotency-Key": uuid.uuid4().hex}
    return [
        json_call("POST", "/api/v1/payments", payment, key(payer)),
        json_call("POST", "/api/v1/checkout/sessions", {"amount": amount}, merchant_key),
    ]


@pytest.mark.parametrize("amount", HOSTILE_AMOUNTS)
async def test_a_hostile_amount_is_refused_by_the_merchant_operations_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bobs_shop: Shop, amount: str
) -> None:
    """A payment to a static code and a checkout session read their amount with the same
    parser: `invalid_amount` naming it, and nothing is paid, opened or claimed."""
    before = await state(app)
    for method, path, arguments in merchant_calls(alice, bobs_shop, amount):
        response = await client.request(method, path, **arguments)
        assert_problem(response, 422, "invalid_amount", f"amount '{amount}'")
        assert response.json()["field"] == "amount"
    assert await state(app) == before


MERCHANT_TEXT_FIELDS = ["qr_payload", "session_id", "note", "idempotency_key", "reference"]


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
@pytest.mark.parametrize("field", MERCHANT_TEXT_FIELDS)
async def test_bad_text_in_a_merchant_operations_field_is_a_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bobs_shop: Shop, field: str, kind: str
) -> None:
    """The payment's and the checkout session's text fields, as every other body's."""
    before = await state(app)
    payment, session = merchant_calls(alice, bobs_shop, "1.00")
    method, path, arguments = session if field == "reference" else payment
    body = {**json.loads(arguments["content"]), field: BAD_TEXT[kind]}
    response = await client.request(
        method, path, **{**arguments, "content": json.dumps(body).encode()}
    )
    assert_problem(response, 422, "validation_error", f"{field} {SHOWN[kind]}", MESSAGE[kind])
    assert response.json()["field"] == field
    assert await state(app) == before


# --- dates ------------------------------------------------------------------------------------

# Dates and offsets whose UTC moment is outside years 1 to 9999.
HOSTILE_MOMENTS = [
    ("to", "9999-12-31"),
    ("to", "9999-12-31T23:59:59-05:00"),
    ("from", "0001-01-01T00:00:00+05:00"),
    ("from", "9999-12-31T22:00:00-03:00"),
]


@pytest.mark.parametrize(("field", "moment"), HOSTILE_MOMENTS)
async def test_a_moment_outside_the_range_is_a_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, field: str, moment: str
) -> None:
    """The history's `from` and `to`: a date's end, or an offset, past what UTC can hold."""
    path = f"/api/v1/wallet/{alice.user_id}/transactions"
    response = await client.get(path, params={field: moment}, headers=alice.auth)
    assert_problem(response, 422, "validation_error", f"{field} '{moment}'", "outside")
    assert response.json()["field"] == field


@pytest.mark.parametrize(("field", "moment"), HOSTILE_MOMENTS[1:])
async def test_an_assessment_listing_moment_outside_the_range_is_a_422_naming_it(
    client: httpx.AsyncClient, operator: Person, field: str, moment: str
) -> None:
    """The operators' assessment listing takes timestamps (9999-12-31 is its midnight)."""
    response = await client.get(
        "/api/v1/admin/assessments", params={field: moment}, headers=operator.auth
    )
    assert_problem(response, 422, "validation_error", f"{field} '{moment}'", "outside")
    assert response.json()["field"] == field


# --- text: NUL and lone surrogates ------------------------------------------------------------

BAD_TEXT = {"nul": "bad\x00value", "surrogate": "bad\ud800value"}
SHOWN = {"nul": "'bad\\x00value'", "surrogate": "'bad\\ud800value'"}
MESSAGE = {"nul": "NUL character", "surrogate": "lone surrogate"}


def text_calls(person: Person, operator: Person, bad: str) -> dict[str, Call]:
    """field -> a request with `bad` in that field, for every text field of every body."""
    bank = {
        "routing_number": "011000015",
        "account_number": "12345678",
        "account_holder_name": "Ada",
        "account_type": "checking",
    }
    sign_up = {"username": "u_x", "email": "x@e.com", "phone": "+1415", "password": "long pass"}
    transfer = {"sender_id": person.user_id, "recipient": "someone", "amount": "1.00"}
    movement = {"user_id": person.user_id, "amount": "1.00", "card_id": str(uuid.uuid4())}
    cash_out = {**movement, "bank_account_id": str(uuid.uuid4())}
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    calls: dict[str, Call] = {}
    for name in sign_up:
        calls[f"users.{name}"] = json_call("POST", "/api/v1/users", {**sign_up, name: bad}, {})
    for name in ("routing_number", "account_number", "account_holder_name", "account_type"):
        body = {**bank, name: bad}
        calls[f"bank.{name}"] = json_call("POST", "/api/v1/bank-accounts", body, person.auth)
    for name in ("sender_id", "recipient", "note", "idempotency_key"):
        body = {**transfer, name: bad}
        calls[f"transfer.{name}"] = json_call("POST", "/api/v1/transfers", body, key(person))
    for name in ("user_id", "card_id", "idempotency_key"):
        body = {**movement, name: bad}
        calls[f"add_funds.{name}"] = json_call(
            "POST", "/api/v1/wallet/add-funds", body, key(person)
        )
    body = {**cash_out, "bank_account_id": bad}
    calls["cash_out.bank_account_id"] = json_call(
        "POST", "/api/v1/wallet/cash-out", body, key(person)
    )
    calls["cards.token"] = json_call("POST", "/api/v1/cards", {"token": bad}, person.auth)
    for name in ("number", "cvc"):
        path = "/api/v1/sandbox/cards/tokenize"
        calls[f"sandbox.{name}"] = json_call("POST", path, {**card, name: bad}, person.auth)
    pin = f"/api/v1/users/{person.user_id}/pin"
    calls["pin.pin"] = json_call("PUT", pin, {"pin": bad, "password": "x"}, person.auth)
    calls["pin.password"] = json_call("PUT", pin, {"pin": "1234", "password": bad}, person.auth)
    freeze = f"/api/v1/admin/users/{person.user_id}/freeze"
    calls["admin.reason"] = json_call("POST", freeze, {"reason": bad}, operator.auth)
    calls["nested.0"] = json_call("POST", "/api/v1/bank-accounts/x/verify", [bad], person.auth)
    return calls


TEXT_FIELDS = [
    "users.username", "users.email", "users.phone", "users.password", "bank.routing_number",
    "bank.account_number", "bank.account_holder_name", "bank.account_type",
    "transfer.sender_id", "transfer.recipient", "transfer.note", "transfer.idempotency_key",
    "add_funds.user_id", "add_funds.card_id", "add_funds.idempotency_key",
    "cash_out.bank_account_id", "cards.token", "sandbox.number", "sandbox.cvc", "pin.pin",
    "pin.password", "admin.reason", "nested.0",
]  # fmt: skip
SECRETS = {"users.password", "bank.account_number", "cards.token", "sandbox.number"}
SECRETS |= {"sandbox.cvc", "pin.pin", "pin.password"}


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
@pytest.mark.parametrize("case", TEXT_FIELDS)
async def test_bad_text_in_any_body_field_is_a_422_naming_the_field(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, operator: Person, case: str, kind: str
) -> None:
    """A NUL (PostgreSQL cannot store it) or a lone surrogate (no UTF-8 form: the database
    driver, the log and the response could not encode it) in any JSON string: refused before
    the endpoint, naming the field and showing the value escaped (a secret redacted)."""
    before = await state(app)
    method, path, arguments = text_calls(alice, operator, BAD_TEXT[kind])[case]
    response = await client.request(method, path, **arguments)
    field = case.split(".", 1)[1]
    shown = "[redacted]" if case in SECRETS else SHOWN[kind]
    assert_problem(response, 422, "validation_error", f"{field} {shown}", MESSAGE[kind])
    assert response.json()["field"] == field
    assert await state(app) == before


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
async def test_bad_text_in_a_key_is_refused_too(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, kind: str
) -> None:
    before = await state(app)
    body = {"token": "t", BAD_TEXT[kind]: 1}
    method, path, arguments = json_call("POST", "/api/v1/cards", body, alice.auth)
    response = await client.request(method, path, **arguments)
    assert_problem(response, 422, "validation_error", f"body {SHOWN[kind]}", MESSAGE[kind])
    assert await state(app) == before


async def test_a_nul_in_a_path_query_or_form_field_is_a_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person
) -> None:
    """Percent-decoded text reaches a handler too: a path parameter, a query parameter and a
    login form field. (Decoding there replaces a broken UTF-8 sequence, so a lone surrogate
    cannot arrive that way.)"""
    before = await state(app)
    history = f"/api/v1/wallet/{alice.user_id}/transactions"
    login = {"username": "a\x00", "password": "x"}
    cases: list[tuple[Call, str]] = [
        (("GET", "/api/v1/transfers/a%00b", auth(alice)), "transfer_id"),
        (("GET", "/api/v1/funding/a%00b", auth(alice)), "funding_id"),
        (("GET", f"{history}?counterparty=a%00", auth(alice)), "counterparty"),
        (("GET", f"{history}?type=p2p&type=a%00", auth(alice)), "type"),
        (("POST", "/api/v1/auth/token", {"data": login}), "username"),
    ]
    for (method, path, arguments), field in cases:
        response = await client.request(method, path, **arguments)
        assert_problem(response, 422, "validation_error", field, "NUL character")
        assert response.json()["field"] == field
    assert await state(app) == before


# --- the bank's webhooks ----------------------------------------------------------------------


async def test_a_signed_webhook_with_a_nul_is_a_422_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Signed by the bank or not, a NUL in the event (the inbox's jsonb cannot hold one) is
    refused: over HTTP by the input gate, and by the webhook's own strict reading."""
    before = await state(app)
    secret = webhooks.webhook_secret(app.state.settings)
    event = {"type": "ach.settled", "data": {"transfer_id": "ab\x00cd"}}
    headers, body = webhooks.sign(secret, event)
    response = await client.post("/api/v1/webhooks/bank", content=body, headers=headers)
    assert_problem(response, 422, "validation_error", "'ab\\x00cd'", "NUL character")
    with pytest.raises(ValidationFailed, match="NUL character"):
        await webhooks.receive(app.state.funding, headers, body)
    assert await state(app) == before


@pytest.mark.parametrize("stamp", [b"\xb2\xb3", "١٧٠٠٠٠٠٠٠٠".encode(), b"9" * 5000])
async def test_a_webhook_timestamp_not_of_ascii_digits_is_a_401_naming_it(
    app: FastAPI, client: httpx.AsyncClient, stamp: bytes
) -> None:
    """Checked before the signature: superscript digits were a 500 (str.isdigit() is true of
    them, int() is not), other scripts' digits were read as a number, 5,000 digits could not
    be converted."""
    before = await state(app)
    secret = webhooks.webhook_secret(app.state.settings)
    headers, body = webhooks.sign(secret, {"type": "ach.settled", "data": {"transfer_id": "x"}})
    raw = [(k.encode(), v.encode()) for k, v in headers.items() if k != "webhook-timestamp"]
    raw.append((b"webhook-timestamp", stamp))
    response = await client.post("/api/v1/webhooks/bank", content=body, headers=raw)
    # Headers are Latin-1: b"\xb2" is a superscript two, and UTF-8 shows as its bytes.
    seen = stamp.decode("latin-1")
    assert_problem(response, 401, "invalid_webhook_signature", repr(seen[:40]))
    assert await state(app) == before


# --- bodies: size, media type, duplicate keys, depth ---------------------------------------------


def body_calls(person: Person, bob: Person) -> list[Call]:
    """A valid body for each kind of route: the hot one, a JSON one, a form one."""
    transfer = {"sender_id": person.user_id, "recipient": bob.username, "amount": "1.00"}
    return [
        json_call("POST", "/api/v1/transfers", transfer, key(person)),
        json_call(
            "POST",
            "/api/v1/users",
            {"username": "u_z", "email": "z@example.com", "phone": "+1", "password": "p"},
            {},
        ),
        json_call("POST", "/api/v1/cards", {"token": "t"}, person.auth),
    ]


async def test_a_body_over_the_cap_is_a_413_before_it_is_read(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    """64 KiB by default (settings.max_body_bytes): refused from its Content-Length, or as it
    streams in when it has none (chunked)."""
    before = await state(app)
    cap = app.state.settings.max_body_bytes
    for method, path, arguments in body_calls(alice, bob):
        padded = arguments["content"][:-1] + b', "pad": "' + b"x" * cap + b'"}'
        response = await client.request(method, path, **{**arguments, "content": padded})
        assert_problem(response, 413, "payload_too_large", f"{len(padded)} bytes", str(cap))

        async def chunks(content: bytes = padded) -> AsyncIterator[bytes]:
            for start in range(0, len(content), 4096):
                yield content[start : start + 4096]

        response = await client.request(method, path, **{**arguments, "content": chunks()})
        assert_problem(response, 413, "payload_too_large", f"more than {cap} bytes")
    assert await state(app) == before


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_in_another_media_type_is_a_415_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bob: Person, content_type: str | None
) -> None:
    """POST /transfers (the hot path) ignored the Content-Type and read JSON anyway."""
    before = await state(app)
    for method, path, arguments in body_calls(alice, bob):
        headers = {k: v for k, v in arguments["headers"].items() if k != "Content-Type"}
        headers |= {"Content-Type": content_type} if content_type else {}
        response = await client.request(method, path, **{**arguments, "headers": headers})
        named = f"'{content_type}'" if content_type else "no Content-Type"
        assert_problem(response, 415, "unsupported_media_type", "application/json", named)
    login = await client.post(
        "/api/v1/auth/token", json={"username": alice.username, "password": alice.password}
    )
    assert_problem(login, 415, "unsupported_media_type", FORM_TYPE, "'application/json'")
    assert await state(app) == before


FORM_TYPE = "application/x-www-form-urlencoded"


async def test_a_json_media_type_with_parameters_is_accepted(
    client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    method, path, arguments = body_calls(alice, bob)[0]
    headers = {**arguments["headers"], "Content-Type": "Application/JSON; charset=utf-8"}
    response = await client.request(method, path, **{**arguments, "headers": headers})
    assert response.status_code == 201, response.text


async def test_a_key_given_twice_is_a_422_naming_it(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, bob: Person
) -> None:
    """A body that says two amounts (or two recipients) was read as its last; now refused."""
    before = await state(app)
    twice = [
        (b'"amount": "1.00"', b'"amount": "1.00", "amount": "9.00"', "amount"),
        (b'"username": "u_z"', b'"username": "u_z", "username": "u_y"', "username"),
        (b'"token": "t"', b'"token": "t", "token": "u"', "token"),
    ]
    for (method, path, arguments), (once, two, field) in zip(
        body_calls(alice, bob), twice, strict=True
    ):
        content = arguments["content"].replace(once, two)
        response = await client.request(method, path, **{**arguments, "content": content})
        assert_problem(response, 422, "validation_error", f"'{field}' appears more than once")
        assert response.json()["field"] == field
    assert await state(app) == before


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"amount": NaN}', "NaN is not a JSON number"),
        (b'{"amount": "\xed\xa0\x80"}', "not UTF-8"),
        (b"{not json", "Expecting property name"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_a_422(
    app: FastAPI, client: httpx.AsyncClient, alice: Person, content: bytes, named: str
) -> None:
    """Deep nesting (a RecursionError in the parser), NaN, a surrogate encoded in UTF-8 (which
    the standard parser would decode), and plain bad JSON: each a problem naming the body."""
    before = await state(app)
    for path in ("/api/v1/transfers", "/api/v1/cards"):
        response = await client.post(path, content=content, headers={**key(alice), **JSON})
        assert_problem(response, 422, "validation_error", named)
        assert response.json()["field"] == "body"
    assert await state(app) == before


# --- tokens of users who no longer exist ------------------------------------------------------


async def test_a_token_for_a_user_who_does_not_exist_is_a_401_everywhere(
    app: FastAPI, client: httpx.AsyncClient, bob: Person
) -> None:
    """Every operation that takes a bearer token; POST /transfers answered 404 (a wallet or
    recipient not found) or 422 when the body was wrong, before it read the sender."""
    before = await state(app)
    ghost = uuid.uuid4()
    token = issue_token(ghost, app.state.settings.secret_key, 3600)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k", **JSON}
    body = json.dumps({"sender_id": str(ghost), "recipient": bob.username, "amount": "1.00"})
    operations = [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert len(operations) > 25
    for method, path in operations:
        filled = re.sub(r"\{[a-z_]+\}", str(ghost), path)
        response = await client.request(method, filled, content=body, headers=headers)
        assert_problem(response, 401, "unauthenticated")
    for change in [
        {"sender_id": str(uuid.uuid4())},
        {"recipient": "not a handle!"},
        {"amount": "1E+999999999"},
        {"amount": "1.00", "note": "x" * 1000},
        {"sender_id": 5},
    ]:
        transfer = {**json.loads(body), **change}
        response = await client.post(
            "/api/v1/transfers", content=json.dumps(transfer), headers=headers
        )
        assert_problem(response, 401, "unauthenticated", "names no user")
    assert await state(app) == before


# --- the gate covers every route ----------------------------------------------------------------


def test_the_app_refuses_a_route_without_the_input_gate(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A router made without `route_class=InputRoute` would let every input of its endpoints
    past the gate: create_app refuses it."""
    routes = [context.original_route for context in iter_route_contexts(app.routes)]
    api_routes = [route for route in routes if isinstance(route, APIRoute)]
    assert len(api_routes) > 30
    assert all(isinstance(route, InputRoute) for route in api_routes)
    ungated = APIRouter()

    @ungated.get("/ungated")
    async def echo(value: str) -> dict[str, str]:
        return {"value": value}

    monkeypatch.setattr(billfold.app, "health", SimpleNamespace(router=ungated))
    with pytest.raises(RuntimeError, match=r"without the input gate.*'/ungated'"):
        create_app(app.state.settings)


async def test_a_chunked_login_form_over_the_cap_is_a_413(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A form is read under the cap too, before it is parsed."""
    cap = app.state.settings.max_body_bytes
    form = b"username=someone&password=" + b"x" * cap

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(form), 4096):
            yield form[start : start + 4096]

    headers = {"Content-Type": FORM_TYPE}
    response = await client.post("/api/v1/auth/token", content=chunks(), headers=headers)
    assert_problem(response, 413, "payload_too_large", f"more than {cap} bytes")


# --- every operation in the OpenAPI document ----------------------------------------------------
# Read from the document itself: an operation added later is sent each of these, or this file
# fails until it is taught what the operation needs (a body for its path ids to be read).

# A body each operation with path ids and a JSON body is sent, by its schema's name.
BODY_OF_SCHEMA = {
    "PinIn": {"pin": "2468"},
    "PinBody": {"pin": "2468", "password": "correct horse battery"},
    "VerifyIn": {"amounts": ["0.01", "0.02"]},
    "ReasonIn": {"reason": "hostile ids"},
    "ReturnIn": {"return_code": "R01"},
    "EndpointPatch": {"description": "hostile ids"},
    "RefundIn": {"amount": "0.01"},
    "PayoutIn": {"amount": "1.00", "bank_account_id": "00000000-0000-4000-8000-000000000000"},
    "MerchantPatch": {"payout_schedule": "manual"},
}
# Ids no operation can read as one: a superscript two (int() refuses it: a 500 before), other
# scripts' digits (int() reads them as 12: another id), a number past a bigint, a negative one.
HOSTILE_IDS = ["²", "١٢", "１２", "9" * 40, "-1"]
# Fills a path parameter that is not under test: an id in every route's form, naming nothing.
ANY_ID = "00000000-0000-4000-8000-000000000000"


def documented(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in the app's OpenAPI document."""
    operations = [
        (method.upper(), path, operation)
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 30
    return operations


def parameters(operation: dict[str, Any], where: str) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == where]


def body_of(operation: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The operation's body media type (None: it takes none) and its schema."""
    content = operation.get("requestBody", {}).get("content", {})
    media_type = next(iter(content), None)
    return media_type, content[media_type]["schema"] if media_type else {}


def properties(app: FastAPI, schema: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        schema = app.openapi()["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    return list(schema["properties"])


def route_paths(app: FastAPI) -> dict[str, str]:
    """Each OpenAPI path and the router's own (`/wallet/{user_id}`: `/wallet/{user_id:uuid}`)."""
    return {c.path_format: c.original_route.path for c in iter_route_contexts(app.routes)}


async def test_every_operation_refuses_a_nul_in_any_of_its_inputs_naming_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Each path and query parameter, form field and body property of every operation, with
    a NUL: a 422 naming it, from the gate before anything else (no token needed). A path
    parameter the router matches only as a uuid matches no route: 404."""
    before = await state(app)
    routed = route_paths(app)
    wrong = []
    for method, path, operation in documented(app):
        url = re.sub(r"\{[a-z_]+\}", ANY_ID, path)
        cases: list[tuple[str, dict[str, Any], str, int]] = []
        for name in parameters(operation, "path"):
            status = 404 if f"{{{name}:uuid}}" in routed[path] else 422
            nul_url = re.sub(r"\{[a-z_]+\}", ANY_ID, path.replace(f"{{{name}}}", "a%00b"))
            cases.append((nul_url, {}, name, status))
        for name in parameters(operation, "query"):
            cases.append((url, {"params": {name: "a\x00"}}, name, 422))
        media_type, schema = body_of(operation)
        for name in properties(app, schema) if media_type else ():
            if media_type == FORM_TYPE:
                cases.append((url, {"data": {name: "a\x00"}}, name, 422))
            else:
                content = json.dumps({name: "bad\x00value"}).encode()
                cases.append((url, {"content": content, "headers": JSON}, name, 422))
        assert cases or not operation.get("parameters"), f"{method} {path}: no input tried"
        for target, arguments, name, status in cases:
            response = await client.request(method, target, **arguments)
            code = "validation_error" if status == 422 else "not_found"
            seen = (response.status_code, response.headers.get("content-type"), _code(response))
            named = status != 422 or response.json().get("field") == name
            if seen != (status, "application/problem+json", code) or not named:
                wrong.append(f"{method} {target} {name}: {seen} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await state(app) == before


async def test_every_operation_refuses_a_body_too_large_mistyped_or_saying_a_key_twice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Every operation: a body over the cap is a 413, whether it takes a body or not. Every
    operation that takes one: another media type is a 415, a JSON key given twice a 422."""
    before = await state(app)
    cap = app.state.settings.max_body_bytes
    wrong = []
    for method, path, operation in documented(app):
        url = re.sub(r"\{[a-z_]+\}", ANY_ID, path)
        media_type, _ = body_of(operation)
        cases = [({"content": b"x" * (cap + 1)}, 413, "payload_too_large")]
        if media_type:
            text = {"Content-Type": "text/plain"}
            cases.append(({"content": b"{}", "headers": text}, 415, "unsupported_media_type"))
        if media_type == "application/json":
            twice = b'{"a": 1, "a": 2}'
            cases.append(({"content": twice, "headers": JSON}, 422, "validation_error"))
        for arguments, status, code in cases:
            response = await client.request(method, url, **arguments)
            seen = (response.status_code, response.headers.get("content-type"), _code(response))
            if seen != (status, "application/problem+json", code):
                wrong.append(f"{method} {url}: {seen} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await state(app) == before


async def test_every_operation_finds_nothing_by_an_id_in_another_form(
    app: FastAPI, client: httpx.AsyncClient, operator: Person
) -> None:
    """Each path parameter of every operation, as a superscript, other scripts' digits, a
    number past a bigint or a negative one, sent by an operator (who may call every route): a
    404 or 422 problem, and nothing changes. A superscript two was a 500 where a transfer's
    id is read, and ١٢ was read as transfer 12."""
    before = await state(app)
    shop = await open_shop(client, operator)
    wrong = []
    for method, path, operation in documented(app):
        names = parameters(operation, "path")
        media_type, schema = body_of(operation)
        if not names:
            continue
        # A merchant's key for a route only a merchant's key signs in to.
        signs_in = (
            shop.auth if operation.get("security") == [{"MerchantKey": []}] else operator.auth
        )
        arguments: dict[str, Any] = {"headers": {**signs_in, "Idempotency-Key": "k"}}
        if media_type:
            name = schema.get("$ref", "").rpartition("/")[2]
            assert name in BODY_OF_SCHEMA, f"{method} {path}: add a {name} to BODY_OF_SCHEMA"
            arguments["json"] = BODY_OF_SCHEMA[name]
        for hostile in HOSTILE_IDS:
            url = path
            for name in names:
                url = url.replace(f"{{{name}}}", hostile)
            response = await client.request(method, url, **arguments)
            seen = (response.status_code, response.headers.get("content-type"))
            if seen not in ((404, "application/problem+json"), (422, "application/problem+json")):
                wrong.append(f"{method} {url}: {seen} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await state(app) == before


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("/api/v1/wallet/{user_id}/transactions", "s" + "9" * 19),
        ("/api/v1/admin/assessments", "a1." + "9" * 19),
        ("/api/v1/admin/assessments", "a" + "9" * 19 + ".1"),
        ("/api/v1/admin/assessments", "a1.١٢"),
    ],
)
async def test_a_cursor_past_a_bigint_is_a_422_naming_it(
    client: httpx.AsyncClient, operator: Person, path: str, position: str
) -> None:
    """A cursor names a position by numbers the database keeps as bigints: one past them
    was a 500 (the driver could not send it); other scripts' digits were read as numbers."""
    cursor = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    url = path.replace("{user_id}", operator.user_id)
    response = await client.get(url, params={"cursor": cursor}, headers=operator.auth)
    assert_problem(response, 422, "validation_error", "is not one this API gave out")
    assert response.json()["field"] == "cursor"


async def test_a_payout_refuses_hostile_amounts_and_cursors_naming_them(
    app: FastAPI, client: httpx.AsyncClient, alice: Person
) -> None:
    """A merchant's payouts read their amount with the one parser and their cursor strictly:
    each bad one a 422 naming it, and nothing moves."""
    merchant = {"name": "Hostile Cafe", "mcc": "5814", "city": "Oakland", "country": "US"}
    made = await client.post("/api/v1/merchants", json=merchant, headers=alice.auth)
    before = await state(app)
    path = f"/api/v1/merchants/{made.json()['merchant_id']}/payouts"
    for amount in HOSTILE_AMOUNTS:
        body = {"amount": amount, "bank_account_id": str(uuid.uuid4())}
        method, url, arguments = json_call("POST", path, body, key(alice))
        response = await client.request(method, url, **arguments)
        assert_problem(response, 422, "invalid_amount", f"amount '{amount}'")
    for position in ("p" + "9" * 19 + ".1", "p1." + "9" * 19, "p1.١٢", "p12", "s1.2"):
        cursor = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
        response = await client.get(path, params={"cursor": cursor}, headers=alice.auth)
        assert_problem(response, 422, "validation_error", "is not one this API gave out")
        assert response.json()["field"] == "cursor"
    assert await state(app) == before


@pytest.mark.parametrize(("field", "value"), [("number", "²" * 16), ("cvc", "²²²")])
async def test_a_card_in_other_digits_is_a_422(
    client: httpx.AsyncClient, alice: Person, field: str, value: str
) -> None:
    """The sandbox processor: a superscript card number was a 500 (its check digit computed
    with int()), a superscript CVC was taken."""
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
    response = await client.post(
        "/api/v1/sandbox/cards/tokenize", json={**card, field: value}, headers=alice.auth
    )
    assert_problem(response, 422, "validation_error")
    assert response.json()["field"] == field


def _code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type") != "application/problem+json":
        return None
    return str(response.json().get("code"))
