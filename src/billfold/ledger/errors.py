"""The ledger's failures. Each has a stable code; the engine stores them as idempotent outcomes."""

from __future__ import annotations

from typing import Any

from billfold.platform.errors import BillfoldError


class LedgerError(BillfoldError):
    code = "ledger_error"
    status = 422
    title = "Ledger refused the transfer"


class InvalidTransfer(LedgerError):
    code = "invalid_transfer"
    title = "Invalid transfer"


class AccountNotFound(LedgerError):
    code = "account_not_found"
    status = 404
    title = "Account not found"


class ArchivedMoment(LedgerError):
    """The moment asked about falls in months archived out of the database (ledger.archive)."""

    code = "moment_archived"
    status = 422
    title = "Moment archived"


class TransferNotFound(LedgerError):
    code = "transfer_not_found"
    status = 404
    title = "Transfer not found"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"
    title = "Currency does not match the account"


class AccountFrozen(LedgerError):
    code = "account_frozen"
    status = 403
    title = "Account frozen"


class DebtOutstanding(LedgerError):
    code = "debt_outstanding"
    status = 403
    title = "Money is owed; outgoing money is blocked until it is repaid"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"
    title = "Insufficient funds"


class BalanceLimitExceeded(LedgerError):
    code = "balance_limit_exceeded"
    title = "Account balance limit exceeded"


class HoldNotPending(LedgerError):
    code = "hold_not_pending"
    status = 409
    title = "Hold already resolved"


class HoldExpired(LedgerError):
    code = "hold_expired"
    status = 409
    title = "Hold expired"


class NotAHold(LedgerError):
    code = "not_a_hold"
    title = "Transfer is not a hold"


class NotReversible(LedgerError):
    code = "not_reversible"
    title = "Transfer cannot be reversed"


class ReversalExceedsOriginal(LedgerError):
    code = "reversal_exceeds_original"
    title = "Reversal exceeds what remains of the original"


class IdempotencyKeyReused(LedgerError):
    code = "idempotency_key_reused"
    title = "Idempotency key reused with a different request"


class LedgerBusy(BillfoldError):
    """Contention outlasted the engine's retries. Safe to retry with the same idempotency key."""

    code = "ledger_busy"
    status = 503
    title = "Ledger busy, retry"


# Outcomes stored with an idempotency key are rebuilt from their code on replay.
_STORED: dict[str, type[LedgerError]] = {
    cls.code: cls
    for cls in (
        InvalidTransfer,
        AccountNotFound,
        TransferNotFound,
        CurrencyMismatch,
        AccountFrozen,
        DebtOutstanding,
        InsufficientFunds,
        BalanceLimitExceeded,
        HoldNotPending,
        HoldExpired,
        NotAHold,
        NotReversible,
        ReversalExceedsOriginal,
    )
}


def error_from_stored(stored: dict[str, Any]) -> LedgerError:
    """Rebuild the error a stored outcome records, so a replay raises what the first call did,
    marked as a replay."""
    fields = dict(stored)
    code = fields.pop("code")
    detail = fields.pop("detail")
    cls = _STORED.get(code, LedgerError)
    error = cls(detail, **fields)
    error.replayed = True
    return error
