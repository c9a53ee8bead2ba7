"""A business's tools (web/merchant.py carries these routes): its API keys, the owner's webhook
endpoints and their delivery log, and payouts to the owner's bank account.

Webhook endpoints are the person's, not one business's (the API's /webhook-endpoints): each
business's page shows the same ones, and they receive the events of all of them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from billfold.api.fields import PIN_MAX
from billfold.api.inputs import InputRoute
from billfold.api.limits import limit_money
from billfold.api.signals import risk_gate
from billfold.funding import risk_holds
from billfold.funding.bank_accounts import list_bank_accounts
from billfold.merchants import keys, payouts, sales
from billfold.merchants.profiles import Merchant
from billfold.platform.errors import BillfoldError
from billfold.wallet.users import User
from billfold.web.business import Business, Key, Short, render
from billfold.web.identity import Poster, WebUser, web_origin
from billfold.web.pages import money
from billfold.webhooks import deliveries, endpoints

router = APIRouter(route_class=InputRoute, include_in_schema=False)
DELIVERIES_PAGE = 20
PAYOUTS_PAGE = 20
Url = Annotated[str, Form(max_length=2048)]
Text = Annotated[str, Form(max_length=600)]
PinField = Annotated[str, Form(max_length=PIN_MAX)]


# --- API keys ------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, user: User, merchant: Merchant, status: int = 200, **ctx: Any
) -> Response:
    found = await keys.list_keys(request.app.state.pool, user.id, str(merchant.id))
    return render(request, merchant, "keys.html", status=status, page="keys", keys=found, **ctx)


@router.get("/app/merchant/{merchant_id}/keys")
async def keys_page(request: Request, user: WebUser, merchant: Business) -> Response:
    """The business's API keys: prefix, when made and last used; never a secret."""
    return await _keys_page(request, user, merchant)


@router.post("/app/merchant/{merchant_id}/keys")
async def create_key(request: Request, user: Poster, merchant: Business) -> Response:
    """A new key, as POST /merchants/{id}/api-keys: its secret is on this page only."""
    try:
        made = await keys.do_create_key(request.app.state.pool, user.id, str(merchant.id))
    except BillfoldError as error:
        return await _keys_page(request, user, merchant, status=error.status, error=error)
    return await _keys_page(request, user, merchant, created=made)


@router.post("/app/merchant/{merchant_id}/keys/{key_id}/revoke")
async def revoke_key(request: Request, user: Poster, merchant: Business, key_id: str) -> Response:
    """Revoke a key: the next request with it is refused (401)."""
    try:
        await keys.do_revoke_key(request.app.state.pool, user.id, str(merchant.id), key_id[:64])
    except BillfoldError as error:
        return await _keys_page(request, user, merchant, status=error.status, error=error)
    return await _keys_page(request, user, merchant, flash="The key is revoked.")


# --- webhooks ------------------------------------------------------------------------------------


async def _hooks_page(
    request: Request, user: User, merchant: Merchant, status: int = 200, **ctx: Any
) -> Response:
    found = await endpoints.list_endpoints(request.app.state.pool, user.id)
    ctx.setdefault("form", {})
    return render(
        request, merchant, "webhooks.html", status=status, page="webhooks", endpoints=found, **ctx
    )


@router.get("/app/merchant/{merchant_id}/webhooks")
async def webhooks_page(request: Request, user: WebUser, merchant: Business) -> Response:
    """The person's webhook endpoints, and a form to register one."""
    return await _hooks_page(request, user, merchant)


@router.post("/app/merchant/{merchant_id}/webhooks")
async def register_endpoint(
    request: Request,
    user: Poster,
    merchant: Business,
    url: Url = "",
    event_types: Text = "",
    description: Text = "",
) -> Response:
    """Register an endpoint, as POST /webhook-endpoints: its signing secret is shown once."""
    hooks = request.app.state.webhooks
    kinds = [k for k in event_types.replace(",", " ").split() if k] or None
    try:
        wanted = endpoints.check_create_endpoint(hooks.settings, url.strip(), kinds, description)
        made = await endpoints.do_create_endpoint(hooks, user.id, wanted)
    except BillfoldError as error:
        form = {"url": url, "event_types": event_types, "description": description}
        return await _hooks_page(
            request, user, merchant, status=error.status, error=error, form=form
        )
    return await _hooks_page(request, user, merchant, created=made)


@router.post("/app/merchant/{merchant_id}/webhooks/{endpoint_id}/delete")
async def delete_endpoint(
    request: Request, user: Poster, merchant: Business, endpoint_id: str
) -> Response:
    """Delete an endpoint with its deliveries, as DELETE /webhook-endpoints/{id}."""
    await endpoints.do_delete_endpoint(request.app.state.pool, user.id, endpoint_id[:64])
    return await _hooks_page(request, user, merchant, flash="The endpoint is deleted.")


async def _deliveries_page(
    request: Request,
    user: User,
    merchant: Merchant,
    endpoint_id: str,
    cursor: str | None = None,
    status: int = 200,
    **ctx: Any,
) -> Response:
    pool = request.app.state.pool
    endpoint = await endpoints.get_endpoint(pool, user.id, endpoint_id)
    found = await deliveries.list_deliveries(pool, user.id, endpoint_id, DELIVERIES_PAGE, cursor)
    return render(
        request,
        merchant,
        "deliveries.html",
        status=status,
        page="webhooks",
        endpoint=endpoint,
        found=found,
        **ctx,
    )


