"""The ledger's refusals, said to the person whose request it refused.

The ledger speaks of accounts and minor units ("account 9 has 0 available, the transfer needs
500"): right for operators, meaningless or revealing to a person, who knows their wallet and
its currency. Every path that asks the ledger on a person's behalf (P2P, cash-out, add-funds)
runs it inside `in_wallet_terms`, replays of a stored refusal too, so that no internal account
id or raw minor amount reaches a client, and a replay still says it is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from billfold.ledger.errors import (
    AccountFrozen,
    AccountNotFound,
    BalanceLimitExceeded,
    CurrencyMismatch,
    DebtOutstanding,
    InsufficientFunds,
    LedgerError,
)
from billfold.platform.currency import format_amount
from billfold.platform.errors import BillfoldError, WalletFrozen


@contextmanager
def in_wallet_terms(wallet_id: int, amount_minor: int, currency: str) -> Iterator[None]:
    """Raise what the ledger refuses inside the block as `for_person` says it, to the owner of
    wallet `wallet_id`, who asked to move `amount_minor`."""
    try:
        yield
    except LedgerError as error:
        said = for_person(error, wallet_id, amount_minor, currency)
        if said is error:
            raise
        raise said.replaying(error) from None


def for_person(
    error: LedgerError, wallet_id: int, amount_minor: int, currency: str
) -> BillfoldError:
    """`error` in the person's terms: their own wallet and its currency, never an account id or
    another person's balance. Refusals that name no account (a reused key, a resolved hold,
    named by its public id) are returned as they are."""
    own = error.fields.get("account_id") == wallet_id
    amount = f"{format_amount(amount_minor, currency)} {currency}"
    if isinstance(error, InsufficientFunds):
        if not own:
            return InsufficientFunds(f"the money for this {amount} transfer is not available")
        available = format_amount(int(error.fields.get("available_minor", 0)), currency)
        return InsufficientFunds(
            f"your available balance is {available} {currency}; the transfer needs {amount}",
            available=available,
            needed=format_amount(amount_minor, currency),
            currency=currency,
        )
    if isinstance(error, BalanceLimitExceeded):
        if not own:
            return BalanceLimitExceeded(f"the recipient's wallet cannot take {amount} now")
        most = format_amount(int(error.fields.get("max_balance_minor", 0)), currency)
        return BalanceLimitExceeded(
            f"your wallet may hold at most {most} {currency}; {amount} more would take it over",
            max_balance=most,
            currency=currency,
        )
    if isinstance(error, AccountFrozen):
        return WalletFrozen("your wallet is frozen" if own else "the recipient's wallet is frozen")
    if isinstance(error, DebtOutstanding):
        return DebtOutstanding(
            "you owe money from a returned deposit; outgoing money is blocked until it is repaid"
        )
    if isinstance(error, AccountNotFound | CurrencyMismatch):
        # Not the person's doing (a wallet is set up for its currency when it is made).
        return type(error)(f"a wallet in this {amount} transfer cannot take {currency}")
    return error
