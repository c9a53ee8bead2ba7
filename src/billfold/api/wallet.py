"""Wallets and person-to-person transfers."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from billfold.api.funding import debt_outstanding
from billfold.api.identity import AuthenticatedId, CurrentUser
from billfold.api.limits import limit_money
from billfold.funding import collections
from billfold.ledger.errors import DebtOutstanding
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.wallet.risk import Movement, assess_within_budget
from billfold.wallet.transfers import (
    access_transfer,
    check_p2p,
    do_p2p,
    ledger_client,
    parse_user_id,
    transfer_view,
    wallet_view,
)

router = APIRouter(prefix="/api/v1", tags=["wallet"])
# A request marks its idempotency key in flight in Redis for this long (a request that fails
# removes its mark at once). The mark only turns a wait into a clear 409: the ledger alone
# decides exactly-once.
IN_FLIGHT_TTL_MS = 30_000


class IdempotencyKeyInUse(BillfoldError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still running"


class TransferBody(BaseModel):
    sender_id: str = Field(max_length=64)
    recipient: str = Field(max_length=254)
    # Any JSON value: parse_amount decides, so that every bad amount is an `invalid_amount`.
    amount: Any = Field(
        description="A decimal string ('50.00') or a JSON number, in dollars.",
        json_schema_extra={"anyOf": [{"type": "string"}, {"type": "number"}]},
    )
    note: str | None = None
    idempotency_key: str | None = Field(default=None, max_length=255)


class WalletOut(BaseModel):
    user_id: str
    currency: str
    balance: str
    available_balance: str
    pending_balance: str


class TransferOut(BaseModel):
    transfer_id: str
    status: str
    amount: str
    currency: str
    sender_id: str | None
    recipient_id: str | None
    sender_balance: str | None
    note: str | None
    created_at: str


@router.get("/wallet/{user_id}", response_model=WalletOut)
async def get_wallet(request: Request, user_id: str, user: CurrentUser) -> dict[str, Any]:
    """Balance (posted), available balance (spendable now) and pending incoming money."""
    if parse_user_id(user_id) != user.id:
        raise NotFound(f"wallet '{user_id[:64]}' does not exist", user_id=user_id[:64])
    return await wallet_view(request.app.state.pool, request.app.state.balances, user)


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    dependencies=[Depends(limit_money)],
)
async def send_money(
    request: Request,
    response: Response,
    body: TransferBody,
    user_id: AuthenticatedId,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    """Send money to a username, email or phone number. Retries with the same Idempotency-Key
    and body get the first answer (with `Idempotent-Replayed: true`)."""
    key = idempotency_key or body.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if parse_user_id(body.sender_id) != user_id:
        raise NotFound(f"wallet '{body.sender_id[:64]}' does not exist", user_id=body.sender_id)
    state = request.app.state
    p2p = await check_p2p(state.pool, state.users, user_id, body.recipient, body.amount, body.note)
    user = p2p.sender
    # Scored before money moves. A retry is scored again; the risk engine (issue 5) must answer
    # a retry of a transfer it allowed the same way, or look up the key first.
    movement = Movement("p2p", str(user.id), str(p2p.recipient.id), p2p.amount_minor, "USD")
    await assess_within_budget(state.risk, movement, state.settings.risk_budget_ms)
    client = ledger_client(user)
    marker = f"in-flight:{client}:{key}"
    held = await _hold_key(state.redis, marker)
    if held is False and not await state.ledger.has_outcome(client, key):
        raise IdempotencyKeyInUse(
            "a request with this idempotency key is still running; retry shortly",
            idempotency_key=key,
        )
    try:
        transfer = await do_p2p(state.ledger, p2p, key)
    except DebtOutstanding:
        # Repaid first from what came in since; the refusal stands for this key either way.
        owed = await collections.collect(state.pool, state.ledger, user.id, user.account_id, "USD")
        raise debt_outstanding(owed) from None
    except BaseException:
        # The outcome may not be stored (the ledger was busy, the request was cancelled): a
        # retry must be able to run at once. A stored failure is replayed by the ledger.
        if held:
            await _release_key(state.redis, marker)
        raise
    if transfer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
        response.status_code = 201
    return transfer_view(transfer)


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
async def get_transfer(request: Request, transfer_id: str, user: CurrentUser) -> dict[str, Any]:
    """A transfer the caller sent or received."""
    return transfer_view(await access_transfer(request.app.state.ledger, user, transfer_id))


async def _hold_key(redis: Any, marker: str) -> bool | None:
    """Mark the key in flight. True: marked. False: marked already, by a request that is still
    running or one that finished in the last IN_FLIGHT_TTL_MS (a successful request leaves its
    mark, which saves a Redis round trip; the ledger's stored outcome tells the two apart).
    None: Redis is unreachable, and the ledger alone decides, as it always does."""
    try:
        return bool(await redis.set(marker, "1", nx=True, px=IN_FLIGHT_TTL_MS))
    except RedisError:
        return None


async def _release_key(redis: Any, marker: str) -> None:
    with contextlib.suppress(RedisError):
        await redis.delete(marker)
