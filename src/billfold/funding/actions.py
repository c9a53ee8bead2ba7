"""The write paths of add-funds, cash-out and a merchant's payout, from the parsed request to the
movement made.

`check_add_funds`, `check_cash_out` and `check_payout` validate a request and resolve what it
names; `do_add_funds`, `do_cash_out` and `do_payout` have it scored at the risk gate, then make
the movement (funding.movements), held back from its rail when the verdict asks for a step-up or
a review (funding.risk_holds). A retry of a movement already made is not scored again: the
movement it made answers.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import NamedTuple

from billfold.funding import movements
from billfold.funding.cards import CardProcessor
from billfold.funding.risk_holds import REVIEW, VERIFICATION
from billfold.funding.service import Funding, FundingTransfer, Payee, RiskHold
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import NotFound, ValidationFailed, WalletFrozen
from billfold.risk.assessments import never_moved
from billfold.risk.gate import Gate, Movement, Origin
from billfold.wallet import debts
from billfold.wallet.money import parse_amount
from billfold.wallet.transfers import parse_user_id
from billfold.wallet.users import User

Made = tuple[FundingTransfer, bool]  # the movement, and whether an earlier request made it


@dataclass(frozen=True)
class MovementRequest:
    """An add-funds or cash-out request as the API read it: the body's fields, and the
    Idempotency-Key header's value or else the body's `idempotency_key`."""

    user_id: str
    amount: object
    bank_account_id: str | None
    card_id: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CheckedMovement:
    kind: str  # add_funds | cash_out
    user: User
    amount_minor: int
    key: str
    rail: str  # ach | card
    source_id: str  # the bank account (ach) or the card the money comes from or goes to


class Scored(NamedTuple):
    held: RiskHold | None = None  # the hold a step-up or review verdict makes it wait under
    assessment_id: int | None = None  # the assessment stored for this request, if any


async def add_funds(
    funding: Funding,
    processor: CardProcessor,
    gate: Gate,
    user: User,
    request: MovementRequest,
    origin: Origin,
) -> Made:
    """`check_add_funds`, then `do_add_funds`."""
    checked = await check_add_funds(funding, user, request)
    return await do_add_funds(funding, processor, gate, checked, origin)


async def check_add_funds(
    funding: Funding, user: User, request: MovementRequest
) -> CheckedMovement:
    """The request validated, and its source (exactly one of a verified bank account and a card
    of the user's) checked before it is scored. Takes no lock."""
    amount, key = _check_movement(request, user)
    if (request.bank_account_id is None) == (request.card_id is None):
        raise ValidationFailed(
            "give exactly one of bank_account_id and card_id", field="bank_account_id"
        )
    rail = "card" if request.card_id is not None else "ach"
    await movements.check_source(funding, user, request.bank_account_id, request.card_id)
    source = request.card_id or request.bank_account_id
    return CheckedMovement("add_funds", user, amount, key, rail, str(source))


async def do_add_funds(
    funding: Funding, processor: CardProcessor, gate: Gate, checked: CheckedMovement, origin: Origin
) -> Made:
    """Score the add-funds, then make it: a card charged and booked at once, an ACH pull
    pending until it settles; held, nothing booked nor charged until it is released.

    Locks: the user's row (FOR UPDATE, behind funding.user_locks) while the movement's limits
    are checked and it is recorded; the ledger locks the accounts it books, in ascending id
    order, in its own transaction."""
    user, amount, key = checked.user, checked.amount_minor, checked.key
    scored = await _score(funding, gate, checked, origin)
    source, held = checked.source_id, scored.held
    making: Awaitable[Made]
    if checked.rail == "card":
        making = movements.add_funds_card(funding, processor, user, amount, source, key, held)
    else:
        making = movements.add_funds_ach(funding, user, amount, source, key, held)
    return await _made(funding, checked, scored, making)


async def cash_out(
    funding: Funding, gate: Gate, user: User, request: MovementRequest, origin: Origin
) -> Made:
    """`check_cash_out`, then `do_cash_out`."""
    return await do_cash_out(funding, gate, check_cash_out(user, request), origin)


def check_cash_out(user: User, request: MovementRequest) -> CheckedMovement:
    """The request validated. Takes no lock."""
    amount, key = _check_movement(request, user)
    if request.bank_account_id is None:
        raise ValidationFailed("bank_account_id is required", field="bank_account_id")
    return CheckedMovement("cash_out", user, amount, key, "ach", request.bank_account_id)


async def do_cash_out(
    funding: Funding, gate: Gate, checked: CheckedMovement, origin: Origin
) -> Made:
    """Repay what the user owes, then score the cash-out and make it: its money held at once,
    sent with the next ACH file unless the verdict holds it back.

    Locks: the user's debt lock (wallet.debts: a transaction-scoped advisory lock) while
    what is owed is repaid; then those of do_add_funds."""
    user, amount, key = checked.user, checked.amount_minor, checked.key
    # What is owed is repaid first, from what the wallet holds; while anything is still owed,
    # nothing goes out (and this request changes nothing).
    owed = await debts.collect(funding.pool, funding.ledger, user.id, user.account_id)
    if owed:
        raise debts.debt_outstanding(owed)
    await movements.check_source(funding, user, checked.source_id, None)
    scored = await _score(funding, gate, checked, origin)
    making = movements.cash_out(funding, user, amount, checked.source_id, key, scored.held)
    return await _made(funding, checked, scored, making)


@dataclass(frozen=True)
class PayoutRequest:
    """A payout as its caller read it: the owner it is made for, the merchant account it
    leaves (`payee`), the amount as given, the owner's bank account and the caller's
    idempotency key (unique per payee)."""

    owner: User
    payee: Payee
    amount: object
    bank_account_id: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CheckedPayout:
    movement: CheckedMovement  # scored as its owner's cash-out, under the payee's key
    payee: Payee


def payout_key(payee: Payee, key: str) -> str:
    """The key a payout is stored under: a merchant's keys are its own, apart from its
    owner's cash-outs and their other merchants' payouts."""
    return f"payout:{payee.merchant_id}:{key}"


def check_payout(request: PayoutRequest) -> CheckedPayout:
    """The request validated; an owner whose wallet is frozen sends nothing out, from any
    account of theirs. Takes no lock."""
    if not request.idempotency_key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    amount = parse_amount(request.amount, WALLET_CURRENCY)
    if request.bank_account_id is None:
        raise ValidationFailed("bank_account_id is required", field="bank_account_id")
    if request.owner.frozen:
        raise WalletFrozen("your wallet is frozen: nothing is paid out while it is")
    key = payout_key(request.payee, request.idempotency_key)
    bank = request.bank_account_id
    return CheckedPayout(
        CheckedMovement("cash_out", request.owner, amount, key, "ach", bank), request.payee
    )


async def do_payout(funding: Funding, gate: Gate, checked: CheckedPayout, origin: Origin) -> Made:
    """As do_cash_out, from the payee's account: what the owner owes is repaid first (from
    their wallet), the payout is scored as the owner's cash-out (the same money leaving to
    the same bank accounts; the rules and the model know that kind), then held at once and
    sent with the next ACH file unless the verdict holds it back.

    Locks: those of do_cash_out (the owner's debt lock, then their row)."""
    movement = checked.movement
    owner = movement.user
    owed = await debts.collect(funding.pool, funding.ledger, owner.id, owner.account_id)
    if owed:
        raise debts.debt_outstanding(owed)
    await movements.check_source(funding, owner, movement.source_id, None)
    scored = await _score(funding, gate, movement, origin)
    making = movements.cash_out(
        funding,
        owner,
        movement.amount_minor,
        movement.source_id,
        movement.key,
        scored.held,
        checked.payee,
    )
    return await _made(funding, movement, scored, making)


async def _score(funding: Funding, gate: Gate, checked: CheckedMovement, origin: Origin) -> Scored:
    """Score an add-funds or cash-out before money moves (a retry of one already made is not
    scored again: the movement it made answers). A decline refuses it; a step-up or review
    verdict gives the hold it is made under."""
    user, kind, key = checked.user, checked.kind, checked.key
    if await movements.exists(funding.pool, user.id, key):
        return Scored()
    movement = Movement(
        kind,
        str(user.id),
        None,
        checked.amount_minor,
        WALLET_CURRENCY,
        ref=f"{kind}:{key}",
        device_id=origin.device_id,
        country=origin.country,
        ip=origin.ip,
        rail=checked.rail,
    )
    verdict = await gate.assess(movement)
    waits_for = {"step_up": VERIFICATION, "review": REVIEW}.get(verdict.action)
    if waits_for is None:
        return Scored(assessment_id=verdict.assessment_id)
    if verdict.assessment_id is None:
        # The engine writes funding assessments at once: a held movement refers to its own.
        raise LookupError(f"the {verdict.action} assessment of {kind} {key[:64]} was not stored")
    return Scored(RiskHold(waits_for, verdict.assessment_id), verdict.assessment_id)


async def _made(
    funding: Funding, checked: CheckedMovement, scored: Scored, making: Awaitable[Made]
) -> Made:
    """The movement `making` makes, and whether it is an earlier request's. If no movement
    is made under this request's assessment (refused: funds, limits, the card declined; or
    a concurrent request with the key made it first), the assessment is stored as declined
    later: money that never moved is no history for the next movements' rules (money in,
    then straight out; the day's cash for a CTR) and features."""
    try:
        ft, replayed = await making
    except Exception:
        if scored.assessment_id is not None and not await movements.exists(
            funding.pool, checked.user.id, checked.key
        ):
            await never_moved(funding.pool, scored.assessment_id)
        raise
    if replayed and scored.assessment_id is not None:
        await never_moved(funding.pool, scored.assessment_id)
    return ft, replayed


def _check_movement(request: MovementRequest, user: User) -> tuple[int, str]:
    key = request.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if parse_user_id(request.user_id) != user.id:
        raise NotFound(
            f"wallet '{request.user_id[:64]}' does not exist", user_id=request.user_id[:64]
        )
    return parse_amount(request.amount, WALLET_CURRENCY), key
