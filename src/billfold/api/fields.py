"""The API's value types: each input's documented form (pattern, length, range, format), in
one place, for the routers' bodies, query and path parameters.

Most values are judged by the context that reads them, which refuses a bad one in its own terms,
naming it (the amount grammar of wallet.money, a handle's rules in wallet.handles, a PIN's in
wallet.pins): their rule is stated here for the schema alone (`json_schema_extra`), built from
the context's own constants, so that pydantic does not refuse them first in other words. Lengths
that nothing else checks are pydantic's to enforce (`max_length`). What a schema allows, the API
accepts as to form; it may accept a little more (spaces around a handle, a username in capitals,
a uuid without its dashes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query
from pydantic import Field
from pydantic.config import JsonDict

from billfold.funding.bank_accounts import ACCOUNT_TYPES, MAX_HOLDER_NAME
from billfold.funding.cards import MAX_TOKEN_LENGTH
from billfold.platform.currency import WALLET_CURRENCY
from billfold.risk.operators import MAX_REASON
from billfold.wallet import history
from billfold.wallet.handles import MAX_EMAIL_LENGTH
from billfold.wallet.money import MAX_AMOUNT_CHARS, amount_pattern, amount_schema, parse_amount
from billfold.wallet.pins import MAX_PIN_DIGITS, MIN_PIN_DIGITS
from billfold.wallet.transfers import MAX_NOTE_LENGTH
from billfold.wallet.users import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from billfold.webhooks import endpoints as webhook_endpoints
from billfold.webhooks.urls import MAX_URL_CHARS

UUID = {"format": "uuid"}
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# The longest id text read (a uuid is 36 characters; longer is refused unread).
ID_MAX = 64
# Text with something in it: a reason, a name (spaces alone are refused).
NOT_BLANK = r"\S"
# A handle: a username, an email address or a phone number (as wallet.handles reads them).
HANDLE_MAX = MAX_EMAIL_LENGTH
IDEMPOTENCY_KEY_MAX = 255
PASSWORD_MAX = MAX_PASSWORD_LENGTH
PIN_MAX = 16  # longer is refused unread; the rule is PIN_PATTERN
PIN_PATTERN = f"^[0-9]{{{MIN_PIN_DIGITS},{MAX_PIN_DIGITS}}}$"
CURSOR_MAX = 64
CURSOR = {"pattern": "^[A-Za-z0-9_-]+$"}

IDEMPOTENCY_KEY = (
    "Makes retries safe: the same key and body get the first answer. Required, here or as "
    "`idempotency_key` in the body."
)

# --- headers -----------------------------------------------------------------------------------

IdempotencyKeyHeader = Annotated[
    str | None, Header(max_length=IDEMPOTENCY_KEY_MAX, description=IDEMPOTENCY_KEY)
]
# The same header as an endpoint that reads its request through api.direct documents it.
IDEMPOTENCY_HEADER = ("idempotency-key", IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_KEY)

# --- bodies ------------------------------------------------------------------------------------

UserIdIn = Annotated[str, Field(max_length=ID_MAX, json_schema_extra=UUID)]
Recipient = Annotated[
    str,
    Field(max_length=HANDLE_MAX, description="A username, email address or phone number."),
]
Amount = Annotated[
    Any,
    # Any JSON value: parse_amount decides, so that every bad amount is an `invalid_amount`.
    Field(
        description="In dollars: a decimal string ('50.00'), or a JSON number written the same "
        "way (no exponent); more than zero, at most two decimal places.",
        json_schema_extra=amount_schema(WALLET_CURRENCY),
    ),
]
Note = Annotated[str | None, Field(json_schema_extra={"maxLength": MAX_NOTE_LENGTH})]
IdempotencyKeyIn = Annotated[
    str | None,
    Field(
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Instead of the Idempotency-Key header (which wins when both are given).",
    ),
]
SourceIdIn = Annotated[str | None, Field(max_length=ID_MAX, json_schema_extra=UUID)]
Pin = Annotated[
    str,
    Field(
        max_length=PIN_MAX,
        description=f"{MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits.",
        json_schema_extra={"pattern": PIN_PATTERN},
    ),
]
Password = Annotated[str | None, Field(max_length=PASSWORD_MAX)]
Reason = Annotated[
    str,
    Field(
        # Runs of spaces count as one (risk.operators.check_reason).
        max_length=2000,
        description="Why: kept in the audit trail.",
        json_schema_extra={"maxLength": MAX_REASON, "pattern": NOT_BLANK},
    ),
]

# An add-funds names exactly one source; a cash-out, a bank account.
ONE_SOURCE: JsonDict = {
    "oneOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("bank_account_id", "card_id")
    ]
}
TO_A_BANK: JsonDict = {
    "allOf": [
        {"required": ["bank_account_id"], "properties": {"bank_account_id": {"type": "string"}}}
    ]
}

# Sign-up: wallet.handles and wallet.users judge them (a handle is normalised: spaces around it
# and capitals are taken, a phone number without its country code is a US one).
Username = Annotated[
    str,
    Field(
        description="3 to 30 of a-z, 0-9, '_' and '.' (a leading '@' is dropped).",
        json_schema_extra={"pattern": "^@?[A-Za-z0-9_.]{3,30}$"},
    ),
]
Email = Annotated[
    str,
    Field(
        json_schema_extra={
            "maxLength": MAX_EMAIL_LENGTH,
            "pattern": r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
        }
    ),
]
Phone = Annotated[
    str,
    Field(
        description="A valid phone number, in E.164 (+14155550123); without a country code, a US "
        "number.",
        json_schema_extra={"pattern": r"^[+0-9 ().-]{7,25}$"},
    ),
]
NewPassword = Annotated[
    str,
    Field(json_schema_extra={"minLength": MIN_PASSWORD_LENGTH, "maxLength": MAX_PASSWORD_LENGTH}),
]

# Bank accounts and cards: funding.bank_accounts and funding.cards judge them.
RoutingNumber = Annotated[
    str,
    Field(
        max_length=32,
        description="A 9-digit ABA routing number (its check digit right).",
        json_schema_extra={"pattern": "^[0-9]{9}$"},
    ),
]
AccountNumber = Annotated[str, Field(max_length=32, json_schema_extra={"pattern": "^[0-9]{4,17}$"})]
HolderName = Annotated[
    str,
    Field(
        max_length=200,
        json_schema_extra={"maxLength": MAX_HOLDER_NAME, "pattern": NOT_BLANK},
    ),
]
AccountType = Annotated[str, Field(max_length=20, json_schema_extra={"enum": list(ACCOUNT_TYPES)})]
Amounts = Annotated[
    list[Any],
    Field(
        description="The two micro-deposit amounts, e.g. ['0.32', '0.45'].",
        json_schema_extra={
            "items": amount_schema(WALLET_CURRENCY),
            "minItems": 2,
            "maxItems": 2,
        },
    ),
]
CardToken = Annotated[str, Field(max_length=MAX_TOKEN_LENGTH, json_schema_extra={"minLength": 1})]

# --- path parameters ---------------------------------------------------------------------------
# Read as text by their contexts: an id in another form names nothing (404).

UserIdPath = Annotated[str, Path(json_schema_extra=UUID)]
UuidPath = Annotated[str, Path(json_schema_extra=UUID)]
TransferIdPath = Annotated[
    str,
    Path(
        description="A movement's id: a transfer's number, or an add-funds' or cash-out's uuid.",
        json_schema_extra={"pattern": f"^([0-9]{{1,18}}|{_UUID})$"},
    ),
]
ReviewIdPath = Annotated[
    str,
    Path(
        description="A held movement's `review_id`: a transfer's number, an add-funds' or "
        "cash-out's uuid, or `user:` and the id of a user the risk engine froze.",
        json_schema_extra={"pattern": f"^([0-9]{{1,18}}|(user:)?{_UUID})$"},
    ),
]

# --- query parameters --------------------------------------------------------------------------

AmountQuery = Annotated[
    str | None,
    # The pattern is documented, not enforced here: parse_amount refuses a bad amount itself,
    # as `invalid_amount` naming it, like every amount in the API.
    Query(
        max_length=MAX_AMOUNT_CHARS,
        description="An amount in dollars, like '12.50'.",
        json_schema_extra={"pattern": amount_pattern(WALLET_CURRENCY)},
    ),
]
_MOMENT = "An ISO date or timestamp (naive: UTC)"
MomentFrom = Annotated[
    str | None,
    Query(alias="from", max_length=40, description=f"{_MOMENT}: from its start, inclusive."),
]
MomentTo = Annotated[
    str | None,
    Query(max_length=40, description=f"{_MOMENT}: up to it, inclusive (a date: its whole day)."),
]
HistoryTypes = Annotated[
    list[str] | None,
    Query(alias="type", max_length=20, json_schema_extra={"items": {"enum": list(history.TYPES)}}),
]
Direction = Annotated[str | None, Query(max_length=3, json_schema_extra={"enum": ["in", "out"]})]
HistoryStatus = Annotated[
    str | None, Query(max_length=20, json_schema_extra={"enum": list(history.STATUSES)})
]
HandleQuery = Annotated[
    str | None,
    Query(max_length=HANDLE_MAX, description="A username, email address or phone number."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=CURSOR_MAX, description="A `next_cursor`.", json_schema_extra=CURSOR),
]

# --- webhook endpoints (webhooks.endpoints and webhooks.urls judge them) ----------------------

WebhookUrl = Annotated[
    str,
    Field(
        max_length=MAX_URL_CHARS,
        description="Where deliveries are POSTed: an https URL on a public address.",
        json_schema_extra={"format": "uri", "pattern": "^https?://"},
    ),
]
EventTypes = Annotated[
    list[str],
    Field(
        max_length=len(webhook_endpoints.KINDS) + 1,
        description="Kinds of the event catalogue (docs/events.md), or `*` for every kind.",
        json_schema_extra={
            "minItems": 1,
            "items": {"enum": [webhook_endpoints.ALL, *webhook_endpoints.KINDS]},
        },
    ),
]
WebhookDescription = Annotated[
    str, Field(max_length=1000, json_schema_extra={"maxLength": webhook_endpoints.MAX_DESCRIPTION})
]
DeliveryIdPath = Annotated[str, Path(json_schema_extra={"pattern": "^[0-9]{1,18}$"})]


# --- a history's filters (a wallet's, a merchant account's) ----------------------------------


def history_query(
    from_: MomentFrom = None,
    to: MomentTo = None,
    type_: HistoryTypes = None,
    direction: Direction = None,
    status: HistoryStatus = None,
    min_amount: AmountQuery = None,
    max_amount: AmountQuery = None,
    counterparty: HandleQuery = None,
    q: Annotated[str | None, Query(max_length=history.MAX_QUERY_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=history.MAX_LIMIT)] = 50,
    cursor: Cursor = None,
) -> history.HistoryQuery:
    """A history's filters, read from the query string (a wallet's, a merchant account's)."""
    start = history.parse_moment(from_, "from", end_of_day=False)[0] if from_ else None
    end, end_inclusive = history.parse_moment(to, "to", end_of_day=True) if to else (None, True)
    return history.HistoryQuery(
        start=start,
        end=end,
        end_inclusive=end_inclusive,
        types=tuple(type_ or ()),
        direction=direction,
        status=status,
        min_amount_minor=_amount(min_amount, "min_amount"),
        max_amount_minor=_amount(max_amount, "max_amount"),
        counterparty=counterparty,
        text=q,
        limit=limit,
        cursor=cursor,
    )


HistoryParams = Annotated[history.HistoryQuery, Depends(history_query)]


def _amount(raw: str | None, field: str) -> int | None:
    return None if raw is None else parse_amount(raw, WALLET_CURRENCY, field)
