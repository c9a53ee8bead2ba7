"""Sign-up, login and the dependency that names the caller of every other endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, Field

from billfold.api.identity import CurrentUser, signing_key
from billfold.api.inputs import Body
from billfold.api.limits import limit_login
from billfold.api.signals import Signals
from billfold.platform.errors import NotFound
from billfold.platform.security import issue_token
from billfold.risk.engine import remember_places
from billfold.wallet.transfers import parse_user_id
from billfold.wallet.users import authenticate, check_sign_up, do_create_user, set_pin

router = APIRouter(prefix="/api/v1", tags=["users"])


class SignUpBody(Body):
    username: str
    email: str
    phone: str
    password: str


class UserOut(BaseModel):
    user_id: str
    username: str
    email: str
    phone: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


@router.post("/users", status_code=201, response_model=UserOut)
async def sign_up(request: Request, body: SignUpBody, origin: Signals) -> UserOut:
    """Create a user and their USD wallet. Handles are normalised; a taken one is a 409. The
    device and country it comes from are where the user starts from."""
    pool = request.app.state.pool
    user = await do_create_user(
        pool, check_sign_up(body.username, body.email, body.phone, body.password)
    )
    await remember_places(pool, str(user.id), origin.device_id, origin.country, origin.ip)
    return UserOut(user_id=str(user.id), username=user.username, email=user.email, phone=user.phone)


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    """The caller: their user id and handles."""
    return UserOut(user_id=str(user.id), username=user.username, email=user.email, phone=user.phone)


class PinBody(Body):
    pin: str = Field(max_length=16, description="4 to 8 digits.")


@router.put("/users/{user_id}/pin", status_code=204)
async def set_user_pin(request: Request, user_id: str, body: PinBody, user: CurrentUser) -> None:
    """Set or change your PIN: it confirms transfers held for verification."""
    if parse_user_id(user_id) != user.id:
        raise NotFound(f"user '{user_id[:64]}' does not exist", user_id=user_id[:64])
    await set_pin(request.app.state.pool, user.id, body.pin)


@router.post("/auth/token", response_model=TokenOut, dependencies=[Depends(limit_login)])
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=128)],
) -> TokenOut:
    """OAuth2 password login: `username` may be any of the user's handles."""
    state = request.app.state
    user = await authenticate(state.pool, state.redis, state.settings, username, password)
    ttl = state.settings.token_ttl_s
    return TokenOut(
        access_token=issue_token(user.id, signing_key(request), ttl),
        token_type="bearer",  # noqa: S106 - the OAuth2 token type, not a secret
        expires_in=ttl,
    )
