"""Person-to-person transfers, wallet balances and the transfers a user may see."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.ledger.accounts import get_account
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import TransferNotFound
from billfold.ledger.model import AccountBalance, SideRow, Transfer
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed, WalletFrozen
from billfold.platform.security import Unauthenticated
from billfold.platform.strict import ascii_digits
from billfold.wallet.balances import BalanceCache
from billfold.wallet.handles import parse_handle
from billfold.wallet.money import parse_amount
from billfold.wallet.refusals import in_wallet_terms
from billfold.wallet.users import User, UserCache

MAX_NOTE_LENGTH = 280
P2P = "p2p"


class RecipientNotFound(BillfoldError):
    code = "recipient_not_found"
    status = 404
    title = "Recipient not found"


class SelfTransfer(BillfoldError):
    code = "self_transfer"
    status = 422
    title = "Cannot send money to yourself"


@dataclass(frozen=True)
class P2PRequest:
    sender: User
    recipient: User
    amount_minor: int
    note: str | None


def ledger_client(user: User) -> str:
    """Idempotency keys are unique per client; each user is a client of the ledger."""
    return f"user:{user.id}"


async def check_p2p(
    pool: asyncpg.Pool,
    users: UserCache,
    sender_id: uuid.UUID,
    recipient_text: str,
    amount: object,
    note: str | None,
) -> P2PRequest:
    """Validate a transfer request; find the sender and the recipient (from the cache, or both in
    one query)."""
    amount_minor = parse_amount(amount, WALLET_CURRENCY)
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise ValidationFailed(
            f"note is {len(note)} characters, at most {MAX_NOTE_LENGTH}", field="note"
        )
    try:
        handle = parse_handle(recipient_text)
    except ValidationFailed:
        raise RecipientNotFound(
            f"recipient '{recipient_text[:60]}' is not a username, email or phone number",
            recipient=recipient_text[:60],
        ) from None
    try:
        sender, recipient = await users.sender_and_recipient(pool, sender_id, handle)
    except NotFound:
        raise Unauthenticated("the access token names no user") from None
    if recipient is None:
        raise RecipientNotFound(
            f"no user has the {handle.kind} '{handle.value}'", recipient=recipient_text[:60]
        )
    if recipient.id == sender.id:
        raise SelfTransfer("sender and recipient are the same user")
    for user in (sender, recipient):
        if user.frozen:
            whose = "your" if user is sender else "the recipient's"
            raise WalletFrozen(f"{whose} wallet is frozen")
    return P2PRequest(sender, recipient, amount_minor, note)


async def do_p2p(
    ledger: Ledger,
    request: P2PRequest,
    idempotency_key: str,
    *,
    hold: bool = False,
    rows: Sequence[SideRow] = (),
) -> Transfer:
    """Move the money through the ledger, or with `hold` only reserve it (a transfer the risk
    engine wants confirmed first); the ledger locks both wallets and stores the outcome under
    the sender's idempotency key, and with it `rows` (the risk assessment: SideRow)."""
    metadata: dict[str, Any] = {
        "sender_id": str(request.sender.id),
        "recipient_id": str(request.recipient.id),
    }
    if request.note:
        metadata["note"] = request.note
    accounts: dict[str, Any] = {
        "debit_account_id": request.sender.account_id,
        "credit_account_id": request.recipient.account_id,
        "amount_minor": request.amount_minor,
        "currency": WALLET_CURRENCY,
        "code": P2P,
        "metadata": metadata,
    }
    client = ledger_client(request.sender)
    # The ledger's own freeze check among its refusals: the sender's status may have changed
    # since it was read (see UserCache).
    with in_wallet_terms(request.sender.account_id, request.amount_minor, WALLET_CURRENCY):
        if hold:
            return await ledger.hold(client, idempotency_key, **accounts)
        return await ledger.move(client, idempotency_key, rows=rows, **accounts)


def transfer_view(
    transfer: Transfer, viewer_account_id: int, status: str | None = "COMPLETED"
) -> dict[str, Any]:
    """The public form of a P2P transfer as the owner of wallet `viewer_account_id` sees it.
    Built from the stored transfer alone, so that a replay answers exactly what the first
    request did; a transfer the risk engine held (a ledger hold) has the status of its hold
    (PENDING_VERIFICATION, PENDING_REVIEW, COMPLETED, DECLINED). `sender_balance` is shown to
    the sender only: a person sees their own balance, never another's (a recipient, or a
    system account that paid in)."""
    metadata = transfer.metadata or {}
    debit = next((e for e in transfer.entries if e.amount_minor < 0), None)
    own = debit is not None and debit.account_id == viewer_account_id
    return {
        "transfer_id": str(transfer.id),
        "type": transfer.code,
        "status": status or "PENDING",
        "amount": format_amount(transfer.amount_minor, transfer.currency),
        "currency": transfer.currency,
        "sender_id": metadata.get("sender_id"),
        "recipient_id": metadata.get("recipient_id"),
        "sender_balance": format_amount(debit.balance_after_minor, transfer.currency)
        if debit is not None and own
        else None,
        "note": metadata.get("note"),
        "created_at": transfer.created_at.isoformat(),
    }


async def access_transfer(ledger: Ledger, user: User, transfer_id: str) -> Transfer:
    """A transfer the user took part in, by its public id; any other id, or one that does not
    exist, is a 404. A ledger transfer that is a step of another movement has no public id of
    its own (see public_id) and is a 404 here too: the step of an add-funds or cash-out (its
    movement is looked up by its uuid), and the post or void of a hold (the hold's id)."""
    missing = TransferNotFound(
        f"transfer '{transfer_id[:40]}' does not exist", transfer_id=transfer_id[:40]
    )
    if not ascii_digits(transfer_id, 18):
        raise missing
    transfer = await ledger.get_transfer(int(transfer_id))
    if transfer is None or transfer.entry_for(user.account_id) is None:
        raise missing
    if public_id(transfer.id, transfer.pending_id, transfer.metadata) != str(transfer.id):
        raise missing
    return transfer


def public_id(transfer_id: int, pending_id: int | None, metadata: dict[str, Any] | None) -> str:
    """The one id a person knows a movement by, in every response, history row and lookup: an
    add-funds' or cash-out's uuid (which each of its ledger steps names), a held transfer's
    hold (also once it is posted), or else the ledger transfer's own id."""
    funding_id = (metadata or {}).get("funding_id")
    if funding_id:
        return str(funding_id)
    return str(pending_id or transfer_id)


async def wallet_view(pool: asyncpg.Pool, cache: BalanceCache, user: User) -> dict[str, Any]:
    """Balances from the cache; on a miss from PostgreSQL, which then fills the cache (the
    cache's version check keeps this read from overwriting a newer commit)."""
    balance = await cache.get(user.account_id)
    if balance is None:
        account = await get_account(pool, user.account_id)
        balance = AccountBalance(
            account.id,
            account.posted_minor,
            account.pending_debits_minor,
            account.pending_credits_minor,
            account.version,
        )
        await cache.put_many([balance])
    currency = WALLET_CURRENCY
    return {
        "user_id": str(user.id),
        "currency": currency,
        "balance": format_amount(balance.posted_minor, currency),
        "available_balance": format_amount(
            balance.posted_minor - balance.pending_debits_minor, currency
        ),
        "pending_balance": format_amount(balance.pending_credits_minor, currency),
    }


def parse_user_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
