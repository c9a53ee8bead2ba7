"""Apply a batch of commands, in order, to locked account state held in memory.

Pure Python, no I/O: the engine loads and locks the accounts, calls `apply_batch`, then writes the
rows it returns in one statement. Each command succeeds or fails on its own; a failure leaves the
state exactly as it was, so its neighbours in the batch see no trace of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from billfold.ledger.errors import (
    AccountFrozen,
    AccountNotFound,
    BalanceLimitExceeded,
    CurrencyMismatch,
    DebtOutstanding,
    HoldExpired,
    HoldNotPending,
    InsufficientFunds,
    InvalidTransfer,
    LedgerError,
    NotAHold,
    NotReversible,
    ReversalExceedsOriginal,
    TransferNotFound,
)
from billfold.ledger.model import COLLECTION_CODES, Command, Entry, Kind, Leg, Transfer


@dataclass(slots=True)
class AccountState:
    """An account's balances as the batch sees them, plus what the batch changed."""

    id: int
    currency: str
    posted: int
    pending_debits: int
    pending_credits: int
    overdraft_limit: int
    max_balance: int | None
    version: int
    frozen: bool = False  # no debits by transfers or holds
    owes: bool = False  # the owner owes money: no debits but collections (see COLLECTION_CODES)
    delta_posted: int = 0
    delta_pending_debits: int = 0
    delta_pending_credits: int = 0
    delta_version: int = 0

    @property
    def changed(self) -> bool:
        """Whether the batch changed this account (every entry bumps its version)."""
        return bool(self.delta_version or self.delta_pending_debits or self.delta_pending_credits)


@dataclass(slots=True)
class Target:
    """A transfer that a post, void or reversal refers to, with its current resolution."""

    transfer: Transfer
    resolved: bool = False  # holds: already posted or voided
    reversed_minor: int = 0  # transfers: how much has been reversed so far


@dataclass(slots=True)
class BatchResult:
    outcomes: list[Transfer | LedgerError] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)


def apply_batch(
    commands: list[Command],
    accounts: dict[int, AccountState],
    targets: dict[int, Target],
    next_id: Callable[[], int],
    now: datetime,
) -> BatchResult:
    result = BatchResult()
    for cmd in commands:
        try:
            if cmd.kind is Kind.TRANSFER:
                transfer = _apply_transfer(cmd, accounts, next_id, now)
            else:
                transfer = _apply_one(cmd, accounts, targets, next_id, now)
        except LedgerError as error:
            result.outcomes.append(error)
        else:
            result.outcomes.append(transfer)
            result.transfers.append(transfer)
    return result


def _apply_transfer(
    cmd: Command, accounts: dict[int, AccountState], next_id: Callable[[], int], now: datetime
) -> Transfer:
    """The common command, money moved now, without the machinery holds and reversals need.

    The legs name distinct accounts (see model.check_legs), so each leg is checked on its own.
    """
    states = []
    credits = 0
    for leg in cmd.legs:
        state = _state_for(leg, accounts)
        amount = leg.amount_minor
        if amount < 0:
            if state.frozen or state.owes:
                _check_debit_allowed(cmd, state)
            available = state.posted - state.pending_debits
            if available + amount + state.overdraft_limit < 0:
                raise _insufficient(state, available, -amount)
        else:
            credits += amount
            if state.max_balance is not None:
                _check_max_balance(state, state.posted + state.pending_credits + amount)
        states.append(state)
    entries = []
    for leg, state in zip(cmd.legs, states, strict=True):
        state.version += 1
        state.delta_version += 1
        state.posted += leg.amount_minor
        state.delta_posted += leg.amount_minor
        entries.append(
            Entry(state.id, state.version, leg.amount_minor, leg.currency, False, state.posted)
        )
    entries.sort()
    return Transfer(
        id=next_id(),
        kind=Kind.TRANSFER,
        code=cmd.code,
        amount_minor=credits,
        currency=cmd.legs[0].currency,
        pending_id=None,
        reverses_id=None,
        expires_at=None,
        metadata=cmd.metadata,
        created_at=now,
        entries=tuple(entries),
    )


def _state_for(leg: Leg, accounts: dict[int, AccountState]) -> AccountState:
    state = accounts.get(leg.account_id)
    if state is None:
        raise AccountNotFound(f"account {leg.account_id} does not exist", account_id=leg.account_id)
    if state.currency != leg.currency:
        raise CurrencyMismatch(
            f"account {leg.account_id} holds {state.currency}, not {leg.currency}",
            account_id=leg.account_id,
        )
    return state


