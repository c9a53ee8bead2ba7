"""Each event of the catalogue is read as the notices it tells, and every kind's template renders
with what its event gives: words, no placeholder left, no code or secret."""

from __future__ import annotations

import uuid

import pytest

from billfold.funding import rails
from billfold.notifications import kinds, texts, words
from billfold.notifications.kinds import Malformed, notices_of
from tests.notifications import events

USER, OTHER = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize("event", events.every_kind(USER, OTHER), ids=lambda e: e["type"])
def test_each_event_tells_its_person_a_rendered_message(event: events.CloudEvent) -> None:
    """One notice, to the person the event names, whose subject and body render fully with the
    values the event gives (every placeholder filled)."""
    [notice] = notices_of(event)
    assert notice.user_id == uuid.UUID(USER)
    assert notice.event_id == uuid.UUID(event["id"])
    assert notice.about == event["subject"]
    text = texts.render(notice.kind, notice.values)
    assert text.subject and text.body
    names = ("amount", "counterparty", "reason", "what", "source", "outstanding", "url", "merchant")
    for name in names:
        assert f"${name}" not in text.subject + text.body


def test_every_template_is_told_by_some_event() -> None:
    """The kinds the catalogue's events give are exactly the templates there are: none unused,
    none missing."""
    told = {n.kind for e in events.every_kind(USER, OTHER) for n in notices_of(e)}
    assert told == set(texts.kinds())


def test_a_returned_add_funds_says_why_in_words() -> None:
    """funding.returned R01: 'insufficient funds in the bank account', not the NACHA code."""
    [notice] = notices_of(events.funding("returned", USER, "R01"))
    text = texts.render(notice.kind, notice.values)
    assert notice.kind == "funding_returned" and notice.category is kinds.FUNDING
    assert "insufficient funds in the bank account" in text.body
    assert "$40.00" in text.subject and "$40.00" in text.body
    assert "R01" not in text.subject + text.body


def test_every_return_code_funding_acts_on_has_words() -> None:
    """Each code funding.rails sorts (insufficient, account problems, unauthorised) has words of
    its own; any other is told generally."""
    families = rails.INSUFFICIENT | rails.ACCOUNT_PROBLEMS | rails.UNAUTHORISED
    assert families <= set(words.RETURN_REASONS)
    assert words.return_reason("R16") == "the bank account is frozen"
    assert words.return_reason("R33") == "the bank returned it"
    assert words.return_reason(None) == "the bank gave no reason"


def test_a_declined_movement_says_why_in_words() -> None:
    """funding.declined (the card refused) and cashout.declined (wrong PINs) in words."""
    [card] = notices_of(events.funding("declined", USER))
    [pins] = notices_of(events.cashout("declined", USER))
    assert "your card was declined" in texts.render(card.kind, card.values).body
    assert "the PIN was wrong too many times" in texts.render(pins.kind, pins.values).body


def test_money_received_is_told_for_person_to_person_moves_only() -> None:
    """transfer.completed tells its recipient of a P2P transfer; not an add-funds, a reversal,
    a move to or from a system account, nor a move to oneself."""
    [notice] = notices_of(events.transfer_completed(OTHER, USER))
    assert (notice.kind, notice.user_id, notice.counterpart) == (
        "money_received",
        uuid.UUID(USER),
        uuid.UUID(OTHER),
    )
    assert notices_of(events.transfer_completed(None, USER, code="add_funds")) == []
    assert notices_of(events.transfer_completed(OTHER, USER, code="reversal")) == []
    assert notices_of(events.transfer_completed(OTHER, None)) == []
    assert notices_of(events.transfer_completed(USER, USER)) == []


