"""CloudEvents as the catalogue (docs/events.md) has producers write them: one builder a type,
for the notifications tests to feed the consumer's handler."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

CloudEvent = dict[str, Any]


def cloudevent(kind: str, subject: str, data: dict[str, Any], version: int = 1) -> CloudEvent:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/billfold",
        "type": f"billfold.{kind}.v{version}",
        "subject": subject,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def transfer_completed(
    from_user: str | None, to_user: str | None, amount: str = "12.50", code: str = "p2p"
) -> CloudEvent:
    return cloudevent(
        "transfer.completed",
        "transfer/1234",
        {
            "transfer_id": "1234",
            "kind": "transfer",
            "code": code,
            "amount": amount,
            "currency": "USD",
            "debit_account_id": "1",
            "credit_account_id": "2",
            "from_user_id": from_user,
            "to_user_id": to_user,
        },
    )


def transfer_held(user: str, to_user: str, waiting_for: str = "verification") -> CloudEvent:
    data = {"transfer_id": "77", "user_id": user, "to_user_id": to_user, "amount": "80.00"}
    return cloudevent(
        "transfer.held", "transfer/77", {**data, "currency": "USD", "waiting_for": waiting_for}
    )


def transfer_verified(user: str, to_user: str) -> CloudEvent:
    data = {"transfer_id": "77", "user_id": user, "to_user_id": to_user, "amount": "80.00"}
    return cloudevent("transfer.verified", "transfer/77", {**data, "currency": "USD"})


def transfer_declined(user: str, to_user: str, reason: str = "velocity_1h") -> CloudEvent:
    data = {"transfer_id": "77", "user_id": user, "to_user_id": to_user, "amount": "80.00"}
    return cloudevent(
        "transfer.declined", "transfer/77", {**data, "currency": "USD", "reason": reason}
    )


def review_decided(user: str, decision: str = "approved", funding: bool = False) -> CloudEvent:
    about = {"funding_id": str(uuid.uuid4())} if funding else {"transfer_id": "77"}
    data = {**about, "user_id": user, "decision": decision, "amount": "300.00", "currency": "USD"}
    return cloudevent("review.decided", "funding/x" if funding else "transfer/77", data)


def funding(
    status: str, user: str, return_code: str | None = None, purpose: str = "add_funds"
) -> CloudEvent:
    funding_id = str(uuid.uuid4())
    data = {
        "funding_id": funding_id,
        "user_id": user,
        "rail": "ach",
        "purpose": purpose,
        "source_id": str(uuid.uuid4()),
        "amount": "40.00",
        "currency": "USD",
        "return_code": return_code,
    }
    if status == "declined":
        data["reason"] = "card_declined"
    return cloudevent(f"funding.{status}", f"funding/{funding_id}", data)


def cashout(status: str, user: str, return_code: str | None = None) -> CloudEvent:
    funding_id = str(uuid.uuid4())
    data = {
        "funding_id": funding_id,
        "user_id": user,
        "rail": "ach",
        "destination_id": str(uuid.uuid4()),
        "amount": "25.00",
        "currency": "USD",
    }
    if status == "returned":
        data["return_code"] = return_code
    if status == "declined":
        data["reason"] = "wrong_pin"
    return cloudevent(f"cashout.{status}", f"funding/{funding_id}", data)


def payout(status: str, user: str, reason: str | None = None) -> CloudEvent:
    payout_id = str(uuid.uuid4())
    data = {
        "payout_id": payout_id,
        "merchant_id": str(uuid.uuid4()),
        "user_id": user,
        "rail": "ach",
        "bank_account_id": str(uuid.uuid4()),
        "amount": "120.00",
        "currency": "USD",
        "return_code": reason if status == "returned" else None,
    }
    if status == "declined":
        data["reason"] = reason
    return cloudevent(f"payout.{status}", f"payout/{payout_id}", data)


def card_chargeback(user: str, reason: str = "fraudulent") -> CloudEvent:
    funding_id = str(uuid.uuid4())
    data = {
        "funding_id": funding_id,
        "user_id": user,
        "card_id": str(uuid.uuid4()),
        "amount": "60.00",
        "currency": "USD",
        "reason": reason,
    }
    return cloudevent("card.chargeback", f"funding/{funding_id}", data)


def user_event(kind: str, user: str, reason: str = "operator note: suspected mule") -> CloudEvent:
    return cloudevent(f"user.{kind}", f"user/{user}", {"user_id": user, "reason": reason})


def debt(kind: str, user: str, amount: str = "15.00", outstanding: str = "15.00") -> CloudEvent:
    data = {"user_id": user, "amount": amount, "currency": "USD", "outstanding": outstanding}
    return cloudevent(f"debt.{kind}", f"user/{user}", data)


def endpoint_disabled(user: str, url: str = "https://hooks.example.com/billfold") -> CloudEvent:
    endpoint_id = str(uuid.uuid4())
    data = {
        "endpoint_id": endpoint_id,
        "user_id": user,
        "url": url,
        "failing_since": "2026-12-03T09:00:00+00:00",
    }
    return cloudevent("webhook.endpoint.disabled", f"webhook-endpoint/{endpoint_id}", data)


def refund_completed(payer: str, owner: str, merchant_name: str = "Corner Bakery") -> CloudEvent:
    refund_id = str(uuid.uuid4())
    data = {
        "refund_id": refund_id,
        "payment_id": str(uuid.uuid4()),
        "merchant_id": str(uuid.uuid4()),
        "merchant_name": merchant_name,
        "owner_id": owner,
        "payer_id": payer,
        "amount": "4.00",
        "currency": "USD",
        "reason": "call 555-0100 for your prize",
    }
    return cloudevent("refund.completed", f"refund/{refund_id}", data)


def every_kind(user: str, other: str) -> list[CloudEvent]:
    """One event of each type the notifications tell, `user` told and `other` the
    counterparty; between them every template is used."""
    return [
        transfer_completed(other, user),
        transfer_held(user, other, "verification"),
        transfer_held(user, other, "review"),
        transfer_verified(user, other),
        transfer_declined(user, other),
        review_decided(user, "approved"),
        review_decided(user, "rejected", funding=True),
        funding("settled", user),
        funding("returned", user, "R01"),
        funding("declined", user),
        cashout("requested", user),
        cashout("declined", user),
        cashout("paid", user),
        cashout("returned", user, "R02"),
        payout("requested", user),
        payout("paid", user),
        payout("returned", user, "R03"),
        payout("declined", user, "not_found"),
        refund_completed(user, other),
        card_chargeback(user),
        user_event("frozen", user),
        user_event("unfrozen", user),
        debt("opened", user),
        debt("recovered", user, "5.00", "10.00"),
        debt("recovered", user, "10.00", "0.00"),
        endpoint_disabled(user),
    ]
