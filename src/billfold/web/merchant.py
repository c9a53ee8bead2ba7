"""The business dashboard at /app/merchant: a person's businesses, and for each its balance,
payments and refunds, its QR code and checkout sessions. Its keys, webhooks and payouts are in
web/merchant_tools.py, whose routes this router carries.

Every page of a business takes `Business` (web/business.py): 404 unless the person signed in
owns it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from billfold.api.inputs import InputRoute
from billfold.merchants import checkout, profiles, qr, refunds, sales
from billfold.merchants.profiles import Merchant
from billfold.merchants.views import show_payment
from billfold.platform.errors import BillfoldError, ValidationFailed
from billfold.wallet.history import HistoryQuery, parse_moment
from billfold.web import merchant_tools, pages
from billfold.web.business import Business, Key, Short, base, render
from billfold.web.identity import Poster, WebUser

router = APIRouter(route_class=InputRoute, include_in_schema=False)
PAGE_SIZE = 25
RECENT = 5
Text = Annotated[str, Form(max_length=300)]
# A checkout session's expiry as the form offers it, in seconds.
EXPIRIES = {"300": "5 minutes", "900": "15 minutes", "3600": "1 hour", "86400": "1 day"}


@router.get("/app/merchant")
async def businesses(request: Request, user: WebUser) -> Response:
    """The person's businesses, and a form to open one."""
    found = await profiles.list_merchants(request.app.state.pool, user.id)
    return render(request, None, "list.html", businesses=found, form={"country": "US"})


@router.post("/app/merchant")
async def onboard(
    request: Request,
    user: Poster,
    name: Short = "",
    mcc: Short = "",
    city: Short = "",
    country: Short = "",
) -> Response:
    """Open a business profile, as POST /api/v1/merchants does; then its overview."""
    form = {"name": name, "mcc": mcc, "city": city, "country": country.upper()}
    pool = request.app.state.pool
    try:
        new = profiles.check_create_merchant(name, mcc, city, country.strip().upper())
        merchant = await profiles.do_create_merchant(pool, user.id, new)
    except BillfoldError as error:
        found = await profiles.list_merchants(pool, user.id)
        return render(
            request,
            None,
            "list.html",
            status=error.status,
            error=error,
            form=form,
            businesses=found,
        )
    return pages.harden(request, RedirectResponse(base(merchant), status_code=303))


@router.get("/app/merchant/{merchant_id}")
async def overview(request: Request, merchant: Business) -> Response:
    """The business's balance and its latest payments."""
    pool = request.app.state.pool
    balance = await sales.merchant_balance(pool, merchant)
    recent = await sales.list_payments(pool, merchant, sales.PaymentsQuery(limit=RECENT))
    return render(
        request,
        merchant,
        "overview.html",
        page="overview",
        balance=balance,
        payments=recent["payments"],
    )


@router.get("/app/merchant/{merchant_id}/payments")
async def payments(
    request: Request,
    merchant: Business,
    status: str = "",
    start: str = "",
    end: str = "",
    cursor: str = "",
) -> Response:
    """The business's payments, newest first, filtered by status and dates (inclusive), paged
    by the context's keyset cursor."""
    filters = {"status": status[:32], "start": start[:32], "end": end[:32]}
    try:
        query = sales.PaymentsQuery(
            status=status or None,
            start=parse_moment(start, "start", end_of_day=False)[0] if start else None,
            end=_end_of(end) if end else None,
            limit=PAGE_SIZE,
            cursor=cursor[:200] or None,
        )
        found = await sales.list_payments(request.app.state.pool, merchant, query)
    except BillfoldError as error:
        found, status_code = {"payments": [], "next_cursor": None}, error.status
        return render(
            request,
            merchant,
            "payments.html",
            status=status_code,
            page="payments",
            error=error,
            found=found,
            filters=filters,
            statuses=sales.PAYMENT_STATUSES,
        )
    return render(
        request,
        merchant,
        "payments.html",
        page="payments",
        found=found,
        filters=filters,
        statuses=sales.PAYMENT_STATUSES,
    )