def test_a_refund_is_told_to_its_payer_naming_the_merchant() -> None:
    """refund.completed tells the payer which merchant gave back how much (not "someone", as the
    ledger's transfer.completed of the refund would: its debit is no person's wallet), and not
    the merchant's own reason; the transfer.completed of a refund tells nobody."""
    [notice] = notices_of(events.refund_completed(USER, OTHER, "Lovelace Coffee"))
    assert (notice.kind, notice.user_id, notice.category) == (
        "refund_received",
        uuid.UUID(USER),
        kinds.MONEY_RECEIVED,
    )
    text = texts.render(notice.kind, notice.values)
    assert text.subject == "Lovelace Coffee refunded you $4.00"
    assert "prize" not in text.subject + text.body
    assert notices_of(events.transfer_completed(None, USER, code="refund")) == []


def test_a_cash_out_is_told_by_its_own_events_not_funding_ones() -> None:
    """funding.* of a cash-out and funding.pending tell nobody: cashout.* and the person's own
    request do."""
    assert notices_of(events.funding("settled", USER, purpose="cash_out")) == []
    assert notices_of(events.funding("pending", USER)) == []


def test_a_decline_by_the_risk_engine_names_no_rule() -> None:
    """The engine's reason is not told (it would teach the rule); a known one is, in words."""
    [by_rule] = notices_of(events.transfer_declined(USER, OTHER, reason="velocity_1h"))
    [by_pin] = notices_of(events.transfer_declined(USER, OTHER, reason="verification_failed"))
    assert by_rule.values["reason"] == "it did not pass our security checks"
    assert by_pin.values["reason"] == "the PIN was not confirmed"


def test_a_freeze_does_not_tell_the_operators_note() -> None:
    """user.frozen's reason is an operator's or the engine's note: it is not in the message."""
    [notice] = notices_of(events.user_event("frozen", USER, "operator note: suspected mule"))
    text = texts.render(notice.kind, notice.values)
    assert "mule" not in text.subject + text.body
    assert notice.category is kinds.ACCOUNT and not notice.category.feed_optional


def test_a_disabled_endpoint_is_shown_without_its_credentials_or_query() -> None:
    """A webhook URL's user, password, query and fragment may hold secrets: never told."""
    url = "https://bob:hunter2@hooks.example.com:8443/in?token=s3cret#frag"
    [notice] = notices_of(events.endpoint_disabled(USER, url))
    text = texts.render(notice.kind, notice.values)
    assert "https://hooks.example.com:8443/in" in text.body
    assert all(secret not in text.body for secret in ("hunter2", "s3cret", "bob", "frag"))


def test_debt_repaid_in_full_says_it_owes_nothing() -> None:
    """debt.recovered with nothing outstanding is told as repaid; with some left, how much."""
    [partly] = notices_of(events.debt("recovered", USER, "5.00", "10.00"))
    [fully] = notices_of(events.debt("recovered", USER, "10.00", "0.00"))
    assert partly.kind == "debt_recovered" and fully.kind == "debt_repaid"
    assert "$10.00" in texts.render(partly.kind, partly.values).body


def test_events_it_cannot_read_are_malformed_and_unknown_ones_tell_nobody() -> None:
    """A bad amount or user id raises Malformed (logged and skipped by the consumer); another
    version of a type, or a type not told, gives no notice."""
    bad_amount = events.funding("settled", USER)
    bad_amount["data"]["amount"] = "1e3"
    bad_user = events.user_event("frozen", "not-a-uuid")
    with pytest.raises(Malformed, match="amount"):
        notices_of(bad_amount)
    with pytest.raises(Malformed, match="user_id"):
        notices_of(bad_user)
    assert notices_of(events.cloudevent("user.frozen", "user/x", {"user_id": USER}, 2)) == []
    assert notices_of(events.funding("pending", USER)) == []


def test_an_email_wraps_the_body_and_greets_the_person() -> None:
    """The email text: the greeting by username, the body, lines at most 72 characters."""
    [notice] = notices_of(events.funding("returned", USER, "R01"))
    body = texts.email_body("ada", texts.render(notice.kind, notice.values).body)
    assert body.startswith("Hello ada,\n")
    assert "insufficient funds in the bank account" in " ".join(body.split())
    assert max(len(line) for line in body.splitlines()) <= texts.EMAIL_WIDTH
