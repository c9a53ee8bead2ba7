"""What a request tells the risk engine about where it comes from, and the risk gate its
movement passes (risk.gate)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from billfold.api.identity import AuthenticatedId, device_signing_key
from billfold.api.limits import client_address
from billfold.platform.security import new_device_id, read_device_token, sign_device
from billfold.risk.gate import UNVERIFIED_DEVICE, Gate, Origin, country_code

# The device, country and address a request comes from (its address: limits.client_address).
ClientSignals = Origin


# The longest header values accepted (a longer one is a 422).
DEVICE_HEADER_MAX = 256
COUNTRY_HEADER_MAX = 8
DEVICE_HEADER = (
    "x-device-id",
    DEVICE_HEADER_MAX,
    "The device token the login (or sign-up) gave this device. Any other value, or another"
    " user's token, is scored as a device the user never used.",
)
COUNTRY_HEADER = (
    "x-client-country",
    COUNTRY_HEADER_MAX,
    "The client's country (ISO 3166 alpha-2), set by the edge. Any other value is no signal.",
    # The schema of a header beyond its length: what the edge should send.
    {"pattern": "^[A-Za-z]{2}$"},
)

DeviceHeader = Annotated[
    str | None, Header(max_length=DEVICE_HEADER_MAX, description=DEVICE_HEADER[2])
]
CountryHeader = Annotated[
    str | None,
    Header(
        max_length=COUNTRY_HEADER_MAX,
        description=COUNTRY_HEADER[2],
        json_schema_extra=COUNTRY_HEADER[3],
    ),
]


async def client_signals(
    request: Request,
    user_id: AuthenticatedId,
    x_device_id: DeviceHeader = None,
    x_client_country: CountryHeader = None,
) -> ClientSignals:
    return signals_of(request, user_id, x_device_id, x_client_country)


def signals_of(
    request: Request, user_id: uuid.UUID | None, device: str | None, country: str | None
) -> ClientSignals:
    """The signals of a request by `user_id` (None: nobody yet, as at sign-up)."""
    address = client_address(request)
    return ClientSignals(
        device_id=device_of(request, user_id, device),
        country=country_code(country),
        ip=None if address == "unknown" else address,
    )


def device_of(request: Request, user_id: uuid.UUID | None, header: str | None) -> str | None:
    """The device id a valid device token of `user_id`'s names; UNVERIFIED_DEVICE for any
    other value (unsigned, a bad signature, another user's token); None without one."""
    value = (header or "").strip()
    if not value:
        return None
    token = read_device_token(device_signing_key(request), value)
    if token is None or token.user_id != user_id:
        return UNVERIFIED_DEVICE
    return token.device_id


def device_token_for(request: Request, user_id: uuid.UUID, header: str | None) -> str:
    """The device token a login (or sign-up) of `user_id` answers with: the one it presented,
    when that is a valid token of theirs (the same device); otherwise a new one. A valid token
    of another user's keeps its device id, bound now to this user too: it is the same app on
    the same device, and the model's shared-device feature counts the users seen on one device.
    Anything else gets a new random device id."""
    key = device_signing_key(request)
    value = (header or "").strip()
    presented = read_device_token(key, value)
    if presented is not None and presented.user_id == user_id:
        return value
    device_id = presented.device_id if presented is not None else new_device_id()
    return sign_device(key, user_id, device_id)


Signals = Annotated[ClientSignals, Depends(client_signals)]


def risk_gate(request: Request) -> Gate:
    """The risk gate as the app's state has it now: its engine, and the budget, fail-closed
    amount and scoring slots of its settings (a test may swap any of them)."""
    state = request.app.state
    return Gate(
        state.risk,
        state.redis,
        state.settings.risk_budget_ms,
        state.fail_closed_minor,
        state.risk_slots,
    )
