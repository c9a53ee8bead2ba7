"""Merchants: business profiles and their API keys (a person's token), and what a merchant's
server does with a key."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from billfold.api.fields import UuidPath
from billfold.api.identity import CurrentMerchant, CurrentUser, MerchantOfCaller
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_merchant
from billfold.api.problems import problem_responses
from billfold.api.views import MerchantOut
from billfold.merchants import keys, profiles, qr
from billfold.platform.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/api/v1", tags=["merchants"], route_class=InputRoute)

MerchantName = Annotated[
    str,
    Field(
        max_length=qr.NAME_MAX,
        description="As the QR code shows it: printable ASCII.",
        json_schema_extra={"minLength": 1},
    ),
]
City = Annotated[str, Field(max_length=qr.CITY_MAX, json_schema_extra={"minLength": 1})]
Mcc = Annotated[
    str,
    Field(
        max_length=4,
        description="ISO 18245 merchant category code.",
        json_schema_extra={"pattern": "^[0-9]{4}$"},
    ),
]
Country = Annotated[
    str,
    Field(
        max_length=2,
        description="ISO 3166-1 alpha-2.",
        json_schema_extra={"pattern": "^[A-Z]{2}$"},
    ),
]


class MerchantIn(Body):
    name: MerchantName
    mcc: Mcc
    city: City
    country: Country


class QrFormat(StrEnum):
    json = "json"
    png = "png"
    svg = "svg"


class QrOut(BaseModel):
    payload: str = Field(
        description="The code's text (EMVCo merchant-presented, static: the payer types the "
        "amount), to draw as a QR code."
    )


# The images GET /merchants/{id}/qr answers with `format=png` or `svg`, beside its JSON.
QR_IMAGES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The payload as JSON, or drawn as a QR code (error correction M).",
        "content": {
            qr.IMAGE_TYPES["png"]: {"schema": {"type": "string", "format": "binary"}},
            qr.IMAGE_TYPES["svg"]: {"schema": {"type": "string"}},
        },
    }
}


class KeyOut(BaseModel):
    key_id: str
    prefix: str = Field(description="The secret's first characters, to tell keys apart.")
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class KeyCreated(KeyOut):
    secret: str = Field(description="The key (`sk_...`): shown this once, keep it.")


@router.post(
    "/merchants",
    status_code=201,
    response_model=MerchantOut,
    responses=problem_responses(ValidationFailed, profiles.MerchantLimitReached),
)
async def create_merchant(request: Request, body: MerchantIn, user: CurrentUser) -> Any:
    """Open a business profile, owned by you, with a merchant account of its own."""
    new = profiles.check_create_merchant(body.name, body.mcc, body.city, body.country)
    merchant = await profiles.do_create_merchant(request.app.state.pool, user.id, new)
    return profiles.merchant_view(merchant)


@router.get("/merchants", response_model=list[MerchantOut])
async def list_merchants(request: Request, user: CurrentUser) -> Any:
    """Your business profiles, oldest first."""
    return await profiles.list_merchants(request.app.state.pool, user.id)


@router.get(
    "/merchants/{merchant_id}", response_model=MerchantOut, responses=problem_responses(NotFound)
)
async def get_merchant(request: Request, merchant_id: UuidPath, user: CurrentUser) -> Any:
    merchant = await profiles.owned_merchant(request.app.state.pool, user.id, merchant_id)
    return profiles.merchant_view(merchant)


@router.post(
    "/merchants/{merchant_id}/api-keys",
    status_code=201,
    response_model=KeyCreated,
    responses=problem_responses(NotFound, keys.KeyLimitReached),
)
async def create_key(request: Request, merchant_id: UuidPath, user: CurrentUser) -> Any:
    """A key for the merchant's server; the answer holds its secret, shown this once."""
    return await keys.do_create_key(request.app.state.pool, user.id, merchant_id)


@router.get(
    "/merchants/{merchant_id}/api-keys",
    response_model=list[KeyOut],
    responses=problem_responses(NotFound),
)
async def list_keys(request: Request, merchant_id: UuidPath, user: CurrentUser) -> Any:
    """The merchant's keys, revoked ones too; never a secret."""
    return await keys.list_keys(request.app.state.pool, user.id, merchant_id)


@router.delete(
    "/merchants/{merchant_id}/api-keys/{key_id}",
    status_code=204,
    responses=problem_responses(NotFound),
)
async def revoke_key(
    request: Request, merchant_id: UuidPath, key_id: UuidPath, user: CurrentUser
) -> None:
    """Revoke the key: the next request made with it is refused (401)."""
    await keys.do_revoke_key(request.app.state.pool, user.id, merchant_id, key_id)


@router.get(
    "/merchants/{merchant_id}/qr",
    response_model=QrOut,
    responses={**QR_IMAGES, **problem_responses(NotFound)},
)
def get_qr(
    merchant: MerchantOfCaller,
    kind: Annotated[
        QrFormat,
        Query(alias="format", description="json (the payload), or the code as png or svg."),
    ] = QrFormat.json,
) -> Any:
    """The merchant's static QR code, for its owner's token or its own API key: payers scan it
    and type the amount."""
    # A plain function, so that FastAPI runs it in its thread pool: drawing takes 10-15 ms of
    # CPU, which the event loop should not wait on.
    payload = profiles.static_payload(merchant)
    if kind is QrFormat.json:
        return {"payload": payload}
    return Response(qr.image(payload, kind.value), media_type=qr.IMAGE_TYPES[kind.value])


@router.get("/merchant", response_model=MerchantOut, dependencies=[Depends(limit_merchant)])
async def who_am_i(merchant: CurrentMerchant) -> Any:
    """The merchant whose API key (`Authorization: Bearer sk_...`) signs the request: a
    merchant's server checks its key with it. Rate-limited per merchant, as every key call."""
    return profiles.merchant_view(merchant)