def _check_debit_allowed(cmd: Command, state: AccountState) -> None:
    """A frozen account, or one whose owner owes money, is debited only to collect what is owed."""
    if cmd.code in COLLECTION_CODES:
        return
    if state.frozen:
        raise AccountFrozen(f"account {state.id} is frozen", account_id=state.id)
    raise DebtOutstanding(
        f"account {state.id} belongs to someone who owes money; it must be repaid first",
        account_id=state.id,
    )


def _insufficient(state: AccountState, available: int, needed: int) -> InsufficientFunds:
    return InsufficientFunds(
        f"account {state.id} has {available} available, the transfer needs {needed}",
        account_id=state.id,
        available_minor=available,
    )


def _check_max_balance(state: AccountState, balance: int) -> None:
    if state.max_balance is not None and balance > state.max_balance:
        raise BalanceLimitExceeded(
            f"account {state.id} would hold {balance}, over its maximum {state.max_balance}",
            account_id=state.id,
            max_balance_minor=state.max_balance,
        )


def _apply_one(
    cmd: Command,
    accounts: dict[int, AccountState],
    targets: dict[int, Target],
    next_id: Callable[[], int],
    now: datetime,
) -> Transfer:
    pending_id = reverses_id = None
    release: tuple[Leg, ...] = ()
    posted: tuple[Leg, ...] = ()
    held: tuple[Leg, ...] = ()
    target = None
    if cmd.kind is Kind.TRANSFER:
        posted = cmd.legs
    elif cmd.kind is Kind.HOLD:
        held = cmd.legs
    elif cmd.kind in (Kind.POST, Kind.VOID):
        target = _pending_hold(cmd, targets, now)
        pending_id = target.transfer.id
        release = _legs_of(target.transfer)
        if cmd.kind is Kind.POST:
            posted = _scaled(release, cmd.amount_minor, "post")
    else:
        target = _reversible(cmd, targets)
        reverses_id = target.transfer.id
        original = _legs_of(target.transfer)
        amount = cmd.amount_minor or target.transfer.amount_minor - target.reversed_minor
        posted = _negated(_scaled(original, amount, "reversal"))

    states = _check_accounts(posted + held + release, accounts)
    if cmd.kind in (Kind.TRANSFER, Kind.HOLD):
        for leg in posted + held:
            state = states[leg.account_id]
            if leg.amount_minor < 0 and (state.frozen or state.owes):
                _check_debit_allowed(cmd, state)
    _check_funds(states, posted, held, release)

    transfer_id = next_id()
    entries = sorted([*_book(states, held, pending=True), *_book(states, posted, pending=False)])
    for leg in release:
        _release(states[leg.account_id], leg)
    if cmd.kind in (Kind.POST, Kind.VOID):
        assert target is not None
        target.resolved = True
    elif cmd.kind is Kind.REVERSAL:
        assert target is not None
        target.reversed_minor += _credits(posted)
    headline = held or posted or release
    return Transfer(
        id=transfer_id,
        kind=cmd.kind,
        code=cmd.code,
        amount_minor=_credits(headline) if cmd.kind is not Kind.VOID else _credits(release),
        currency=headline[0].currency,
        pending_id=pending_id,
        reverses_id=reverses_id,
        expires_at=cmd.expires_at,
        metadata=cmd.metadata,
        created_at=now,
        entries=tuple(entries),
    )


def _pending_hold(cmd: Command, targets: dict[int, Target], now: datetime) -> Target:
    target = targets.get(cmd.target_id or 0)
    if target is None:
        raise TransferNotFound(f"hold {cmd.target_id} does not exist", transfer_id=cmd.target_id)
    hold = target.transfer
    if hold.kind is not Kind.HOLD:
        raise NotAHold(f"transfer {hold.id} is a {hold.kind}, not a hold", transfer_id=hold.id)
    if target.resolved:
        raise HoldNotPending(f"hold {hold.id} is already posted or voided", transfer_id=hold.id)
    if cmd.kind is Kind.POST and hold.expires_at is not None and hold.expires_at <= now:
        raise HoldExpired(
            f"hold {hold.id} expired at {hold.expires_at.isoformat()}", transfer_id=hold.id
        )
    return target