@router.get("/app/merchant/{merchant_id}/webhooks/{endpoint_id}")
async def deliveries_page(
    request: Request, user: WebUser, merchant: Business, endpoint_id: str, cursor: str = ""
) -> Response:
    """An endpoint's deliveries, newest first, each with its latest attempts; keyset paged."""
    return await _deliveries_page(request, user, merchant, endpoint_id[:64], cursor[:64] or None)


@router.post("/app/merchant/{merchant_id}/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend")
async def resend_delivery(
    request: Request, user: Poster, merchant: Business, endpoint_id: str, delivery_id: str
) -> Response:
    """Deliver again now, as POST .../deliveries/{id}/resend."""
    endpoint_id = endpoint_id[:64]
    try:
        await deliveries.do_resend_delivery(
            request.app.state.pool, user.id, endpoint_id, delivery_id[:64]
        )
    except BillfoldError as error:
        return await _deliveries_page(
            request, user, merchant, endpoint_id, status=error.status, error=error
        )
    flash = f"Delivery {delivery_id[:20]} will be sent again now."
    return await _deliveries_page(request, user, merchant, endpoint_id, flash=flash)


# --- payouts -------------------------------------------------------------------------------------


async def _payouts_page(
    request: Request,
    user: User,
    merchant: Merchant,
    cursor: str | None = None,
    status: int = 200,
    **ctx: Any,
) -> Response:
    pool = request.app.state.pool
    banks = [b for b in await list_bank_accounts(pool, user.id) if b["status"] == "verified"]
    found = await payouts.list_payouts(pool, user.id, str(merchant.id), PAYOUTS_PAGE, cursor)
    ctx.setdefault("form", {})
    ctx["balance"] = await sales.merchant_balance(pool, merchant)
    return render(
        request,
        merchant,
        "payouts.html",
        status=status,
        page="payouts",
        banks=banks,
        found=found,
        key=uuid.uuid4().hex,
        **ctx,
    )


@router.get("/app/merchant/{merchant_id}/payouts")
async def payouts_page(
    request: Request, user: WebUser, merchant: Business, cursor: str = ""
) -> Response:
    """The payout settings, a payout by hand, and the payouts made, keyset paged."""
    return await _payouts_page(request, user, merchant, cursor[:64] or None)


@router.post("/app/merchant/{merchant_id}/payouts/settings")
async def payout_settings(
    request: Request,
    user: Poster,
    merchant: Business,
    payout_schedule: Short = "",
    payout_bank_account_id: Short = "",
) -> Response:
    """Set the schedule (manual or daily) and the bank account paid out to, as PATCH
    /merchants/{id} does."""
    try:
        change = payouts.check_payout_settings(
            payout_schedule or None, payout_bank_account_id or None, True
        )
        merchant = await payouts.do_update_payout_settings(
            request.app.state.pool, user.id, str(merchant.id), change
        )
    except BillfoldError as error:
        return await _payouts_page(request, user, merchant, status=error.status, error=error)
    return await _payouts_page(request, user, merchant, flash="Payout settings saved.")


@router.post("/app/merchant/{merchant_id}/payouts")
async def pay_out(
    request: Request,
    user: Poster,
    merchant: Business,
    amount: Short = "",
    bank_account_id: Short = "",
    idempotency_key: Key = "",
) -> Response:
    """Pay out to a verified bank account of the owner's, as POST /merchants/{id}/payouts; the
    form's key makes a double submit one payout."""
    state = request.app.state
    asked = payouts.PayoutAsked(
        str(merchant.id), amount.strip(), bank_account_id or None, idempotency_key
    )
    try:
        await limit_money(request, user.id)
        made, _ = await payouts.request_payout(
            state.funding, risk_gate(request), user, asked, web_origin(request, user)
        )
    except BillfoldError as error:
        form = {"amount": amount, "bank_account_id": bank_account_id}
        return await _payouts_page(
            request, user, merchant, status=error.status, error=error, form=form
        )
    shown = money(made["amount"], made["currency"])
    flash = f"Payout of {shown} requested: {made['status'].replace('_', ' ').lower()}."
    return await _payouts_page(request, user, merchant, flash=flash)


@router.post("/app/merchant/{merchant_id}/payouts/{payout_id}/verify")
async def verify_payout(
    request: Request, user: Poster, merchant: Business, payout_id: str, pin: PinField = ""
) -> Response:
    """A payout the risk checks held for the owner's PIN, confirmed as POST
    /transfers/{payout_id}/verify does (risk_holds.verify_movement): right, it goes to the
    bank (or to review, for a PIN changed within a day); the third wrong one declines it and
    the money is back in the merchant account. Only a payout of this business's is taken."""
    state = request.app.state
    try:
        await limit_money(request, user.id)
        await payouts.get_payout(state.pool, user.id, str(merchant.id), payout_id[:40])
        made = await risk_holds.verify_movement(
            state.funding, state.cards, user, payout_id[:40], pin
        )
    except BillfoldError as error:
        return await _payouts_page(
            request, user, merchant, status=error.status, error=error, held_error=payout_id[:40]
        )
    status = str(made["status"]).replace("_", " ").lower()
    shown = money(made["amount"], made["currency"])
    flash = f"Payout of {shown} confirmed: {status}."
    return await _payouts_page(request, user, merchant, flash=flash)
