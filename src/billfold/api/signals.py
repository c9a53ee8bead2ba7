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


async def client_signals(
    request: Request,
    x_device_id: Annotated[str | None, Header(max_length=256)] = None,
    x_client_country: Annotated[str | None, Header(max_length=8)] = None,
) -> ClientSignals:
    address = client_address(request, request.app.state.settings)
    return ClientSignals(
        device_id=(x_device_id or "").strip()[:MAX_DEVICE_ID] or None,
        country=country_code(x_client_country),
        ip=None if address == "unknown" else address,
    )


Signals = Annotated[ClientSignals, Depends(client_signals)]
