"""The OpenAPI document says every response each operation can give, and /docs shows it
without the internet (issue 25). tests/api/test_schema_fuzz.py holds the API to it."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles

import billfold.app
from billfold.api import docs
from billfold.api.inputs import InputRoute
from billfold.api.problems import CODES_KEY, PROBLEM_MEDIA_TYPE
from billfold.app import create_app

PROBLEM_REF = "#/components/schemas/Problem"


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    found = [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(found) > 30
    return found


def test_every_error_response_is_a_problem_listing_its_codes(app: FastAPI) -> None:
    """Each 4xx and 5xx of each operation: an application/problem+json body of the Problem
    schema (and nothing else), and the codes it may carry, in words and in x-problem-codes."""
    wrong = []
    for method, path, operation in operations(app):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response.get("content", {})
            codes = response.get(CODES_KEY, [])
            listed = re.findall(r"^- `([a-z_]+)`: ", response["description"], re.MULTILINE)
            if (
                list(content) != [PROBLEM_MEDIA_TYPE]
                or content[PROBLEM_MEDIA_TYPE]["schema"] != {"$ref": PROBLEM_REF}
                or not codes
                or listed != codes
            ):
                wrong.append(f"{method} {path} {status}: {response}")
    assert not wrong, "\n".join(wrong)
    schemas = app.openapi()["components"]["schemas"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "code", "detail"}
    assert "HTTPValidationError" not in schemas


def test_every_operation_documents_what_it_answers_by_its_kind(app: FastAPI) -> None:
    """Whatever its endpoint does: the input gate's 413 and 422 on every operation, its 415 on
    one that takes a body, 401 on one that takes a bearer token, the operators' 404 on theirs,
    a rate limit's 429, and admission control's 503 `overloaded` under /api/."""
    wrong = []
    for method, path, operation in operations(app):
        expected = {"413": "payload_too_large", "422": "validation_error"}
        if "requestBody" in operation:
            expected["415"] = "unsupported_media_type"
        if "security" in operation:
            expected["401"] = "unauthenticated"
        if path.startswith("/api/v1/admin/"):
            expected["404"] = "not_found"
        if path.startswith("/api/"):
            expected["503"] = "overloaded"
        for status, code in expected.items():
            if code not in operation["responses"].get(status, {}).get(CODES_KEY, []):
                wrong.append(f"{method} {path}: no {status} {code}")
    assert not wrong, "\n".join(wrong)
    rate_limited = {
        f"{method} {path}"
        for method, path, operation in operations(app)
        if "rate_limited" in operation["responses"].get("429", {}).get(CODES_KEY, [])
    }
    assert rate_limited >= {
        "POST /api/v1/auth/token",
        "POST /api/v1/transfers",
        "POST /api/v1/wallet/add-funds",
        "POST /api/v1/wallet/cash-out",
        "POST /api/v1/transfers/{transfer_id}/verify",
    }


def test_the_responses_an_endpoint_declares_are_kept(app: FastAPI) -> None:
    """What an endpoint declares is merged with what its kind adds, not replaced."""
    transfers = app.openapi()["paths"]["/api/v1/transfers"]["post"]["responses"]
    assert transfers["404"][CODES_KEY] == ["not_found", "recipient_not_found"]
    assert transfers["503"][CODES_KEY][-2:] == ["overloaded", "busy"]
    assert "risk_unavailable" in transfers["503"][CODES_KEY]
    assert "Retry-After" in transfers["503"]["headers"]
    explanation = app.openapi()["paths"]["/api/v1/admin/assessments/{assessment_id}/explanation"]
    assert explanation["get"]["responses"]["409"]["description"].startswith(
        "Conflict: scored by another model"
    )


def test_the_inputs_state_their_constraints(app: FastAPI) -> None:
    """A sample of what a generated client must know: formats, patterns, lengths, ranges."""
    document = app.openapi()
    schemas, paths = document["components"]["schemas"], document["paths"]
    assert schemas["PinBody"]["properties"]["pin"]["pattern"] == "^[0-9]{4,8}$"
    assert schemas["MovementIn"]["properties"]["user_id"]["format"] == "uuid"
    assert schemas["SignUpBody"]["properties"]["password"]["minLength"] == 8
    history = paths["/api/v1/wallet/{user_id}/transactions"]["get"]["parameters"]
    limit = next(p for p in history if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 200)
    transfer = paths["/api/v1/transfers"]["post"]
    key = next(p for p in transfer["parameters"] if p["name"] == "idempotency-key")
    assert key["schema"]["maxLength"] == 255
    body = transfer["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = schemas[body["$ref"].rpartition("/")[2]]
    pattern = body["properties"]["amount"]["anyOf"][0]["pattern"]
    assert re.fullmatch(pattern, "0.01") and not re.fullmatch(pattern, "0.00")
    transfer_id = paths["/api/v1/transfers/{transfer_id}"]["get"]["parameters"][0]["schema"]
    assert transfer_id["pattern"].startswith("^([0-9]{1,18}|")


# --- /docs without the internet -----------------------------------------------------------------


@pytest.mark.parametrize(("page", "assets"), [("/docs", 3), ("/redoc", 2)])
async def test_the_docs_load_only_their_own_assets(
    client: httpx.AsyncClient, page: str, assets: int
) -> None:
    """Every script, style and icon the page names is served by the app itself (fastapi-
    offline's copies), so the page works on a machine without internet; Swagger UI asks no
    validator either."""
    html = await client.get(page)
    assert html.status_code == 200, html.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assert len(urls) == assets, urls
    assert all(url.startswith(f"{docs.ASSETS_PATH}/") for url in urls), urls
    assert "http" not in html.text.replace("http-equiv", "")
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(docs.ASSETS[url.rpartition("/")[2]])
        assert len(asset.content) > 1000


async def test_the_docs_pages_and_the_document_are_served(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    document = await client.get("/openapi.json")
    assert document.status_code == 200
    assert document.json() == app.openapi()
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert (await client.head("/docs")).status_code == 200


@pytest.mark.parametrize("name", ["missing.js", "..%2Fcore.py", "__init__.py"])
async def test_only_the_listed_assets_are_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"{docs.ASSETS_PATH}/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_docs_pass_the_input_gate(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{docs.ASSETS_PATH}/a%00b")
    assert response.status_code == 422
    assert response.json()["field"] == "name"


@pytest.mark.parametrize("kind", ["mount", "route"])
def test_the_app_refuses_a_route_of_another_kind(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A mount or a plain Starlette route would pass no gate (FastAPIOffline mounts its
    assets): create_app refuses any route that is not an InputRoute."""
    router = APIRouter(route_class=InputRoute)
    if kind == "mount":
        router.mount("/static", StaticFiles(directory=docs.ASSETS_DIR))
    else:
        router.add_route("/static", PlainTextResponse("ungated"))
    monkeypatch.setattr(billfold.app, "docs", SimpleNamespace(router=router))
    with pytest.raises(RuntimeError, match=r"without the input gate.*'/static'"):
        create_app(app.state.settings)
