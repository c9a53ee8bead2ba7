"""Rate limits as route dependencies: login per client address, money per user and per address."""

from __future__ import annotations

from fastapi import Request

from billfold.api.identity import AuthenticatedId, CurrentMerchant
from billfold.config import Settings
from billfold.platform.ratelimit import Limit, hit

# The longest IPv6 address in text is 45 characters; a longer one (an X-Forwarded-For entry, if
# a trusted proxy passes one on) is cut, so that a client cannot make Redis keys as long as it
# likes.
MAX_ADDRESS_LENGTH = 64


async def limit_login(request: Request) -> None:
    """429 once a client address has asked for more than login_limit_per_address tokens."""
    settings: Settings = request.app.state.settings
    await hit(
        request.app.state.redis,
        Limit(
            "login_per_address",
            client_address(request),
            settings.login_limit_per_address,
            settings.rate_limit_period_s,
        ),
    )


async def limit_money(request: Request, user_id: AuthenticatedId) -> None:
    """429 once the caller, or their address, has moved money too often. Runs after the caller's
    token is checked, so that only a valid token counts against a user."""
    settings: Settings = request.app.state.settings
    period_s = settings.rate_limit_period_s
    await hit(
        request.app.state.redis,
        Limit("money_per_user", str(user_id), settings.money_limit_per_user, period_s),
        Limit(
            "money_per_address",
            client_address(request),
            settings.money_limit_per_address,
            period_s,
        ),
    )


def client_address(request: Request) -> str:
    """The client's address: the peer's or, when the peer is a trusted proxy, the one the
    proxies name in X-Forwarded-For (see config.trusted_proxies; app.create_app reads the
    header)."""
    return request.client.host[:MAX_ADDRESS_LENGTH] if request.client else "unknown"


async def limit_merchant(request: Request, merchant: CurrentMerchant) -> None:
    """429 once a merchant's keys, or their address, have called too often: a merchant's server
    is limited as a person is (money_limit_per_user, per merchant)."""
    settings: Settings = request.app.state.settings
    period_s = settings.rate_limit_period_s
    await hit(
        request.app.state.redis,
        Limit("money_per_merchant", str(merchant.id), settings.money_limit_per_user, period_s),
        Limit(
            "money_per_address",
            client_address(request),
            settings.money_limit_per_address,
            period_s,
        ),
    )
