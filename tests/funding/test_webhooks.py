"""The bank partner's webhooks (funding.webhooks): each event applied once, however many copies
arrive and however they race, and a delivery whose application died applied later, once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from billfold.funding import webhooks
from billfold.funding.rails import load
from billfold.funding.views import funding_view
from billfold.platform.errors import BillfoldError, ValidationFailed
from tests.world import World

pytestmark = pytest.mark.usefixtures("reconciled")
ACCOUNT = "000123456789"


def signed(world: World, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """A delivery of `event`, signed with the app's webhook secret, under a new id."""
    return webhooks.sign(webhooks.webhook_secret(world.state.settings), event)


async def test_each_event_is_applied_once_and_an_unknown_one_is_refused(world: World) -> None:
    """The same delivery twice, or the same event under a new id, gives one effect; an event
    about no movement is refused; one without a movement is invalid."""
    person = await world.person()
    bank = await world.bank(person, ACCOUNT)
    started = await world.add_funds(person, "20.00", bank=bank)
    funding = world.state.funding
    headers, body = signed(world, {"type": "ach.settled", "data": {"transfer_id": str(started.id)}})
    first = await webhooks.receive(funding, headers, body)
    again = await webhooks.receive(funding, headers, body)
    assert [first.status, again.status] == ["applied", "duplicate"]
    resent = await webhooks.receive(
        funding, *signed(world, {"type": "ach.settled", "data": {"transfer_id": str(started.id)}})
    )
    assert resent.status == "ignored"
    assert (await world.wallet(person))["balance"] == "20.00"
    unknown = signed(world, {"type": "ach.settled", "data": {"transfer_id": "x"}})
    assert (await webhooks.receive(funding, *unknown)).status == "refused"
    with pytest.raises(ValidationFailed):
        await webhooks.receive(funding, *signed(world, {"type": "ach.settled", "data": {}}))


async def test_concurrent_deliveries_and_events_have_one_effect(world: World) -> None:
    """Ten copies of one delivery at once, and a settle racing a return: one effect each, and
    the wallet ends consistent with whichever event won."""
    person = await world.person()
    bank = await world.bank(person, ACCOUNT)
    funding = world.state.funding
    first = await world.add_funds(person, "10.00", bank=bank)
    headers, body = signed(world, {"type": "ach.settled", "data": {"transfer_id": str(first.id)}})
    copies = await asyncio.gather(
        *(webhooks.receive(funding, headers, body) for _ in range(10)), return_exceptions=True
    )
    statuses = sorted(c.code if isinstance(c, BillfoldError) else c.status for c in copies)
    assert statuses[0] == "applied"
    assert set(statuses[1:]) <= {"duplicate", "webhook_in_progress"}
    assert (await world.wallet(person))["balance"] == "10.00"
    second = await world.add_funds(person, "5.00", bank=bank)
    events = [
        {"type": "ach.settled", "data": {"transfer_id": str(second.id)}},
        {"type": "ach.returned", "data": {"transfer_id": str(second.id), "return_code": "R01"}},
    ]
    signed_events = [signed(world, event) for event in events]
    await asyncio.gather(*(webhooks.receive(funding, h, b) for h, b in signed_events))
    money = await world.wallet(person)
    # Settled then returned: clawed back; returned first: the settle is refused. Either way the
    # five dollars are gone and nothing is pending.
    assert (money["balance"], money["pending_balance"]) == ("10.00", "0.00")
    shown = await load(world.state.pool, str(second.id))
    assert shown is not None and funding_view(shown)["status"] == "RETURNED"


async def test_a_webhook_whose_application_died_is_applied_later_exactly_once(
    world: World,
) -> None:
    """A claimed, never applied delivery: a copy while the claim is fresh must retry (409), and
    once the claim is stale the recovery sweep applies it, once."""
    person = await world.person()
    bank = await world.bank(person, ACCOUNT)
    started = await world.add_funds(person, "6.00", bank=bank)
    event = {"type": "ach.settled", "data": {"transfer_id": str(started.id)}}
    headers, body = signed(world, event)
    pool, funding = world.state.pool, world.state.funding
    await pool.execute(
        "INSERT INTO webhook_inbox (webhook_id, source, event_type, payload)"
        " VALUES ($1, 'bank', $2, $3)",
        headers["webhook-id"],
        event["type"],
        event,
    )
    with pytest.raises(webhooks.WebhookInProgress) as copy:
        await webhooks.receive(funding, headers, body)
    assert copy.value.status == 409 and copy.value.headers() == {"Retry-After": "1"}
    await pool.execute(
        "UPDATE webhook_inbox SET claimed_at = now() - interval '5 minutes' WHERE webhook_id = $1",
        headers["webhook-id"],
    )
    assert await webhooks.reapply_stale(funding) >= 1
    assert await webhooks.reapply_stale(funding) == 0
    assert (await world.wallet(person))["balance"] == "6.00"
    assert (await webhooks.receive(funding, headers, body)).status == "duplicate"
