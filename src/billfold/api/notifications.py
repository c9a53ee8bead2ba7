"""A person's notifications: their feed, marking it read, and what they want to be told."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from billfold.api.fields import ID_MAX, UUID, Cursor
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.problems import problem_responses
from billfold.notifications import feed, preferences
from billfold.notifications.kinds import CATEGORIES
from billfold.platform.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/api/v1", tags=["notifications"], route_class=InputRoute)

NotificationId = Annotated[str, Field(max_length=ID_MAX, json_schema_extra=UUID)]


class NotificationOut(BaseModel):
    id: str
    kind: str = Field(description="What happened, e.g. money_received, funding_returned.")
    category: str = Field(json_schema_extra={"enum": list(CATEGORIES)})
    title: str
    body: str
    about: str | None = Field(description="What it is about: `transfer/<id>`, `funding/<id>`.")
    time: str = Field(description="When it happened.")
    read: bool
    read_at: str | None


class NotificationsOut(BaseModel):
    notifications: list[NotificationOut]
    next_cursor: str | None
    unread_count: int = Field(description=f"Unread, counted up to {feed.UNREAD_COUNT_MAX}.")


class MarkReadIn(Body):
    """Exactly one of `ids` and `up_to`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["ids"]}, {"required": ["up_to"]}],
        },
    )

    ids: list[NotificationId] | None = Field(
        default=None, min_length=1, max_length=feed.MAX_IDS, description="Notifications to mark."
    )
    up_to: NotificationId | None = Field(
        default=None,
        description="A notification: it and every older one are marked (what a client showed, "
        "leaving what arrived since unread).",
    )


class MarkedOut(BaseModel):
    marked: int = Field(description="How many were unread and are now read.")
    unread_count: int


class PreferenceOut(BaseModel):
    category: str = Field(json_schema_extra={"enum": list(CATEGORIES)})
    description: str
    feed: bool
    email: bool
    feed_optional: bool = Field(description="False: this category's feed cannot be turned off.")


class PreferencesOut(BaseModel):
    preferences: list[PreferenceOut]


class PreferenceIn(BaseModel):
    """A category's switches; one left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    feed: StrictBool | None = None
    email: StrictBool | None = None


class PreferencesIn(Body):
    """The categories to change; one left out keeps its switches."""

    model_config = ConfigDict(extra="forbid")

    money_received: PreferenceIn | None = None
    transfers: PreferenceIn | None = None
    funding: PreferenceIn | None = None
    account: PreferenceIn | None = Field(
        default=None, description="Its feed cannot be turned off (email can)."
    )
    developers: PreferenceIn | None = None


@router.get(
    "/notifications",
    response_model=NotificationsOut,
    responses=problem_responses(ValidationFailed),
)
async def list_notifications(
    request: Request,
    user: CurrentUser,
    unread: Annotated[bool, Query(description="Only the unread ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=feed.MAX_LIMIT)] = feed.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    """The caller's notifications, newest first; `next_cursor` pages on."""
    query = feed.FeedQuery(unread=unread, limit=limit, cursor=cursor)
    return await feed.read_feed(request.app.state.pool, user.id, query)


@router.post(
    "/notifications/read",
    response_model=MarkedOut,
    responses=problem_responses(
        ValidationFailed,
        NotFound,
        notes={404: "a notification named is not the caller's (nothing was marked)"},
    ),
)
async def mark_notifications_read(request: Request, body: MarkReadIn, user: CurrentUser) -> Any:
    """Mark the caller's notifications read: those named, or one and every older one."""
    mark = feed.check_mark_read(body.ids, body.up_to)
    return await feed.do_mark_read(request.app.state.pool, user.id, mark)


@router.get("/notifications/preferences", response_model=PreferencesOut)
async def get_notification_preferences(request: Request, user: CurrentUser) -> Any:
    """What the caller is told of, by category: in the feed, by email."""
    return await preferences.preferences_view(request.app.state.pool, user.id)


@router.put(
    "/notifications/preferences",
    response_model=PreferencesOut,
    responses=problem_responses(ValidationFailed, preferences.FeedRequired),
)
async def put_notification_preferences(
    request: Request, body: PreferencesIn, user: CurrentUser
) -> Any:
    """Change what the caller is told of; answers every category as it is now."""
    changes = {
        name: switches.model_dump(exclude_none=True)
        for name, switches in body
        if isinstance(switches, PreferenceIn)
    }
    checked = preferences.check_put_preferences(changes)
    return await preferences.do_put_preferences(request.app.state.pool, user.id, checked)
