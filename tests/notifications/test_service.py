"""The consumer's handler records one notification per event and person, however often the event
comes, and as the person's preferences say (feed, email)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from billfold.notifications import preferences
from billfold.notifications.feed import FeedQuery, read_feed
from billfold.notifications.service import Notifications
from billfold.wallet.users import User
from tests.notifications import events
from tests.notifications.conftest import MakeUser


async def rows_of(pool: asyncpg.Pool, user: User) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT event_id, kind, category, subject, body, in_feed, email_status, email_to"
        " FROM notifications WHERE user_id = $1 ORDER BY seq",
        user.id,
    )
    return [dict(r) for r in rows]


async def test_an_event_delivered_again_is_told_once(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser
) -> None:
    """The same event twice in a batch, again in a later batch, and by two members of the group
    at once: one notification, one email queued."""
    ada, bob = await make_user(), await make_user()
    event = events.transfer_completed(str(bob.id), str(ada.id), "7.25")
    await told.handle([event, event])
    await told.handle([event])
    other = Notifications(pool, told.mailer.settings)
    await asyncio.gather(told.handle([event]), other.handle([event]))
    [row] = await rows_of(pool, ada)
    assert row["event_id"] == uuid.UUID(event["id"])
    assert (row["kind"], row["email_status"], row["email_to"]) == (
        "money_received",
        "pending",
        ada.email,
    )
    assert row["subject"] == f"You received $7.25 from @{bob.username}"


async def test_every_kind_is_recorded_for_its_person(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser
) -> None:
    """A batch of one event of each type: each told to its person, rendered, in the feed, with
    the counterparty named by username."""
    ada, bob = await make_user(), await make_user()
    batch = events.every_kind(str(ada.id), str(bob.id))
    await told.handle(batch)
    rows = await rows_of(pool, ada)
    assert [r["event_id"] for r in rows] == [uuid.UUID(e["id"]) for e in batch]
    assert all(r["in_feed"] and r["email_status"] == "pending" for r in rows)
    held = next(r for r in rows if r["kind"] == "transfer_held_pin")
    assert f"@{bob.username}" in held["body"] and "$80.00" in held["subject"]
    assert await rows_of(pool, bob) == []


async def test_preferences_decide_feed_and_email(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser
) -> None:
    """Email off for money received: recorded in the feed, no email. Feed off for funding:
    emailed, not in the feed. The account category's feed stays on whatever is stored."""
    ada, bob = await make_user(), await make_user()
    changes = {"money_received": {"email": False}, "funding": {"feed": False}}
    await preferences.do_put_preferences(pool, ada.id, preferences.check_put_preferences(changes))
    received = events.transfer_completed(str(bob.id), str(ada.id))
    settled = events.funding("settled", str(ada.id))
    frozen = events.user_event("frozen", str(ada.id))
    await told.handle([received, settled, frozen])
    rows = {r["kind"]: r for r in await rows_of(pool, ada)}
    assert (rows["money_received"]["in_feed"], rows["money_received"]["email_status"]) == (
        True,
        "none",
    )
    assert (rows["funding_settled"]["in_feed"], rows["funding_settled"]["email_status"]) == (
        False,
        "pending",
    )
    assert rows["user_frozen"]["in_feed"]
    page = await read_feed(pool, ada.id, FeedQuery())
    assert [n["kind"] for n in page["notifications"]] == ["user_frozen", "money_received"]


async def test_a_batch_with_an_unreadable_event_records_the_others(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser
) -> None:
    """An event whose data cannot be read, or that names nobody known, is skipped; the rest of
    its batch is recorded."""
    ada = await make_user()
    broken = events.funding("settled", str(ada.id))
    broken["data"]["amount"] = 40
    stranger = events.user_event("frozen", str(uuid.uuid4()))
    good = events.funding("returned", str(ada.id), "R01")
    await told.handle([broken, stranger, good])
    [row] = await rows_of(pool, ada)
    assert row["kind"] == "funding_returned"
    assert "insufficient funds in the bank account" in row["body"]


async def test_notifications_past_the_retention_period_are_pruned(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser
) -> None:
    """The mailer's pruning deletes notifications older than the retention period, read or
    not, and leaves the newer ones."""
    ada = await make_user()
    old, new = events.user_event("frozen", str(ada.id)), events.user_event("unfrozen", str(ada.id))
    await told.handle([old, new])
    await pool.execute(
        "UPDATE notifications SET created_at = now() - interval '200 days' WHERE event_id = $1",
        uuid.UUID(old["id"]),
    )
    assert await told.mailer.prune() >= 1
    assert [r["kind"] for r in await rows_of(pool, ada)] == ["user_unfrozen"]
