"""Webhook endpoints: an owner registers where the events that concern them are POSTed, signed
(Standard Webhooks), and sees each delivery and its attempts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from billfold.api.fields import (
    Cursor,
    DeliveryIdPath,
    EventTypes,
    UuidPath,
    WebhookDescription,
    WebhookUrl,
)
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.problems import problem_responses
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.webhooks import deliveries, endpoints
from billfold.webhooks.service import Webhooks

router = APIRouter(prefix="/api/v1", tags=["webhooks"], route_class=InputRoute)
SHOWN_ONCE = "The signing secret (`whsec_...`): shown this once, keep it."


class EndpointIn(Body):
    url: WebhookUrl
    event_types: EventTypes | None = Field(default=None, description="Unset: `['*']`.")
    description: WebhookDescription = ""


class EndpointPatch(Body):
    """The fields to change; those left out stay as they are."""

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: WebhookDescription | None = None
    enabled: bool | None = Field(
        default=None, description="false pauses deliveries; true resumes them (a fresh window)."
    )


class EndpointOut(BaseModel):
    endpoint_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    failing_since: str | None = Field(description="The first failure since the last success.")
    disabled_at: str | None
    previous_secret_expires_at: str | None = Field(
        description="Until then, the secret before the last rotation signs too."
    )
    created_at: str
    updated_at: str


class EndpointCreated(EndpointOut):
    secret: str = Field(description=SHOWN_ONCE)


class SecretOut(BaseModel):
    endpoint_id: str
    secret: str = Field(description=SHOWN_ONCE)
    previous_secret_expires_at: str | None


class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None = Field(description="The receiver's answer; null if none came.")
    error: str | None = Field(description="Why no answer came (a timeout, a refused connection).")
    duration_ms: int


class DeliveryOut(BaseModel):
    delivery_id: str
    event_id: str = Field(description="Also the `webhook-id` header: drop a second copy by it.")
    event_type: str
    status: str = Field(description="pending, delivered or failed (given up)")
    attempt_count: int
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    attempts: list[AttemptOut] = Field(
        description=f"The latest {deliveries.ATTEMPTS_SHOWN}, oldest first."
    )


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


def webhooks_of(request: Request) -> Webhooks:
    hooks: Webhooks = request.app.state.webhooks
    return hooks


@router.post(
    "/webhook-endpoints",
    status_code=201,
    response_model=EndpointCreated,
    responses=problem_responses(ValidationFailed, endpoints.EndpointLimitReached),
)
async def create_endpoint(request: Request, body: EndpointIn, user: CurrentUser) -> Any:
    """Register an endpoint for the events that concern you, of the kinds asked for. The
    answer holds the signing secret, shown this once."""
    hooks = webhooks_of(request)
    wanted = endpoints.check_create_endpoint(
        hooks.settings, body.url, body.event_types, body.description
    )
    return await endpoints.do_create_endpoint(hooks, user.id, wanted)


@router.get("/webhook-endpoints", response_model=list[EndpointOut])
async def list_endpoints(request: Request, user: CurrentUser) -> Any:
    return await endpoints.list_endpoints(request.app.state.pool, user.id)


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=problem_responses(NotFound),
)
async def get_endpoint(request: Request, endpoint_id: UuidPath, user: CurrentUser) -> Any:
    return await endpoints.get_endpoint(request.app.state.pool, user.id, endpoint_id)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=problem_responses(NotFound, ValidationFailed),
)
async def update_endpoint(
    request: Request, endpoint_id: UuidPath, body: EndpointPatch, user: CurrentUser
) -> Any:
    hooks = webhooks_of(request)
    change = endpoints.check_update_endpoint(
        hooks.settings, body.url, body.event_types, body.description, body.enabled
    )
    return await endpoints.do_update_endpoint(hooks.pool, user.id, endpoint_id, change)


@router.delete(
    "/webhook-endpoints/{endpoint_id}", status_code=204, responses=problem_responses(NotFound)
)
async def delete_endpoint(request: Request, endpoint_id: UuidPath, user: CurrentUser) -> None:
    """Delete the endpoint with its deliveries and their attempts."""
    await endpoints.do_delete_endpoint(request.app.state.pool, user.id, endpoint_id)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    responses=problem_responses(NotFound),
)
async def rotate_secret(request: Request, endpoint_id: UuidPath, user: CurrentUser) -> Any:
    """A new signing secret, shown this once. The previous one signs beside it (two signatures
    in `webhook-signature`) until `previous_secret_expires_at`."""
    return await endpoints.do_rotate_secret(webhooks_of(request), user.id, endpoint_id)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    response_model=DeliveriesOut,
    responses=problem_responses(NotFound, ValidationFailed),
)
async def list_deliveries(
    request: Request,
    endpoint_id: UuidPath,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=deliveries.MAX_LIMIT)] = 20,
    cursor: Cursor = None,
) -> Any:
    """The endpoint's deliveries, newest first, each with its latest attempts; `next_cursor`
    pages on."""
    pool = request.app.state.pool
    return await deliveries.list_deliveries(pool, user.id, endpoint_id, limit, cursor)


@router.post(
    "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=DeliveryOut,
    responses=problem_responses(NotFound, endpoints.EndpointDisabled),
)
async def resend_delivery(
    request: Request, endpoint_id: UuidPath, delivery_id: DeliveryIdPath, user: CurrentUser
) -> Any:
    """Deliver again now (pending), with a retry window of its own."""
    pool = request.app.state.pool
    return await deliveries.do_resend_delivery(pool, user.id, endpoint_id, delivery_id)
