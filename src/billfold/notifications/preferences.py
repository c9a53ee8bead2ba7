"""What each person wants to be told, by category (notifications.kinds.CATEGORIES): in the feed,
by email. A category the person never set has the defaults, both on; the `account` category's
feed cannot be turned off (a freeze or a debt must be findable again)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.notifications.kinds import CATEGORIES
from billfold.platform.errors import BillfoldError, ValidationFailed


@dataclass(frozen=True, slots=True)
class Preference:
    feed: bool = True
    email: bool = True


DEFAULT = Preference()

# A person's changes: for each category named, the switches given (None: unchanged).
Changes = Mapping[str, Mapping[str, bool | None]]


class FeedRequired(BillfoldError):
    """A category whose feed cannot be turned off."""

    code = "feed_required"
    status = 422
    title = "This feed cannot be turned off"


_READ = """
SELECT user_id, category, feed, email FROM notification_preferences WHERE user_id = ANY($1::uuid[])
"""
_PUT = """
WITH c AS (SELECT * FROM unnest($2::text[], $3::boolean[], $4::boolean[])
                         AS c(category, feed, email))
INSERT INTO notification_preferences AS p (user_id, category, feed, email)
SELECT $1, c.category, coalesce(c.feed, true), coalesce(c.email, true) FROM c
ON CONFLICT (user_id, category) DO UPDATE
   SET feed = coalesce((SELECT c.feed FROM c WHERE c.category = p.category), p.feed),
       email = coalesce((SELECT c.email FROM c WHERE c.category = p.category), p.email),
       updated_at = now()
"""


async def read_preferences(
    source: asyncpg.Pool | asyncpg.Connection, user_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], Preference]:
    """The preferences the people `user_ids` set, by (person, category); a pair not in it has
    the defaults (DEFAULT)."""
    if not user_ids:
        return {}
    rows = await source.fetch(_READ, list(user_ids))
    return {(r["user_id"], r["category"]): Preference(r["feed"], r["email"]) for r in rows}


async def preferences_view(source: asyncpg.Pool | asyncpg.Connection, user_id: uuid.UUID) -> Any:
    """Every category with the person's switches, as the API shows them."""
    chosen = await read_preferences(source, [user_id])
    shown = []
    for name, category in CATEGORIES.items():
        preference = chosen.get((user_id, name), DEFAULT)
        shown.append(
            {
                "category": name,
                "description": category.description,
                "feed": preference.feed or not category.feed_optional,
                "email": preference.email,
                "feed_optional": category.feed_optional,
            }
        )
    return {"preferences": shown}


def check_put_preferences(changes: Changes) -> Changes:
    """The changes, each category known and each switch a boolean or absent; a feed that
    cannot be turned off (FeedRequired) names its category."""
    for name, switches in changes.items():
        category = CATEGORIES.get(name)
        if category is None:
            raise ValidationFailed(
                f"category '{name[:40]}' is not one of {', '.join(CATEGORIES)}", field=name
            )
        unknown = set(switches) - {"feed", "email"}
        if unknown:
            raise ValidationFailed(f"{name} has no setting '{sorted(unknown)[0][:40]}'", field=name)
        if switches.get("feed") is False and not category.feed_optional:
            raise FeedRequired(
                f"the {name} feed cannot be turned off: it tells of a freeze, a debt and a "
                "chargeback, which must stay findable; turn its email off instead",
                field=f"{name}.feed",
            )
    return changes


async def do_put_preferences(pool: asyncpg.Pool, user_id: uuid.UUID, changes: Changes) -> Any:
    """Set the person's switches the changes name (the others keep theirs); the preferences
    as they are now. Locks: the person's preference rows, by the upsert itself."""
    if changes:
        names = list(changes)
        await pool.execute(
            _PUT,
            user_id,
            names,
            [changes[n].get("feed") for n in names],
            [changes[n].get("email") for n in names],
        )
    return await preferences_view(pool, user_id)
