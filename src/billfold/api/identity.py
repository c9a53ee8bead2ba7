"""Who is calling: the bearer-token dependencies every protected endpoint takes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billfold.merchants.keys import authenticate, is_merchant_secret
from billfold.merchants.profiles import Merchant, merchant_not_found, owned_merchant, parse_id
from billfold.platform.errors import NotFound
from billfold.platform.security import TokenReader, Unauthenticated, device_key, secret_key
from billfold.wallet.users import User, get_user

_bearer = HTTPBearer(auto_error=False)
# The same header, documented as its own scheme: a merchant's server signs in with its key.
_merchant_key = HTTPBearer(
    auto_error=False,
    scheme_name="MerchantKey",
    description="A merchant's API key: `Authorization: Bearer sk_...`.",
)


async def authenticated_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> uuid.UUID:
    """The user id the request's valid bearer token names; 401 without one. Checks the token
    alone: an endpoint that needs the user's row takes CurrentUser, or loads it with what else
    it reads."""
    if credentials is None:
        return bearer_user_id(request, "", "")
    return bearer_user_id(request, credentials.scheme, credentials.credentials)


def bearer_user_id(request: Request, scheme: str, token: str) -> uuid.UUID:
    """The user id a bearer token names; 401 for any other scheme, no token, or a bad one."""
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("this endpoint needs an 'Authorization: Bearer' token")
    if is_merchant_secret(token):
        raise Unauthenticated("this endpoint needs a person's access token, not a merchant key")
    return token_reader(request).read(token)


AuthenticatedId = Annotated[uuid.UUID, Depends(authenticated_id)]


async def current_user(request: Request, user_id: AuthenticatedId) -> User:
    """The user the request's bearer token names; 401 without a valid token."""
    try:
        return await get_user(request.app.state.pool, user_id)
    except NotFound:
        raise Unauthenticated("the access token names no user") from None


CurrentUser = Annotated[User, Depends(current_user)]


def token_reader(request: Request) -> TokenReader:
    reader = getattr(request.app.state, "token_reader", None)
    if reader is None:
        reader = request.app.state.token_reader = TokenReader(signing_key(request))
    return reader


def signing_key(request: Request) -> str:
    key = getattr(request.app.state, "secret_key", None)
    if key is None:
        key = request.app.state.secret_key = secret_key(request.app.state.settings)
    return str(key)


def device_signing_key(request: Request) -> bytes:
    """The device tokens' key (platform.security.device_key), derived once per app."""
    key = getattr(request.app.state, "device_key", None)
    if key is None:
        key = request.app.state.device_key = device_key(signing_key(request))
    return bytes(key)


async def current_merchant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_merchant_key)],
) -> Merchant:
    """The merchant whose live API key (`Authorization: Bearer sk_...`) the request carries; 401
    for a person's token, an unknown or a revoked key. Then the merchant's own rate limit, as a
    person's (api.limits.limit_merchant)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("this endpoint needs a merchant key: 'Authorization: Bearer sk_...'")
    if not is_merchant_secret(credentials.credentials):
        raise Unauthenticated("this endpoint needs a merchant key (sk_...), not a person's token")
    return await authenticate(request.app.state.pool, credentials.credentials)


CurrentMerchant = Annotated[Merchant, Depends(current_merchant)]


async def person_or_merchant(
    request: Request,
    person: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    merchant: Annotated[HTTPAuthorizationCredentials | None, Depends(_merchant_key)],
) -> User | Merchant:
    """For a route a person and a merchant's server may both call: the merchant a key names
    (`sk_...`), or else the user a person's token names (401 for neither, as CurrentUser and
    CurrentMerchant refuse)."""
    credentials = merchant or person
    if credentials is not None and is_merchant_secret(credentials.credentials):
        return await current_merchant(request, credentials)
    return await current_user(request, await authenticated_id(request, credentials))


PersonOrMerchant = Annotated[User | Merchant, Depends(person_or_merchant)]


async def merchant_of_caller(
    request: Request,
    merchant_id: Annotated[str, Path(json_schema_extra={"format": "uuid"})],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_merchant_key)],
) -> Merchant:
    """The merchant of the path, for its own API key or for its owner's access token (`_key`
    reads the same header: it documents the merchant key as an alternative); 401 for neither,
    and 404 for another merchant's key or a person who does not own it (not told apart from a
    merchant that does not exist)."""
    pool = request.app.state.pool
    if credentials is not None and is_merchant_secret(credentials.credentials):
        if credentials.scheme.lower() != "bearer":
            raise Unauthenticated("this endpoint needs an 'Authorization: Bearer' token or key")
        merchant = await authenticate(pool, credentials.credentials)
        if merchant.id != parse_id(merchant_id, "merchant", "merchant_id"):
            raise merchant_not_found(merchant_id)
        return merchant
    user = await current_user(request, await authenticated_id(request, credentials))
    return await owned_merchant(pool, user.id, merchant_id)


MerchantOfCaller = Annotated[Merchant, Depends(merchant_of_caller)]
