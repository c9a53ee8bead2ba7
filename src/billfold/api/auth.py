"""Sign-up, login, the caller, and their PIN."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, Field

from billfold.api.fields import (
    HANDLE_MAX,
    PASSWORD_MAX,
    Email,
    NewPassword,
    Password,
    Phone,
    Pin,
    UserIdPath,
    Username,
)
from billfold.api.identity import CurrentUser, signing_key
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_login
from billfold.api.problems import problem_responses
from billfold.api.signals import CountryHeader, DeviceHeader, device_token_for, origin_of
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.security import Unauthenticated, issue_token
from billfold.risk.places import remember_places
from billfold.wallet.pins import (
    PinChangedMeanwhile,
    PinChangeLocked,
    PinNotSet,
    ReauthenticationRequired,
    WrongCurrentPin,
    check_set_pin,
    do_set_pin,
)
from billfold.wallet.transfers import parse_user_id
from billfold.wallet.users import (
    HandleTaken,
    LoginLocked,
    WrongPassword,
    authenticate,
    check_sign_up,
    do_create_user,
)

router = APIRouter(prefix="/api/v1", tags=["users"], route_class=InputRoute)


class SignUpBody(Body):
    username: Username
    email: Email
    phone: Phone
    password: NewPassword


class UserOut(BaseModel):
    user_id: str
    username: str
    email: str
    phone: str


class SignedUpOut(UserOut):
    device_token: str = Field(
        description="This device's token: send it back as X-Device-Id, and present it at login."
    )


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    device_token: str = Field(
        description="This device's token: send it back as X-Device-Id on every request, and"
        " present it at the next login (which then answers with the same token)."
    )


@router.post(
    "/users",
    status_code=201,
    response_model=SignedUpOut,
    responses=problem_responses(ValidationFailed, HandleTaken),
)
async def sign_up(
    request: Request,
    body: SignUpBody,
    x_device_id: DeviceHeader = None,
    x_client_country: CountryHeader = None,
) -> SignedUpOut:
    """Create a user and their USD wallet. Handles are normalised; a taken one is a 409. The
    device it comes from (given a token of its own, `device_token`) and its country are where
    the user starts from."""
    pool = request.app.state.pool
    user = await do_create_user(
        pool, check_sign_up(body.username, body.email, body.phone, body.password)
    )
    device_token = device_token_for(request, user.id, x_device_id)
    origin = origin_of(request, user.id, device_token, x_client_country)
    await remember_places(pool, str(user.id), origin.device_id, origin.country, origin.ip)
    return SignedUpOut(
        user_id=str(user.id),
        username=user.username,
        email=user.email,
        phone=user.phone,
        device_token=device_token,
    )


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    """The caller: their user id and handles."""
    return UserOut(user_id=str(user.id), username=user.username, email=user.email, phone=user.phone)


class PinBody(Body):
    pin: Pin = Field(description="The new PIN: 4 to 8 digits.")
    password: Password = Field(
        default=None, description="Your password: needed unless `current_pin`."
    )
    current_pin: Pin | None = Field(
        default=None, description="Your current PIN, when you have one."
    )


@router.put(
    "/users/{user_id}/pin",
    status_code=204,
    responses=problem_responses(
        ValidationFailed,
        PinNotSet,
        ReauthenticationRequired,
        WrongPassword,
        WrongCurrentPin,
        NotFound,
        PinChangedMeanwhile,
        PinChangeLocked,
    ),
)
async def set_user_pin(
    request: Request, user_id: UserIdPath, body: PinBody, user: CurrentUser
) -> None:
    """Set or change your PIN: it confirms transfers held for verification. Needs your
    password, or your current PIN when you have one: the access token alone is not enough.
    Wrong ones count; 10 in a row lock PIN changes for 30 minutes. A changed PIN does not
    confirm a held movement for 24 hours (the movement goes to review); a first PIN does at
    once."""
    if parse_user_id(user_id) != user.id:
        raise NotFound(f"user '{user_id[:64]}' does not exist", user_id=user_id[:64])
    state = request.app.state
    change = await check_set_pin(
        state.pool,
        state.redis,
        state.settings,
        user.id,
        body.pin,
        password=body.password,
        current_pin=body.current_pin,
    )
    await do_set_pin(state.pool, change)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    dependencies=[Depends(limit_login)],
    responses=problem_responses(ValidationFailed, Unauthenticated, LoginLocked),
)
async def login(
    request: Request,
    username: Annotated[
        str,
        Form(
            max_length=HANDLE_MAX,
            description="Any of your handles.",
            json_schema_extra={"minLength": 1},
        ),
    ],
    password: Annotated[str, Form(max_length=PASSWORD_MAX, json_schema_extra={"minLength": 1})],
    x_device_id: DeviceHeader = None,
) -> TokenOut:
    """OAuth2 password login: `username` may be any of the user's handles. Answers with an
    access token and this device's `device_token`: the one presented in X-Device-Id, if it is
    a valid token of this user's; a new one otherwise (a device the user never used, until a
    movement from it goes ahead)."""
    state = request.app.state
    user = await authenticate(state.pool, state.redis, state.settings, username, password)
    ttl = state.settings.token_ttl_s
    return TokenOut(
        access_token=issue_token(user.id, signing_key(request), ttl),
        token_type="bearer",  # noqa: S106 - the OAuth2 token type, not a secret
        expires_in=ttl,
        device_token=device_token_for(request, user.id, x_device_id),
    )
