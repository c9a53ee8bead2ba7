"""An endpoint's deliveries are listed newest first, a page at a time, to its owner only."""

from __future__ import annotations

import pytest

from billfold.platform.errors import NotFound, ValidationFailed
from billfold.webhooks.deliveries import list_deliveries
from billfold.webhooks.fanout import fan_out
from tests.webhooks.conftest import register
from tests.webhooks.test_fanout import NOWHERE, cloudevent
from tests.world import World


async def test_deliveries_page_newest_first(world: World) -> None:
    """Five deliveries in pages of two: every one once, newest first, the last page without a
    cursor; another person's listing of the endpoint is a 404, a bad limit a 422."""
    owner, stranger = await world.person(), await world.person()
    endpoint = await register(world, owner.id, NOWHERE)
    events = [cloudevent("user.frozen", {"user_id": str(owner.id)}) for _ in range(5)]
    pool = world.state.pool
    for event in events:
        await fan_out(pool, [event])
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        page = await list_deliveries(pool, owner.id, endpoint["endpoint_id"], 2, cursor)
        seen += [d["event_id"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in reversed(events)]
    assert cursor is None
    with pytest.raises(NotFound):
        await list_deliveries(pool, stranger.id, endpoint["endpoint_id"], 2, None)
    with pytest.raises(ValidationFailed):
        await list_deliveries(pool, owner.id, endpoint["endpoint_id"], 0, None)
