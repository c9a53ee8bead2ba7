"""Transfers the risk engine held, as the wallet moves their money: the sender's PIN confirms one
held for verification, an operator approves or rejects one held for review, and the ledger posts
or voids its hold.

The ledger posts or voids a hold exactly once, under keys named after the hold, so two analysts
deciding at once, or an analyst and an expiring step-up, give one outcome. What the transfer
waits for is risk's to record (risk.held), under the held transfer's row lock, which each path
here takes first (risk.held.lock_held) and keeps until its transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import HoldNotPending
from billfold.ledger.model import Kind, SideRow, Transfer
from billfold.platform.currency import WALLET_CURRENCY
from billfold.risk import held as risk_held
from billfold.risk import operators
from billfold.risk.events import DECLINED_BY_PIN, review_decided
from billfold.risk.gate import Movement
from billfold.risk.places import remember
from billfold.wallet.pins import PinCheck, WrongPin, check_pin
from billfold.wallet.transfers import access_transfer, ledger_client, transfer_view
from billfold.wallet.users import User, get_user

# The ledger client of operators' decisions on held transfers.
RISK_CLIENT = "risk"
# Why a held movement was declined, as a HeldKind's rows are told (risk.events' codes).
BY_REVIEW = "review"

# (the caller's connection, the held transfer, its status after, why it was declined or None)
HeldRows = Callable[
    [asyncpg.Connection, risk_held.Held, str, str | None], Awaitable[Sequence[SideRow]]
]


@dataclass(frozen=True)
class HeldKind:
    """How a held movement is resolved, by the transfer code of its ledger hold: the codes of
    the post and the void. A movement of a context above the wallet (a merchant payment),
    held through this module as a P2P transfer is (the payer's PIN, an operator's review),
    brings `rows`: what the ledger writes with the post or void, in its own transaction (the
    movement's record and its events, which then tell of it instead of `transfer.verified` and
    `transfer.declined`); and `to_review`, what it writes, on the caller's connection, when a
    recently changed PIN sends it to review (instead of `transfer.held`)."""

    post_code: str
    void_code: str
    rows: HeldRows | None = None
    to_review: Callable[[asyncpg.Connection, risk_held.Held], Awaitable[None]] | None = None

    @property
    def tells(self) -> bool:
        """Whether the kind tells of its outcomes itself (else the wallet's events do)."""
        return self.rows is not None


P2P_HELD = HeldKind("p2p", "p2p_declined")
# Kinds by their hold's transfer code; the contexts above the wallet register theirs
# (register_held_kind), as merchants.holds does for merchant payments.
_KINDS: dict[str, HeldKind] = {"p2p": P2P_HELD}


def register_held_kind(code: str, kind: HeldKind) -> None:
    """Resolve holds of transfer code `code` as `kind` says (in every process that imports the
    module that registers it: the one that makes such holds)."""
    _KINDS[code] = kind


async def held_kind(ledger: Ledger, held: risk_held.Held) -> HeldKind:
    """The kind of the held transfer, by its hold's code. A hold of a code no context
    registered is refused rather than posted as a P2P transfer."""
    hold = await ledger.get_transfer(held.hold_id)
    if hold is None:  # held_transfers.hold_id references the ledger's hold
        raise LookupError(f"hold {held.hold_id} is not in the ledger")
    kind = _KINDS.get(hold.code)
    if kind is None:
        raise LookupError(f"hold {held.hold_id} has code {hold.code!r}, which no context resolves")
    return kind


async def resolve(
    conn: asyncpg.Connection,
    ledger: Ledger,
    held: risk_held.Held,
    *,
    complete: bool,
    client: str,
    kind: HeldKind | None = None,
    reason: str | None = None,
) -> str:
    """Post or void the hold (whoever asks first wins in the ledger) and record the status, with
    the codes and side rows of its kind (held_kind, unless given); `reason`: why it is
    declined, for the kind's rows. The caller holds the held transfer's row lock
    (risk.held.lock_held) on `conn`; the ledger locks the hold's accounts, in ascending account
    id order, in its own transaction."""
    kind = kind or await held_kind(ledger, held)
    status = "COMPLETED" if complete else "DECLINED"
    rows = await kind.rows(conn, held, status, reason) if kind.rows is not None else ()
    try:
        if complete:
            await ledger.post(
                client, f"release:{held.hold_id}", held.hold_id, code=kind.post_code, rows=rows
            )
        else:
            await ledger.void(
                client, f"decline:{held.hold_id}", held.hold_id, code=kind.void_code, rows=rows
            )
    except HoldNotPending:
        raise risk_held.NotPending(f"transfer {held.hold_id} was decided already") from None
    await risk_held.do_record_outcome(conn, held, status)
    return status


async def do_confirm(
    conn: asyncpg.Connection, ledger: Ledger, held: risk_held.Held, pin: PinCheck, *, client: str
) -> str:
    """What a PIN does to a transfer waiting for verification; its status after. The caller
    holds the row lock (risk.held.lock_held). The right PIN completes it (`transfer.verified`),
    unless it was changed within 24 hours: then the transfer goes to review, its money still
    held (`transfer.held`). A wrong PIN is counted, and the MAX_PIN_FAILURES-th declines it
    (`transfer.declined`). Each event is written on `conn`, with the status it tells of; a kind
    that tells of itself (HeldKind.tells: a merchant payment) writes its own instead."""
    kind = await held_kind(ledger, held)
    if pin.right and pin.changed_recently:
        status = await risk_held.do_send_to_review(conn, held, tell=not kind.tells)
        if kind.to_review is not None:
            await kind.to_review(conn, held)
        return status
    if pin.right:
        status = await resolve(conn, ledger, held, complete=True, client=client, kind=kind)
        if not kind.tells:
            await outbox.write(conn, [risk_held.event_of(held, "transfer.verified")])
        return status
    if await risk_held.do_note_wrong_pin(conn, held):
        status = await resolve(
            conn, ledger, held, complete=False, client=client, kind=kind, reason=DECLINED_BY_PIN
        )
        if not kind.tells:
            declined = risk_held.event_of(held, "transfer.declined", reason=DECLINED_BY_PIN)
            await outbox.write(conn, [declined])
        return status
    return held.status


async def verify_transfer(
    pool: asyncpg.Pool, ledger: Ledger, user: User, transfer_id: str, pin: str
) -> dict[str, Any]:
    """Confirm a transfer of the user's held for verification with their PIN (do_confirm); its
    public form after. A wrong PIN is WrongPin, naming the status it left the transfer in.

    Locks: the held transfer's row, from the check to the ledger's answer (one transaction);
    the ledger locks the two wallets itself."""
    async with pool.acquire() as conn, conn.transaction():
        held = await risk_held.lock_held(
            conn, transfer_id, status="PENDING_VERIFICATION", sender_id=user.id
        )
        checked = await check_pin(pool, user.id, pin)
        status = await do_confirm(conn, ledger, held, checked, client=ledger_client(user))
    if not checked.right:
        raise WrongPin(
            f"wrong PIN; the transfer is {status}",
            attempts_left=max(risk_held.MAX_PIN_FAILURES - held.pin_failures - 1, 0),
            transfer_status=status,
        )
    if status == "COMPLETED":
        await remember(pool, _movement_of(held))
    transfer = await ledger.get_transfer(held.hold_id)
    if transfer is None:  # held_transfers.hold_id references the ledger's hold
        raise LookupError(f"hold {held.hold_id} is not in the ledger")
    return transfer_view(transfer, user.account_id, status)


async def decide_held_transfer(
    pool: asyncpg.Pool,
    ledger: Ledger,
    operator_id: uuid.UUID,
    review_id: str,
    *,
    approve: bool,
    reason: str,
) -> str:
    """An operator's decision on a transfer held for review: approve posts its hold, reject
    voids it; audited with its outcome and told as `review.decided` (the one event of the
    decision: a rejected transfer is not told as declined too; a kind that tells of itself, a
    merchant payment, is also told by its own event, for the merchant). Its status after:
    COMPLETED or DECLINED. Never on the operator's own transfer (FourEyes).

    Locks: the held transfer's row, from the check to the audit record (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        found = await risk_held.lock_held(
            conn, review_id, status="PENDING_REVIEW", sender_id=None, operator_id=operator_id
        )
        status = await resolve(
            conn, ledger, found, complete=approve, client=RISK_CLIENT, reason=BY_REVIEW
        )
        decided = review_decided(
            found.hold_id, found.sender_id, found.amount_minor, approved=approve
        )
        await outbox.write(conn, [decided])
        await operators.audit(
            conn,
            operator_id,
            "approve_review" if approve else "reject_review",
            f"transfer:{found.hold_id}",
            reason,
            {"status": status},
        )
    return status


async def show_transfer(
    pool: asyncpg.Pool, ledger: Ledger, user: User, transfer_id: str
) -> dict[str, Any]:
    """A transfer the user sent or received, by its public id, as they see it; a held one with
    the status of its hold."""
    return (await _shown(pool, ledger, user, transfer_id))[1]


async def show_transfer_named(
    pool: asyncpg.Pool, ledger: Ledger, user: User, transfer_id: str
) -> dict[str, Any]:
    """show_transfer's view, with who was on the other side as the person's history names
    them: `counterparty`, the other person's username or the business's name (None for money
    in from the system's own accounts), and `counterparty_kind`, "person" or "business"."""
    transfer, view = await _shown(pool, ledger, user, transfer_id)
    name, kind = (transfer.metadata or {}).get("merchant_name"), "business"
    other = view["recipient_id"] if view["sender_id"] == str(user.id) else view["sender_id"]
    if name is None and other is not None:
        name, kind = (await get_user(pool, uuid.UUID(other))).username, "person"
    return {**view, "counterparty": name, "counterparty_kind": kind if name else None}


async def _shown(
    pool: asyncpg.Pool, ledger: Ledger, user: User, transfer_id: str
) -> tuple[Transfer, dict[str, Any]]:
    transfer = await access_transfer(ledger, user, transfer_id)
    if transfer.kind is Kind.HOLD:
        status = await risk_held.status_of(pool, transfer.id)
        return transfer, transfer_view(transfer, user.account_id, status)
    return transfer, transfer_view(transfer, user.account_id)


def _movement_of(held: risk_held.Held) -> Movement:
    return Movement(
        "p2p",
        str(held.sender_id),
        str(held.recipient_id),
        held.amount_minor,
        WALLET_CURRENCY,
        device_id=held.device_id,
        country=held.country,
    )