# The merchant account's movements, as the activity page's filter names them.
ACTIVITY_TYPES = {"merchant_payment": "Payments", "refund": "Refunds", "payout": "Payouts"}


@router.get("/app/merchant/{merchant_id}/activity")
async def activity(
    request: Request,
    merchant: Business,
    type: str = "",
    start: str = "",
    end: str = "",
    cursor: str = "",
) -> Response:
    """The merchant account's history (payments in, refunds and payouts out), filtered by kind
    and dates, keyset paged, as GET /merchants/{id}/transactions reads it."""
    filters = {"type": type[:32], "start": start[:32], "end": end[:32]}
    ctx: dict[str, Any] = {"page": "activity", "filters": filters, "types": ACTIVITY_TYPES}
    try:
        until, inclusive = parse_moment(end, "end", end_of_day=True) if end else (None, True)
        query = HistoryQuery(
            start=parse_moment(start, "start", end_of_day=False)[0] if start else None,
            end=until,
            end_inclusive=inclusive,
            types=(type,) if type else (),
            limit=PAGE_SIZE,
            cursor=cursor[:64] or None,
        )
        found = await sales.read_merchant_history(request.app.state.pool, merchant, query)
    except BillfoldError as error:
        empty: dict[str, Any] = {"transactions": [], "next_cursor": None}
        return render(
            request,
            merchant,
            "activity.html",
            status=error.status,
            error=error,
            found=empty,
            **ctx,
        )
    return render(request, merchant, "activity.html", found=found, **ctx)


def _end_of(text: str) -> Any:
    """An end date, as the API's `to`: a day runs to its next midnight."""
    moment, inclusive = parse_moment(text, "end", end_of_day=True)
    return moment + sales.ONE_TICK if inclusive else moment


async def _payment_page(
    request: Request, merchant: Merchant, payment_id: str, status: int = 200, **ctx: Any
) -> Response:
    pool = request.app.state.pool
    payment = await show_payment(pool, merchant, payment_id)
    found = await refunds.list_refunds(pool, merchant, payment_id)
    refunded = sum((Decimal(r["amount"]) for r in found if r["status"] == "COMPLETED"), Decimal(0))
    left = Decimal(payment["amount"]) - refunded
    return render(
        request,
        merchant,
        "payment.html",
        status=status,
        page="payments",
        payment=payment,
        refunds=found,
        refunded=refunded,
        left=left,
        key=uuid.uuid4().hex,
        **ctx,
    )


@router.get("/app/merchant/{merchant_id}/payments/{payment_id}")
async def payment(request: Request, merchant: Business, payment_id: str) -> Response:
    """A payment: its fee and net, its refunds, and a form to refund it."""
    return await _payment_page(request, merchant, payment_id[:64])


@router.post("/app/merchant/{merchant_id}/payments/{payment_id}/refunds")
async def refund(
    request: Request,
    user: Poster,
    merchant: Business,
    payment_id: str,
    amount: Short = "",
    reason: Text = "",
    idempotency_key: Key = "",
) -> Response:
    """Refund the payment, in full (no amount) or in part, as POST /payments/{id}/refunds does;
    the form's key makes a double submit one refund."""
    state = request.app.state
    payment_id = payment_id[:64]
    wanted = refunds.RefundRequest(
        payment_id, amount.strip() or None, reason.strip() or None, idempotency_key
    )
    try:
        checked = refunds.check_refund(merchant, wanted)
        made, _ = await refunds.do_refund(state.pool, state.ledger, checked)
    except BillfoldError as error:
        form = {"amount": amount, "reason": reason}
        return await _payment_page(
            request, merchant, payment_id, status=error.status, error=error, form=form
        )
    flash = f"Refunded {pages.money(made['amount'], made['currency'])} to the payer."
    return await _payment_page(request, merchant, payment_id, flash=flash)


