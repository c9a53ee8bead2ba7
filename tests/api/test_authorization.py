"""Every route but a short public list refuses bad tokens and hides other users' ids as missing.

The routes are read from the app itself, so an endpoint added later is covered without editing
this file; one whose path parameter or body this file cannot fill fails here until it is taught.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, compile_path

from billfold.ledger.accounts import open_clearing_account
from billfold.merchants import qr
from billfold.notifications.service import Notifications
from billfold.wallet.users import grant_admin
from billfold.webhooks import fanout
from tests.api.driver import pay, set_pin
from tests.notifications import events
from tests.web.access import is_web_path

MakePerson = Callable[..., Awaitable[Any]]

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    *((method, path) for method in ("GET", "HEAD") for path in ("/docs", "/docs/oauth2-redirect")),
    *((method, path) for method in ("GET", "HEAD") for path in ("/redoc", "/openapi.json")),
    *((method, "/docs/assets/{name}") for method in ("GET", "HEAD")),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/auth/token"),
    # Authenticated by its Standard Webhooks signature (tests/api/test_funding.py).
    ("POST", "/api/v1/webhooks/bank"),
}
# A floor, so that a change in how routes are listed cannot make every check below vacuous.
KNOWN_PROTECTED = {
    ("GET", "/api/v1/users/me"),
    ("GET", "/api/v1/wallet/{user_id}"),
    ("POST", "/api/v1/transfers"),
    ("GET", "/api/v1/transfers/{transfer_id}"),
}
# Path parameters this file can fill with an id of Alice's, or with one that names nothing.
PATH_PARAMS = {
    "user_id",
    "transfer_id",
    "bank_account_id",
    "card_id",
    "funding_id",
    "subject_id",
    "review_id",
    "assessment_id",
    "endpoint_id",
    "delivery_id",
    "merchant_id",
    "key_id",
    "session_id",
    "payment_id",
    "payout_id",
}
# Routes that would spoil the ids for the routes after them get ids of their own.
OWN_IDS = {
    ("DELETE", "/api/v1/bank-accounts/{bank_account_id}"): {
        "bank_account_id": "spare_bank_account_id"
    },
    ("DELETE", "/api/v1/cards/{card_id}"): {"card_id": "spare_card_id"},
    ("POST", "/api/v1/transfers/{transfer_id}/verify"): {"transfer_id": "held_transfer_id"},
    ("POST", "/api/v1/admin/reviews/{review_id}/reject"): {"review_id": "spare_review_id"},
    ("DELETE", "/api/v1/webhook-endpoints/{endpoint_id}"): {"endpoint_id": "spare_endpoint_id"},
    ("POST", "/api/v1/checkout/sessions/{session_id}/cancel"): {"session_id": "spare_session_id"},
}
MERCHANT = {"name": "Matrix Cafe", "mcc": "5814", "city": "Oakland", "country": "US"}
HOOK_URL = "https://hooks.example.com/billfold"
# The body sent to each protected route that takes one, filled in like the path. Fields that name
# an owner must be listed in OWNER_FIELDS.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/transfers"): {
        "sender_id": "{user_id}",
        "recipient": "{recipient}",
        "amount": "1.00",
    },
    ("POST", "/api/v1/bank-accounts"): {
        "routing_number": "011000015",
        "account_number": "{new_account_number}",
        "account_holder_name": "Alice",
        "account_type": "checking",
    },
    ("POST", "/api/v1/bank-accounts/{bank_account_id}/verify"): {"amounts": ["0.01", "0.02"]},
    ("POST", "/api/v1/cards"): {"token": "{card_token}"},
    ("POST", "/api/v1/wallet/add-funds"): {
        "user_id": "{user_id}",
        "amount": "1.00",
        "bank_account_id": "{bank_account_id}",
    },
    ("POST", "/api/v1/wallet/cash-out"): {
        "user_id": "{user_id}",
        "amount": "1.00",
        "bank_account_id": "{bank_account_id}",
    },
    ("POST", "/api/v1/sandbox/ach/{funding_id}/return"): {"return_code": "R01"},
    ("PUT", "/api/v1/users/{user_id}/pin"): {"pin": "2468", "current_pin": "2468"},
    ("POST", "/api/v1/transfers/{transfer_id}/verify"): {"pin": "2468"},
    ("POST", "/api/v1/admin/reviews/{review_id}/approve"): {"reason": "matrix test"},
    ("POST", "/api/v1/admin/reviews/{review_id}/reject"): {"reason": "matrix test"},
    **{
        ("POST", f"/api/v1/admin/users/{{subject_id}}/{action}"): {"reason": "matrix test"}
        for action in ("freeze", "unfreeze", "flag", "unflag")
    },
    ("POST", "/api/v1/notifications/read"): {"up_to": "{notification_id}"},
    ("POST", "/api/v1/webhook-endpoints"): {"url": HOOK_URL},
    ("POST", "/api/v1/merchants"): MERCHANT,
    ("POST", "/api/v1/checkout/sessions"): {"amount": "1.00"},
    # What Bob's payment of 0.10 left the shop after its fee (0.09).
    ("POST", "/api/v1/payments/{payment_id}/refunds"): {"amount": "0.01"},
    # Alice pays a cent to Bob's shop (she cannot pay her own).
    ("POST", "/api/v1/payments"): {"qr_payload": "{bobs_static_qr}", "amount": "0.01"},
    ("POST", "/api/v1/merchants/{merchant_id}/payouts"): {
        "amount": "1.00",
        "bank_account_id": "{bank_account_id}",
    },
    ("PATCH", "/api/v1/merchants/{merchant_id}"): {"payout_schedule": "manual"},
    ("PATCH", "/api/v1/webhook-endpoints/{endpoint_id}"): {"description": "matrix test"},
    ("PUT", "/api/v1/notifications/preferences"): {"money_received": {"email": True}},
    ("POST", "/api/v1/sandbox/cards/tokenize"): {
        "number": "4242424242424242",
        "exp_month": "12",
        "exp_year": "2031",
        "cvc": "123",
    },
}
OWNER_FIELDS = {"sender_id", "user_id", "bank_account_id", "up_to"}
# An id in this shape passes every format check but names nothing.
MISSING_TRANSFER_ID = "999999999999999"


@dataclass
class Cast:
    alice: Any
    bob: Any
    eve: Any
    transfer_id: str
    alices: dict[str, str]  # her bank accounts, cards and funding transfers


@dataclass
class Call:
    method: str
    path: str
    url: str
    body: dict[str, Any] | None
    owned_ids: list[str]

    def send(self, client: httpx.AsyncClient, headers: dict[str, str]) -> Awaitable[httpx.Response]:
        headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        return client.request(self.method, self.url, json=self.body, headers=headers)

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


@pytest.fixture(scope="module")
async def cast(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
) -> Cast:
    """Alice sent Bob a dollar; Eve has money of her own and no part in it."""
    alice, bob, eve = await make_person("10.00"), await make_person(), await make_person("7.00")
    sent = await client.post(
        "/api/v1/transfers",
        json={"sender_id": alice.user_id, "recipient": bob.username, "amount": "1.00"},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 201, sent.text
    # Alice is also an operator, acting on a user of her own (the admin routes' subject).
    await grant_admin(app.state.pool, alice.username)
    ids = await funding_ids(client, link_bank, alice)
    ids["subject_id"] = (await make_person()).user_id
    ids |= await held_ids(app, client, make_person, alice)
    ids["notification_id"] = await notification_id(app, alice)
    ids |= await webhook_ids(app, client, alice)
    ids |= await merchant_ids(client, alice, bob, eve)
    ids |= await payout_ids(app, client, alice, ids)
    await app.state.risk.log.flush()
    ids["assessment_id"] = str(
        await app.state.pool.fetchval(
            "SELECT min(id) FROM risk_assessments WHERE user_id = $1", uuid.UUID(alice.user_id)
        )
    )
    return Cast(alice, bob, eve, sent.json()["transfer_id"], ids)


async def held_ids(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, alice: Any
) -> dict[str, str]:
    """A transfer of Alice's held for her PIN (a second device), and two held for review (to a
    flagged recipient), sent by someone else: an operator decides on no transfer of her own."""
    await set_pin(client, alice, pin="2468", password=alice.password)
    payee, flagged, payer = await make_person(), await make_person(), await make_person("1.00")
    await app.state.pool.execute(
        "UPDATE users SET flagged = true WHERE id = $1", uuid.UUID(flagged.user_id)
    )

    async def sent(recipient: Any, device: str, sender: Any = alice) -> str:
        return str((await pay(client, sender, recipient, "0.10", phone=device))["transfer_id"])

    await sent(payee, "home-phone")
    held = await sent(payee, "alice-new-phone")
    return {
        "held_transfer_id": held,
        "review_id": await sent(flagged, "home-phone", payer),
        "spare_review_id": await sent(flagged, "home-phone", payer),
    }


async def notification_id(app: FastAPI, person: Any) -> str:
    """A notification of the person's, recorded as the notifications consumer records one."""
    event = events.user_event("unfrozen", person.user_id)
    await Notifications(app.state.pool, app.state.settings).handle([event])
    found = await app.state.pool.fetchval(
        "SELECT id FROM notifications WHERE event_id = $1", uuid.UUID(event["id"])
    )
    return str(found)


