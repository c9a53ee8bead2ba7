"""Response models that more than one router renders: shared here, so that no router imports
another."""

from __future__ import annotations

from pydantic import BaseModel, Field


# An add-funds or cash-out (funding.views.funding_view), also as GET and verify
# /transfers/{transfer_id} answer it.
class MovementOut(BaseModel):
    transfer_id: str
    type: str
    rail: str
    status: str
    amount: str
    currency: str
    fee: str
    total: str = Field(
        description="amount plus fee: what the card or bank account pays for an add-funds, "
        "what leaves the wallet for a cash-out"
    )
    available_now: str
    estimated_completion: str | None
    return_code: str | None
    created_at: str


# What a delivered bank or card partner event did (the webhook and the sandbox partner).
class DeliveryOut(BaseModel):
    status: str = Field(description="applied, ignored, refused or duplicate")
    detail: str


# A wallet's or a merchant account's history (wallet.history).
class HistoryItem(BaseModel):
    id: str
    type: str
    direction: str
    amount: str
    fee: str = Field(description="what the movement cost on top of amount (a card's fee)")
    total: str = Field(description="amount plus fee: for a card add-funds, what the card paid")
    currency: str
    counterparty: str | None
    timestamp: str
    status: str
    note: str | None


class HistoryOut(BaseModel):
    transactions: list[HistoryItem]
    balance: str
    next_cursor: str | None


# A business profile (merchants.profiles.merchant_view): as created, read, or changed.
class MerchantOut(BaseModel):
    merchant_id: str
    name: str
    mcc: str
    city: str
    country: str
    status: str = Field(description="active or suspended")
    payout_schedule: str = Field(description="manual or daily")
    payout_bank_account_id: str | None
    created_at: str
