"""Each event becomes one delivery per endpoint of the people it concerns that asks for its
kind, once however often it is handled, and never to an endpoint registered after it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from billfold.webhooks.fanout import fan_out, kind_of, people
from tests.webhooks.conftest import register
from tests.world import World

NOWHERE = "http://127.0.0.1:9/never"  # the discard port: deliveries there fail, unseen


def cloudevent(kind: str, data: dict[str, Any], time: datetime | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/billfold",
        "type": f"billfold.{kind}.v1",
        "subject": "test/1",
        "time": (time or datetime.now(UTC)).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def test_whom_an_event_concerns() -> None:
    """user_id; for transfer.completed, its sender and recipient (null for a system account);
    for a merchant payment its payer and the merchant's owner, for a checkout session the
    owner; a malformed id, or another source's type, concerns no one."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    completed = {"from_user_id": str(alice), "to_user_id": None, "user_id": str(bob)}
    assert list(people("transfer.completed", completed)) == [alice]
    both = {"from_user_id": str(alice), "to_user_id": str(bob)}
    assert list(people("transfer.completed", both)) == [alice, bob]
    assert list(people("transfer.held", {"user_id": str(alice), "to_user_id": str(bob)})) == [alice]
    assert list(people("user.frozen", {"user_id": "not-a-uuid"})) == []
    assert list(people("user.frozen", ["not", "an", "object"])) == []
    assert kind_of({"type": "billfold.funding.returned.v1"}) == "funding.returned"
    paid = {"payer_id": str(alice), "owner_id": str(bob), "merchant_id": str(uuid.uuid4())}
    assert list(people("payment.completed", paid)) == [alice, bob]
    assert list(people("payment.declined", {**paid, "payment_id": None})) == [alice, bob]
    assert list(people("checkout.session.paid", {"owner_id": str(bob)})) == [bob]
    assert kind_of({"type": "com.example.other"}) is None


async def test_an_event_handled_twice_is_delivered_once(world: World) -> None:
    """Handled again (delivery is at least once), an event makes no second delivery; two
    endpoints of the person that ask for it get one each, one that does not gets none."""
    owner = await world.person()
    every = await register(world, owner.id, NOWHERE)
    frozen = await register(world, owner.id, NOWHERE, ["user.frozen"])
    other = await register(world, owner.id, NOWHERE, ["funding.settled"])
    event = cloudevent("user.frozen", {"user_id": str(owner.id)})
    pool = world.state.pool
    assert await fan_out(pool, [event, event]) == 2
    assert await fan_out(pool, [event]) == 0
    rows = await pool.fetch(
        "SELECT endpoint_id FROM webhook_deliveries WHERE event_id = $1", uuid.UUID(event["id"])
    )
    got = {str(row["endpoint_id"]) for row in rows}
    assert got == {every["endpoint_id"], frozen["endpoint_id"]}
    assert other["endpoint_id"] not in got


async def test_an_endpoint_gets_no_event_from_before_it(world: World) -> None:
    """A group reading the stream from its start does not send a new endpoint the past."""
    owner = await world.person()
    await register(world, owner.id, NOWHERE)
    past = datetime.now(UTC) - timedelta(hours=1)
    event = cloudevent("user.frozen", {"user_id": str(owner.id)}, past)
    assert await fan_out(world.state.pool, [event]) == 0