@router.get("/app/merchant/{merchant_id}/qr")
async def qr_page(request: Request, merchant: Business) -> Response:
    """The static QR code to print, its downloads, and the checkout session form."""
    return render(
        request,
        merchant,
        "qr.html",
        page="qr",
        payload=profiles.static_payload(merchant),
        key=uuid.uuid4().hex,
        expiries=EXPIRIES,
        form={"expires_in_s": "900"},
    )


@router.get("/app/merchant/{merchant_id}/qr.{kind}")
def qr_image(merchant: Business, kind: str, download: bool = False) -> Response:
    """The static code as PNG or SVG (drawn in the thread pool: 10-15 ms of CPU)."""
    return _image(profiles.static_payload(merchant), kind, f"{merchant.name}-qr", download)


def _image(payload: str, kind: str, name: str, download: bool) -> Response:
    if kind not in qr.IMAGE_TYPES:
        raise ValidationFailed(f"image kind '{kind[:8]}' is not png or svg", field="kind")
    response = Response(qr.image(payload, kind), media_type=qr.IMAGE_TYPES[kind])
    if download:
        safe = "".join(c if c.isalnum() else "-" for c in name)[:40] or "qr"
        response.headers["Content-Disposition"] = f'attachment; filename="{safe}.{kind}"'
    return response


@router.post("/app/merchant/{merchant_id}/checkout")
async def open_session(
    request: Request,
    user: Poster,
    merchant: Business,
    amount: Short = "",
    reference: Short = "",
    expires_in_s: Short = "900",
    idempotency_key: Key = "",
) -> Response:
    """Open a checkout session, as POST /checkout/sessions does; then its page."""
    seconds: object = int(expires_in_s) if expires_in_s.isdigit() else expires_in_s
    try:
        new = checkout.check_create_session(
            merchant, amount.strip(), reference.strip() or None, seconds, idempotency_key
        )
        made, _ = await checkout.do_create_session(request.app.state.pool, merchant, new)
    except BillfoldError as error:
        form = {"amount": amount, "reference": reference, "expires_in_s": expires_in_s}
        return render(
            request,
            merchant,
            "qr.html",
            status=error.status,
            page="qr",
            error=error,
            payload=profiles.static_payload(merchant),
            key=uuid.uuid4().hex,
            expiries=EXPIRIES,
            form=form,
        )
    to = f"{base(merchant)}/checkout/{made['session_id']}"
    return pages.harden(request, RedirectResponse(to, status_code=303))


@router.get("/app/merchant/{merchant_id}/checkout/{session_id}")
async def session_page(request: Request, merchant: Business, session_id: str) -> Response:
    """A checkout session: its dynamic QR code and its state (htmx refreshes it while open)."""
    found = await checkout.show_session(request.app.state.pool, merchant, session_id[:64])
    template = "_session_state.html" if request.headers.get("hx-request") else "session.html"
    return render(request, merchant, template, page="qr", session=found)


@router.get("/app/merchant/{merchant_id}/checkout/{session_id}/qr.png")
async def session_qr(request: Request, merchant: Business, session_id: str) -> Response:
    found = await checkout.show_session(request.app.state.pool, merchant, session_id[:64])
    return _image(found["qr_payload"], "png", "checkout", download=False)


@router.post("/app/merchant/{merchant_id}/checkout/{session_id}/cancel")
async def cancel_session(
    request: Request, user: Poster, merchant: Business, session_id: str
) -> Response:
    """Cancel an open session, as POST /checkout/sessions/{id}/cancel does."""
    pool = request.app.state.pool
    try:
        found = await checkout.do_cancel_session(pool, merchant, session_id[:64])
    except BillfoldError as error:
        found = await checkout.show_session(pool, merchant, session_id[:64])
        return render(
            request,
            merchant,
            "session.html",
            status=error.status,
            page="qr",
            session=found,
            error=error,
        )
    return render(
        request,
        merchant,
        "session.html",
        page="qr",
        session=found,
        flash="The session is canceled: it can no longer be paid.",
    )


router.include_router(merchant_tools.router)