def _reversible(cmd: Command, targets: dict[int, Target]) -> Target:
    target = targets.get(cmd.target_id or 0)
    if target is None:
        raise TransferNotFound(
            f"transfer {cmd.target_id} does not exist", transfer_id=cmd.target_id
        )
    original = target.transfer
    if original.kind not in (Kind.TRANSFER, Kind.POST):
        raise NotReversible(
            f"transfer {original.id} is a {original.kind}; only transfers and posts reverse",
            transfer_id=original.id,
        )
    remaining = original.amount_minor - target.reversed_minor
    wanted = cmd.amount_minor if cmd.amount_minor is not None else remaining
    if remaining == 0 or wanted > remaining:
        raise ReversalExceedsOriginal(
            f"transfer {original.id} has {remaining} left to reverse, asked for {wanted}",
            transfer_id=original.id,
            remaining_minor=remaining,
        )
    return target


def _legs_of(transfer: Transfer) -> tuple[Leg, ...]:
    return tuple(Leg(e.account_id, e.amount_minor, e.currency) for e in transfer.entries)


def _scaled(legs: tuple[Leg, ...], amount: int | None, what: str) -> tuple[Leg, ...]:
    """The legs moving `amount` instead of their whole; only a two-leg transfer splits."""
    if amount is None or amount == _credits(legs):
        return legs
    if amount > _credits(legs):
        raise InvalidTransfer(f"{what} amount {amount} exceeds the original {_credits(legs)}")
    if len(legs) != 2:
        raise InvalidTransfer(f"a partial {what} needs a two-leg transfer, this has {len(legs)}")
    return tuple(
        Leg(leg.account_id, amount if leg.amount_minor > 0 else -amount, leg.currency)
        for leg in legs
    )


def _negated(legs: tuple[Leg, ...]) -> tuple[Leg, ...]:
    return tuple(Leg(leg.account_id, -leg.amount_minor, leg.currency) for leg in legs)


def _credits(legs: tuple[Leg, ...]) -> int:
    return sum(leg.amount_minor for leg in legs if leg.amount_minor > 0)


def _check_accounts(
    legs: tuple[Leg, ...], accounts: dict[int, AccountState]
) -> dict[int, AccountState]:
    return {leg.account_id: _state_for(leg, accounts) for leg in legs}


def _check_funds(
    states: dict[int, AccountState],
    posted: tuple[Leg, ...],
    held: tuple[Leg, ...],
    release: tuple[Leg, ...],
) -> None:
    """Refuse the command if any account would end outside its limits; change nothing."""
    after: dict[int, list[int]] = {
        id_: [s.posted, s.pending_debits, s.pending_credits] for id_, s in states.items()
    }
    for leg in posted:
        after[leg.account_id][0] += leg.amount_minor
    for leg in held:
        after[leg.account_id][1 if leg.amount_minor < 0 else 2] += abs(leg.amount_minor)
    for leg in release:
        after[leg.account_id][1 if leg.amount_minor < 0 else 2] -= abs(leg.amount_minor)
    for id_, (posted_minor, debits, credits) in after.items():
        state = states[id_]
        available = state.posted - state.pending_debits
        if posted_minor - debits + state.overdraft_limit < 0:
            raise _insufficient(state, available, available - (posted_minor - debits))
        _check_max_balance(state, posted_minor + credits)


def _book(states: dict[int, AccountState], legs: tuple[Leg, ...], pending: bool) -> Iterator[Entry]:
    for leg in legs:
        state = states[leg.account_id]
        state.version += 1
        state.delta_version += 1
        if pending:
            if leg.amount_minor < 0:
                state.pending_debits -= leg.amount_minor
                state.delta_pending_debits -= leg.amount_minor
            else:
                state.pending_credits += leg.amount_minor
                state.delta_pending_credits += leg.amount_minor
        else:
            state.posted += leg.amount_minor
            state.delta_posted += leg.amount_minor
        yield Entry(
            leg.account_id, state.version, leg.amount_minor, leg.currency, pending, state.posted
        )


def _release(state: AccountState, leg: Leg) -> None:
    if leg.amount_minor < 0:
        state.pending_debits += leg.amount_minor
        state.delta_pending_debits += leg.amount_minor
    else:
        state.pending_credits -= leg.amount_minor
        state.delta_pending_credits -= leg.amount_minor
