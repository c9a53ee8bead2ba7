"""What a request tells the risk engine about where it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from billfold.api.limits import client_address
from billfold.wallet.risk import country_code

MAX_DEVICE_ID = 128


@dataclass(frozen=True)
class ClientSignals:
    device_id: str | None  # X-Device-Id, sent by the app
    country: str | None  # X-Client-Country, set by the edge: ISO 3166 alpha-2, else None
    ip: str | None  # the client's address (see limits.client_address)


# The longest header values accepted (a longer one is a 422).
DEVICE_HEADER_MAX = 256
COUNTRY_HEADER_MAX = 8
DEVICE_HEADER = ("x-device-id", DEVICE_HEADER_MAX, "The app's id for this device.")
COUNTRY_HEADER = (
    "x-client-country",
    COUNTRY_HEADER_MAX,
    "The client's country (ISO 3166 alpha-2), set by the edge.",
)


async def client_signals(
    request: Request,
    x_device_id: Annotated[str | None, Header(max_length=DEVICE_HEADER_MAX)] = None,
    x_client_country: Annotated[str | None, Header(max_length=COUNTRY_HEADER_MAX)] = None,
) -> ClientSignals:
    return signals_of(request, x_device_id, x_client_country)


def signals_of(request: Request, device_id: str | None, country: str | None) -> ClientSignals:
    address = client_address(request, request.app.state.settings)
    return ClientSignals(
        device_id=(device_id or "").strip()[:MAX_DEVICE_ID] or None,
        country=country_code(country),
        ip=None if address == "unknown" else address,
    )


Signals = Annotated[ClientSignals, Depends(client_signals)]
