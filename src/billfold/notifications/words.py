"""The codes events carry, in the words a person reads: a NACHA return code, a reason a transfer
was declined, a card chargeback's reason. A code not listed gets words for its family, never the
bare code alone."""

from __future__ import annotations

from billfold.funding import rails

# NACHA return codes (the ones a consumer's debit meets), in words.
RETURN_REASONS = {
    "R01": "insufficient funds in the bank account",
    "R02": "the bank account is closed",
    "R03": "the bank found no account with that number",
    "R04": "the account number is not valid",
    "R05": "the bank account holder did not authorise the debit",
    "R06": "our bank asked for it to be returned",
    "R07": "the bank account holder withdrew the authorisation",
    "R08": "the bank account holder stopped the payment",
    "R09": "the funds in the bank account were not yet available",
    "R10": "the bank account holder says the debit was not authorised",
    "R11": "the bank account holder disputes the debit",
    "R12": "the bank account was moved to another branch",
    "R13": "the bank's routing number is not valid",
    "R14": "the bank account holder has died",
    "R15": "the bank account's beneficiary has died",
    "R16": "the bank account is frozen",
    "R17": "the bank could not process the entry",
    "R20": "the bank account does not allow this kind of debit",
    "R23": "the bank account holder refused the entry",
    "R24": "the bank received the entry twice",
    "R29": "the business holding the bank account did not authorise the debit",
    "R31": "our bank agreed to return it",
    "R51": "the bank account holder says the check conversion was not authorised",
}


def return_reason(code: str | None) -> str:
    """Why a bank returned a transfer, in words (R01: 'insufficient funds in the bank
    account')."""
    if code is None:
        return "the bank gave no reason"
    if code in RETURN_REASONS:
        return RETURN_REASONS[code]
    if code in rails.INSUFFICIENT:
        return "insufficient funds in the bank account"
    if code in rails.ACCOUNT_PROBLEMS:
        return "a problem with the bank account"
    if code in rails.UNAUTHORISED:
        return "the bank account holder did not authorise the debit"
    return "the bank returned it"


# Why a transfer was declined (transfer.declined's `reason`).
DECLINE_REASONS = {
    "wrong_pin": "the PIN was wrong too many times",
    "card_declined": "your card was declined",
    "verification_failed": "the PIN was not confirmed",
    "pin_failed": "the PIN was not confirmed",
    "expired": "it was not confirmed in time",
    "verification_expired": "it was not confirmed in time",
    "review_rejected": "our review team declined it",
    "rejected": "our review team declined it",
    "insufficient_funds": "there was not enough money in your wallet",
    "wallet_frozen": "the wallet is frozen",
    "recipient_frozen": "the recipient cannot receive money at the moment",
    "limit_exceeded": "it was over your limit",
}
# The risk engine's own reasons are not told: naming a rule would teach a fraudster its shape.
DECLINED_BY_CHECKS = "it did not pass our security checks"


def decline_reason(reason: str | None) -> str:
    return DECLINE_REASONS.get(reason or "", DECLINED_BY_CHECKS)


# Why a payout was declined (payout.declined's `reason`): a held one's wrong PINs, or the code
# of what refused a daily one (merchants.schedule).
PAYOUT_DECLINE_REASONS = {
    **DECLINE_REASONS,
    "insufficient_funds": "there was not enough money in the business account",
    "limit_exceeded": "it was over your payout limit",
    "not_found": "its bank account is no longer linked",
    "bank_account_not_verified": "its bank account is not verified",
    "debt_outstanding": "you owe money from a returned deposit",
    "merchant_suspended": "the business is suspended",
}


def payout_decline_reason(reason: str | None) -> str:
    return PAYOUT_DECLINE_REASONS.get(reason or "", DECLINED_BY_CHECKS)


CHARGEBACK_REASONS = {
    "fraudulent": "the card holder says they did not make the payment",
    "fraud": "the card holder says they did not make the payment",
    "unrecognized": "the card holder does not recognise the payment",
    "duplicate": "the card holder says they were charged twice",
    "product_not_received": "the card holder says they did not get what they paid for",
    "credit_not_processed": "the card holder expected a refund",
    "general": "the card holder disputed the payment",
}


def chargeback_reason(reason: str | None) -> str:
    return CHARGEBACK_REASONS.get(reason or "", "the card holder disputed the payment")
