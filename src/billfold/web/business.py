"""What the business dashboard's pages share (web/merchant.py, web/merchant_tools.py): the
business of the path, the owner's only, and rendering in its frame."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request, Response

from billfold.merchants import checkout, profiles
from billfold.merchants.profiles import Merchant
from billfold.web import pages
from billfold.web.identity import WebUser

# Form fields: a short one (a name, an amount, an id) and an idempotency key.
Short = Annotated[str, Form(max_length=64)]
Key = Annotated[str, Form(max_length=checkout.MAX_KEY_LENGTH)]


async def business(request: Request, merchant_id: str, user: WebUser) -> Merchant:
    """The business of the path if the person signed in owns it; 404 for anyone else's, not
    told apart from one that does not exist (as the API's owner token reads)."""
    return await profiles.owned_merchant(request.app.state.pool, user.id, merchant_id)


Business = Annotated[Merchant, Depends(business)]


def render(request: Request, merchant: Merchant | None, template: str, **ctx: Any) -> Response:
    """A page of the business dashboard: the section and the business's sub-navigation."""
    return pages.render(
        request, f"merchant/{template}", section="merchant", merchant=merchant, **ctx
    )


def base(merchant: Merchant) -> str:
    return f"/app/merchant/{merchant.id}"
