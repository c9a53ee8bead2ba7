"""Money in and out at /app: linked bank accounts and cards (/app/banks), adding money
(/app/add-funds), cashing out (/app/cash-out), and a movement's state (/app/movements/{id}),
through the context functions the API's funding endpoints call.

A money-moving form carries an idempotency key made when it is rendered: a double submit or
a refresh moves money once. After a refusal the form gets a new key (the refused request
moved nothing, and a card's decline is kept under its key), except after a 5xx refusal
(ledger busy, risk engine unavailable), which may be retried as it was.

Card numbers: with the sandbox on, the page takes a card and has the sandbox processor
tokenize it on the server, as a processor's own form would; the number and CVC are never
stored, logged, shown again or named in an error. Without the sandbox, cards come from the
processor's own form (POST /api/v1/cards with its token).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from billfold.api.inputs import InputRoute
from billfold.api.limits import limit_money
from billfold.api.signals import risk_gate
from billfold.funding import actions, bank_accounts, cards, movements, risk_holds, sandbox
from billfold.funding.cards import SandboxProcessor
from billfold.funding.views import funding_view
from billfold.platform.errors import BillfoldError, ValidationFailed
from billfold.wallet.pins import check_pin_format
from billfold.wallet.transfers import wallet_view
from billfold.wallet.users import User
from billfold.web import pages
from billfold.web.identity import Poster, WebUser, web_origin

router = APIRouter(route_class=InputRoute, include_in_schema=False)
Short = Annotated[str, Form(max_length=100)]
Amount = Annotated[str, Form(max_length=40)]
Key = Annotated[str, Form(max_length=100)]
# What a page says after a change it redirected from (?done=...): fixed texts, never input.
DONE = {
    "linked": "Bank account linked. Two small deposits are on their way: confirm them below.",
    "verified": "Bank account verified: you can add money from it and cash out to it.",
    "unlinked": "Bank account unlinked.",
    "card-added": "Card added.",
    "card-removed": "Card removed.",
}


def _key() -> str:
    return str(uuid.uuid4())


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _back(request: Request, path: str) -> Response:
    return pages.harden(request, RedirectResponse(path, status_code=303))


# Bank accounts and cards


@router.get("/app/banks")
async def banks_page(request: Request, user: WebUser) -> Response:
    """Linked bank accounts (last4, type, status) and cards (brand, last4, expiry)."""
    return await _banks(request, user, flash=_done(request))


async def _banks(
    request: Request,
    user: User,
    *,
    error: BillfoldError | None = None,
    form: str | None = None,
    fields: dict[str, str] | None = None,
    flash: str | None = None,
) -> Response:
    state = request.app.state
    is_sandbox = isinstance(state.cards, SandboxProcessor)
    micro = await sandbox.micro_deposit_amounts(state.pool, user.id) if is_sandbox else {}
    return pages.render(
        request,
        "wallet/banks.html",
        status=error.status if error else 200,
        banks=await bank_accounts.list_bank_accounts(state.pool, user.id),
        cards=await cards.list_cards(state.pool, user.id),
        sandbox=is_sandbox,
        micro=micro,
        error=error,
        form=form,
        fields=fields or {},
        flash=flash,
    )


@router.post("/app/banks")
async def link_bank(
    request: Request,
    user: Poster,
    routing_number: Short = "",
    account_number: Short = "",
    account_holder_name: Short = "",
    account_type: Short = "",
) -> Response:
    """Link a bank account; the sandbox (or the bank) sends the two micro-deposits."""
    try:
        link = bank_accounts.check_link_bank_account(
            routing_number, account_number, account_holder_name, account_type
        )
        await bank_accounts.do_link_bank_account(request.app.state.funding, user.id, link)
    except BillfoldError as error:
        # The account number is never put back in the page: it may be a real one.
        kept = {
            "routing_number": routing_number,
            "account_holder_name": account_holder_name,
            "account_type": account_type,
        }
        return await _banks(request, user, error=error, form="link", fields=kept)
    return _back(request, "/app/banks?done=linked")


@router.post("/app/banks/{bank_account_id}/verify")
async def verify_bank(
    request: Request,
    bank_account_id: str,
    user: Poster,
    amount_1: Amount = "",
    amount_2: Amount = "",
) -> Response:
    """Confirm the two micro-deposit amounts (three wrong tries lock the account)."""
    funding = request.app.state.funding
    try:
        await bank_accounts.do_verify_bank_account(
            funding, user.id, bank_account_id[:40], [amount_1, amount_2]
        )
    except BillfoldError as error:
        kept = {"amount_1": amount_1, "amount_2": amount_2}
        form = f"verify:{bank_account_id[:40]}"
        return await _banks(request, user, error=error, form=form, fields=kept)
    return _back(request, "/app/banks?done=verified")


@router.post("/app/banks/{bank_account_id}/unlink")
async def unlink_bank(request: Request, bank_account_id: str, user: Poster) -> Response:
    pool = request.app.state.pool
    try:
        await bank_accounts.do_unlink_bank_account(pool, user.id, bank_account_id[:40])
    except BillfoldError as error:
        return await _banks(request, user, error=error, form="banks")
    return _back(request, "/app/banks?done=unlinked")


@router.post("/app/cards")
async def add_card(
    request: Request,
    user: Poster,
    number: Annotated[str, Form(max_length=32)] = "",
    exp_month: Annotated[str, Form(max_length=4)] = "",
    exp_year: Annotated[str, Form(max_length=6)] = "",
    cvc: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """With the sandbox: the card tokenized by the sandbox processor, then stored by its
    token as POST /api/v1/cards stores it. Neither the number nor the CVC is kept or shown."""
    state = request.app.state
    processor = state.cards
    try:
        if not isinstance(processor, SandboxProcessor):
            raise cards.CardProcessorUnavailable(
                "cards are added through the card processor's own form on this deployment"
            )
        month, year = _whole(exp_month, "exp_month"), _whole(exp_year, "exp_year")
        made = await processor.tokenize(user.id, number, month, year, cvc)
        await cards.add_card(state.pool, state.funding.keys, processor, user.id, made["token"])
    except BillfoldError as error:
        kept = {"exp_month": exp_month, "exp_year": exp_year}
        return await _banks(request, user, error=error, form="card", fields=kept)
    return _back(request, "/app/banks?done=card-added")


def _whole(text: str, field: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit()):
        raise ValidationFailed(f"{field} '{value[:6]}' is not a whole number", field=field)
    return int(value)


@router.post("/app/cards/{card_id}/remove")
async def remove_card(request: Request, card_id: str, user: Poster) -> Response:
    try:
        await cards.remove_card(request.app.state.pool, user.id, card_id[:40])
    except BillfoldError as error:
        return await _banks(request, user, error=error, form="cards")
    return _back(request, "/app/banks?done=card-removed")


# Adding money and cashing out


@router.get("/app/add-funds")
async def add_funds_page(request: Request, user: WebUser) -> Response:
    """From a verified bank account (ACH: pending until it settles) or a card (at once)."""
    return await _movement_form(request, user, "add-funds")


@router.get("/app/cash-out")
async def cash_out_page(request: Request, user: WebUser) -> Response:
    """To a verified bank account: the money is held at once, pending until it settles."""
    return await _movement_form(request, user, "cash-out")


async def _movement_form(
    request: Request,
    user: User,
    kind: str,
    *,
    error: BillfoldError | None = None,
    fields: dict[str, str] | None = None,
) -> Response:
    state = request.app.state
    banks = [
        b
        for b in await bank_accounts.list_bank_accounts(state.pool, user.id)
        if b["status"] == "verified"
    ]
    card_list = await cards.list_cards(state.pool, user.id) if kind == "add-funds" else []
    kept = fields or {}
    retry = error is not None and error.status >= 500 and kept.get("idempotency_key")
    return pages.render(
        request,
        f"wallet/{kind}.html",
        status=error.status if error else 200,
        banks=banks,
        cards=card_list,
        wallet=await wallet_view(state.pool, state.balances, user),
        card_fee_percent=f"{state.settings.card_fee_bps / 100:g}%",
        card_fee_fixed_minor=state.settings.card_fee_fixed_minor,
        error=error,
        fields=kept,
        idempotency_key=kept["idempotency_key"] if retry else _key(),
    )


@router.post("/app/add-funds")
async def add_funds(
    request: Request,
    user: Poster,
    source: Short = "",
    amount: Amount = "",
    idempotency_key: Key = "",
) -> Response:
    """As POST /api/v1/wallet/add-funds: scored, then a card charged or an ACH pull made."""
    state = request.app.state
    kept = {"source": source, "amount": amount, "idempotency_key": idempotency_key}
    try:
        await limit_money(request, user.id)
        bank_id, card_id = _source(source)
        made = actions.MovementRequest(str(user.id), amount, bank_id, card_id, idempotency_key)
        gate, origin = risk_gate(request), web_origin(request, user)
        ft, _ = await actions.add_funds(state.funding, state.cards, gate, user, made, origin)
    except BillfoldError as error:
        return await _movement_form(request, user, "add-funds", error=error, fields=kept)
    return _back(request, f"/app/movements/{ft.id}")


@router.post("/app/cash-out")
async def cash_out(
    request: Request,
    user: Poster,
    bank_account_id: Short = "",
    amount: Amount = "",
    idempotency_key: Key = "",
) -> Response:
    """As POST /api/v1/wallet/cash-out: what is owed repaid, scored, then held and sent."""
    state = request.app.state
    kept = {
        "bank_account_id": bank_account_id,
        "amount": amount,
        "idempotency_key": idempotency_key,
    }
    try:
        await limit_money(request, user.id)
        bank = bank_account_id or None
        made = actions.MovementRequest(str(user.id), amount, bank, None, idempotency_key)
        origin = web_origin(request, user)
        ft, _ = await actions.cash_out(state.funding, risk_gate(request), user, made, origin)
    except BillfoldError as error:
        return await _movement_form(request, user, "cash-out", error=error, fields=kept)
    return _back(request, f"/app/movements/{ft.id}")


def _source(value: str) -> tuple[str | None, str | None]:
    """The form's `source` (`bank:<id>` or `card:<id>`) as (bank_account_id, card_id)."""
    kind, _, source_id = value.partition(":")
    if kind == "bank" and source_id:
        return source_id, None
    if kind == "card" and source_id:
        return None, source_id
    raise ValidationFailed("choose a bank account or a card to add money from", field="source")