async def webhook_ids(app: FastAPI, client: httpx.AsyncClient, alice: Any) -> dict[str, str]:
    """Two webhook endpoints of Alice's (one to delete), and a delivery to the first, written
    as the webhooks consumer writes one."""
    made = []
    for _ in range(2):
        created = await client.post(
            "/api/v1/webhook-endpoints", json={"url": HOOK_URL}, headers=alice.auth
        )
        assert created.status_code == 201, created.text
        made.append(created.json()["endpoint_id"])
    await fanout.fan_out(app.state.pool, [events.user_event("unfrozen", alice.user_id)])
    delivery = await app.state.pool.fetchval(
        "SELECT min(id) FROM webhook_deliveries WHERE endpoint_id = $1", uuid.UUID(made[0])
    )
    assert delivery is not None
    return {"endpoint_id": made[0], "spare_endpoint_id": made[1], "delivery_id": str(delivery)}


async def merchant_ids(client: httpx.AsyncClient, alice: Any, bob: Any, eve: Any) -> dict[str, str]:
    """A business profile of Alice's, with an API key (for the route that revokes it), the key
    its server signs in with (`merchant_key`) and one revoked; two checkout sessions (one to
    cancel) and a payment Bob made to it. Eve's shop's key (another merchant's) and Bob's
    shop's static code (Alice pays it)."""
    shops = {}
    for name, person in (("alice", alice), ("bob", bob), ("eve", eve)):
        made = await client.post("/api/v1/merchants", json=MERCHANT, headers=person.auth)
        assert made.status_code == 201, made.text
        shops[name] = made.json()
    merchant_id = shops["alice"]["merchant_id"]

    async def key(person: Any, shop: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v1/merchants/{shop['merchant_id']}/api-keys"
        made = await client.post(path, headers=person.auth)
        assert made.status_code == 201, made.text
        return dict(made.json())

    revoked = await key(alice, shops["alice"])
    gone = await client.delete(
        f"/api/v1/merchants/{merchant_id}/api-keys/{revoked['key_id']}", headers=alice.auth
    )
    assert gone.status_code == 204, gone.text
    ids = {
        "merchant_id": merchant_id,
        "key_id": (await key(alice, shops["alice"]))["key_id"],
        "merchant_key": (await key(alice, shops["alice"]))["secret"],
        "revoked_merchant_key": revoked["secret"],
        "eve_merchant_key": (await key(eve, shops["eve"]))["secret"],
    }
    sessions = []
    for _ in range(2):
        opened = await client.post(
            "/api/v1/checkout/sessions",
            json={"amount": "0.10"},
            headers={**bearer(ids["merchant_key"]), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert opened.status_code == 201, opened.text
        sessions.append(opened.json()["session_id"])
    ids["session_id"], ids["spare_session_id"] = sessions
    paid = await client.post(
        "/api/v1/payments",
        json={"session_id": sessions[0]},
        headers={**bob.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert paid.status_code == 201, paid.text
    ids["payment_id"] = paid.json()["payment_id"]
    bobs = shops["bob"]
    code = qr.Payload(
        uuid.UUID(bobs["merchant_id"]), bobs["mcc"], "USD", bobs["country"], bobs["name"],
        bobs["city"],
    )  # fmt: skip
    ids["bobs_static_qr"] = qr.encode(code)
    return ids


async def payout_ids(
    app: FastAPI, client: httpx.AsyncClient, alice: Any, ids: dict[str, str]
) -> dict[str, str]:
    """Money in Alice's merchant account (moved in from a test clearing account, as payments
    would), and a payout of it to her bank account."""
    merchant_id = ids["merchant_id"]
    account_id = await app.state.pool.fetchval(
        "SELECT account_id FROM merchants WHERE id = $1", uuid.UUID(merchant_id)
    )
    bank = await open_clearing_account(app.state.pool, "USD", name="test:bank_clearing:USD")
    await app.state.ledger.move(
        "test",
        str(uuid.uuid4()),
        debit_account_id=bank.id,
        credit_account_id=account_id,
        amount_minor=10_00,
        currency="USD",
        code="test",
    )
    made = await client.post(
        f"/api/v1/merchants/{merchant_id}/payouts",
        json={"amount": "1.00", "bank_account_id": ids["bank_account_id"]},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert made.status_code == 202, made.text
    return {"payout_id": made.json()["payout_id"]}


async def funding_ids(
    client: httpx.AsyncClient, link_bank: Callable[..., Awaitable[str]], alice: Any
) -> dict[str, str]:
    """Alice's verified bank account (and a spare), cards, an ACH and a card add-funds."""

    async def token() -> str:
        made = await client.post(
            "/api/v1/sandbox/cards/tokenize",
            json={"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "1" * 3},
            headers=alice.auth,
        )
        return str(made.json()["token"])

    async def card() -> str:
        made = await client.post("/api/v1/cards", json={"token": await token()}, headers=alice.auth)
        return str(made.json()["card_id"])

    ids = {"bank_account_id": await link_bank(alice, "10000001"), "card_id": await card()}
    ids["spare_bank_account_id"], ids["spare_card_id"] = (
        await link_bank(alice, "10000002"),
        await card(),
    )
    ids["card_token"] = await token()
    ids["new_account_number"] = "10000003"
    funded = await client.post(
        "/api/v1/wallet/add-funds",
        json={"user_id": alice.user_id, "amount": "2.00", "card_id": ids["card_id"]},
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert funded.status_code == 201, funded.text
    ids["card_funding_id"] = funded.json()["transfer_id"]
    pending = await client.post(
        "/api/v1/wallet/add-funds",
        json={
            "user_id": alice.user_id,
            "amount": "2.00",
            "bank_account_id": ids["bank_account_id"],
        },
        headers={**alice.auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert pending.status_code == 202, pending.text
    ids["funding_id"] = pending.json()["transfer_id"]
    return ids


def by_merchant_key(app: FastAPI, method: str, path: str) -> bool:
    """Whether a merchant's key signs the route in (its OpenAPI security names MerchantKey)."""
    operation = app.openapi()["paths"].get(path, {}).get(method.lower(), {})
    return any("MerchantKey" in scheme for scheme in operation.get("security", []))


def by_person(app: FastAPI, method: str, path: str) -> bool:
    """Whether a person's token signs the route in."""
    operation = app.openapi()["paths"].get(path, {}).get(method.lower(), {})
    security = operation.get("security")
    return security is None or any("MerchantKey" not in scheme for scheme in security)


def protected_routes(app: FastAPI) -> list[tuple[str, str, BaseRoute]]:
    """(method, path, route) for every route the app serves that is not on the public list."""
    served: list[tuple[str, str, BaseRoute]] = []
    for context in iter_route_contexts(app.routes):
        # The path as OpenAPI names it: `/wallet/{user_id:uuid}` is `/wallet/{user_id}`.
        path = context.path_format
        assert path and context.methods, f"{context!r} is not an HTTP route; list it here"
        if is_web_path(path):
            continue  # the web app signs in by its session cookie: tests/web/test_access.py
        served += [(method, path, context.original_route) for method in context.methods]
    assert {(method, path) for method, path, _ in served} >= PUBLIC, "a public route is gone"
    protected = sorted(
        ((m, p, r) for m, p, r in served if (m, p) not in PUBLIC), key=lambda row: row[:2]
    )
    assert {(method, path) for method, path, _ in protected} >= KNOWN_PROTECTED
    return protected


def test_every_documented_operation_is_public_or_checked_here(app: FastAPI) -> None:
    """The OpenAPI document's operations: each one that takes a bearer token is among the
    routes every test below sends a request to; each one that takes none is on the public
    list. An operation added later is covered, or this fails."""
    document = app.openapi()
    documented = {
        (method.upper(), path): "security" in operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    protected = {(method, path) for method, path, _ in protected_routes(app)}
    assert len(documented) > 30
    assert {op for op, secured in documented.items() if secured} <= protected
    assert {op for op, secured in documented.items() if not secured} <= PUBLIC
    assert not (protected & PUBLIC)


def calls(app: FastAPI, ids: dict[str, str]) -> list[Call]:
    """One request per protected route, its path and body filled from `ids`."""
    made = []
    for method, path, route in protected_routes(app):
        params = set(compile_path(path)[2])
        unknown = params - PATH_PARAMS
        assert not unknown, f"{method} {path}: no value to fill {sorted(unknown)} with; add one"
        takes_body = isinstance(route, APIRoute) and route.body_field is not None
        assert not takes_body or (method, path) in BODIES, f"{method} {path}: add it to BODIES"
        route_ids = {**ids, **{k: ids[v] for k, v in OWN_IDS.get((method, path), {}).items()}}
        if "/sandbox/cards/" in path:
            route_ids["funding_id"] = ids["card_funding_id"]
        template = BODIES.get((method, path))
        body = {k: _fill(v, route_ids) for k, v in template.items()} if template else None
        owned = [route_ids[name] for name in sorted(params)]
        owned += [body[name] for name in sorted(OWNER_FIELDS & (body or {}).keys())]
        url = path.format(**route_ids)
        made.append(Call(method, path, url, body, owned))
    return made


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, list):
        return [_fill(item, ids) for item in template]
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if not isinstance(template, str):
        return template
    return template.format(**ids)


def alices_ids(cast: Cast) -> dict[str, str]:
    return {
        **cast.alices,
        "user_id": cast.alice.user_id,
        "transfer_id": cast.transfer_id,
        "recipient": cast.bob.username,
    }


def missing_ids(cast: Cast) -> dict[str, str]:
    made_up = {name: str(uuid.uuid4()) for name in cast.alices if name.endswith("_id")}
    return {
        **cast.alices,
        **made_up,
        "assessment_id": str(2**62),
        "delivery_id": str(2**62),
        "user_id": str(uuid.uuid4()),
        "transfer_id": MISSING_TRANSFER_ID,
        "recipient": cast.bob.username,
    }


async def balances(client: httpx.AsyncClient, cast: Cast) -> dict[str, str]:
    read = {}
    for person in (cast.alice, cast.bob, cast.eve):
        response = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
        assert response.status_code == 200, response.text
        read[person.username] = response.json()["balance"]
    return read


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered(token: str) -> str:
    return token[:-2] + ("AA" if token[-2:] != "AA" else "BB")


def expired(user_id: str) -> str:
    claims = {"sub": user_id, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 5}
    return jwt.encode(claims, "k" * 48, algorithm="HS256")


@pytest.mark.parametrize("credentials", ["none", "tampered", "expired", "not_bearer"])
async def test_every_protected_route_refuses_a_bad_token(
    app: FastAPI, client: httpx.AsyncClient, cast: Cast, credentials: str
) -> None:
    """No token, a tampered or expired one, or another scheme: 401 problem+json, nothing moves."""
    headers = {
        "none": {},
        "tampered": bearer(tampered(cast.alice.token)),
        "expired": bearer(expired(cast.alice.user_id)),
        "not_bearer": {"Authorization": f"Basic {cast.alice.token}"},
    }[credentials]
    before = await balances(client, cast)
    wrong = []
    for call in calls(app, alices_ids(cast)):
        response = await call.send(client, headers)
        seen = (
            response.status_code,
            response.headers.get("content-type"),
            response.headers.get("www-authenticate"),
            _problem_code(response),
        )
        if seen != (401, "application/problem+json", "Bearer", "unauthenticated"):
            wrong.append(f"{call}: {seen} {response.text}")
    assert not wrong, "\n".join(wrong)
    assert await balances(client, cast) == before


async def test_another_users_ids_are_404_like_missing_ones_and_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, cast: Cast
) -> None:
    """Eve naming Alice's wallet or transfer gets the very answer a made-up id gets."""
    await assert_ids_hidden(app, client, cast, cast.eve.auth, by_person)


async def test_another_merchants_ids_are_404_like_missing_ones_and_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, cast: Cast
) -> None:
    """Eve's shop's key naming Alice's shop's sessions and payments gets the very answer a
    made-up id gets."""
    eves_key = bearer(cast.alices["eve_merchant_key"])
    await assert_ids_hidden(app, client, cast, eves_key, by_merchant_key)


async def test_merchant_routes_refuse_a_persons_token_and_a_bad_or_revoked_key(
    app: FastAPI, client: httpx.AsyncClient, cast: Cast
) -> None:
    """A route only a merchant's key signs in: a person's valid token, an unknown key and a
    revoked one are each a 401, and nothing changes."""
    before = await balances(client, cast)
    merchant_only = [
        call for call in calls(app, alices_ids(cast)) if not by_person(app, call.method, call.path)
    ]
    assert {(c.method, c.path) for c in merchant_only} >= {
        ("POST", "/api/v1/checkout/sessions"),
        ("GET", "/api/v1/checkout/sessions/{session_id}"),
    }
    wrong = []
    for headers in (
        cast.alice.auth,
        bearer("sk_" + "x" * 43),
        bearer(cast.alices["revoked_merchant_key"]),
    ):
        for call in merchant_only:
            response = await call.send(client, headers)
            if (response.status_code, _problem_code(response)) != (401, "unauthenticated"):
                wrong.append(f"{call}: {response.status_code} {response.text}")
    assert not wrong, "\n".join(wrong)
    assert await balances(client, cast) == before


async def assert_ids_hidden(
    app: FastAPI,
    client: httpx.AsyncClient,
    cast: Cast,
    headers: dict[str, str],
    signs_in: Callable[[FastAPI, str, str], bool],
) -> None:
    """Each route `headers` signs in to that names an id of Alice's (or her shop's) answers
    as for a made-up id: 404, the body the same but for the id."""
    before = await balances(client, cast)

    def routes(ids: dict[str, str]) -> list[Call]:
        found = calls(app, ids)
        return [c for c in found if c.owned_ids and signs_in(app, c.method, c.path)]

    owned, unowned = routes(alices_ids(cast)), routes(missing_ids(cast))
    if signs_in is by_person:
        assert {(c.method, c.path) for c in owned} >= KNOWN_PROTECTED - {
            ("GET", "/api/v1/users/me")
        }
    assert owned
    wrong = []
    for theirs, missing in zip(owned, unowned, strict=True):
        answers = [await theirs.send(client, headers), await missing.send(client, headers)]
        shapes = [
            (r.status_code, r.headers.get("content-type"), _masked(r.text, call.owned_ids))
            for r, call in zip(answers, (theirs, missing), strict=True)
        ]
        if shapes[0] != shapes[1] or shapes[0][:2] != (404, "application/problem+json"):
            wrong.append(f"{theirs} vs {missing}: {shapes}")
    assert not wrong, "\n".join(wrong)
    assert await balances(client, cast) == before


async def test_the_requests_eve_is_refused_succeed_for_alice(
    app: FastAPI, client: httpx.AsyncClient, cast: Cast
) -> None:
    """A control for the tests above: their 404s come from ownership, not from a malformed
    request. A route a merchant's key signs in to is sent her shop's key."""
    refused = []
    for call in calls(app, alices_ids(cast)):
        person = by_person(app, call.method, call.path)
        headers = cast.alice.auth if person else bearer(cast.alices["merchant_key"])
        response = await call.send(client, headers)
        if not response.is_success:
            refused.append(f"{call}: {response.status_code} {response.text}")
    assert not refused, "\n".join(refused)


def _masked(text: str, ids: list[str]) -> str:
    """The body with the ids the request named replaced, so that only the echo of them differs."""
    for value in ids:
        # Whole ids only: a number id such as "1" must not mask the 1 of "/api/v1".
        text = re.sub(rf"(?<![0-9A-Za-z-]){re.escape(value)}(?![0-9A-Za-z-])", "<id>", text)
    return text


def _problem_code(response: httpx.Response) -> str | None:
    if response.headers.get("content-type") != "application/problem+json":
        return None
    return str(response.json().get("code"))