# A movement's state


@router.get("/app/movements/{funding_id}")
async def movement_page(request: Request, funding_id: str, user: WebUser) -> Response:
    """An add-funds or cash-out of the person's: pending, completed, held for verification
    (with the PIN form), in review, declined or returned."""
    return await _movement(request, user, funding_id)


async def _movement(
    request: Request, user: User, funding_id: str, error: BillfoldError | None = None
) -> Response:
    ft = await movements.access_movement(request.app.state.pool, user, funding_id[:40])
    # A banking day, not a moment: shown as a date, in no time zone.
    expected = ft.estimated_completion.strftime("%b %-d, %Y") if ft.estimated_completion else None
    return pages.render(
        request,
        "wallet/funding_movement.html",
        status=error.status if error else 200,
        movement=funding_view(ft),
        expected=expected,
        error=error,
    )


@router.post("/app/movements/{funding_id}/verify")
async def verify_movement(
    request: Request,
    funding_id: str,
    user: Poster,
    pin: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Confirm a movement held for verification with the PIN, as POST
    /api/v1/transfers/{id}/verify does (three wrong PINs decline it)."""
    state = request.app.state
    try:
        await limit_money(request, user.id)
        check_pin_format(pin)
        await risk_holds.verify_movement(state.funding, state.cards, user, funding_id[:40], pin)
    except BillfoldError as error:
        return await _movement(request, user, funding_id, error)
    return _back(request, f"/app/movements/{funding_id[:40]}")
