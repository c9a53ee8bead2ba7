"""EMVCo QR codes, merchant-presented mode (EMV QRCPS-MPM), as Billfold writes and reads them.

A payload is a run of fields, each an ID (2 digits), a length (2 digits) and a value:

    00 payload format indicator, "01"
    01 point of initiation: "11" static (the payer types the amount), "12" dynamic (a session's)
    26 merchant account information, a template of its own: 00 the globally unique identifier
       of Billfold (GUID), 01 the merchant id
    52 merchant category code (4 digits)   53 currency (ISO 4217 numeric, "840")
    54 amount (dynamic only)               58 country (ISO 3166 alpha-2)
    59 merchant name (up to 25)            60 merchant city (up to 15)
    62 additional data, a template: 05 reference label (the checkout session, dynamic only)
    63 CRC-16/CCITT-FALSE (4 uppercase hex digits) over everything before it, "6304" included

Reading checks the CRC first, then every field: a payload of another network (no Billfold
template), a missing or malformed field, or an amount on a static code is refused with a 422
naming the field (`qr_payload.<id>`). Whether a dynamic code's amount agrees with its session
is the payment's to check (it has the session).

`image` draws a payload as a QR code (PNG or SVG, with segno: record 129).
"""

from __future__ import annotations

import binascii
import io
import re
import uuid
from dataclasses import dataclass

import segno

from billfold.platform.currency import format_amount
from billfold.platform.errors import ValidationFailed

GUID = "dev.billfold"
STATIC, DYNAMIC = "11", "12"
CURRENCIES = {"USD": "840"}
NAME_MAX, CITY_MAX = 25, 15
FIELD = "qr_payload"
# What the fields of a payload may hold: EMV's "ans" set (printable ASCII).
_ANS = re.compile(r"^[\x20-\x7e]+$")
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
_MAX_PAYLOAD = 512
# The images' media types by kind.
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
# Error correction M (15% of the code may be lost) for print and screens; 8 pixels a module,
# and the 4-module quiet zone the standard asks for.
ERROR_LEVEL, SCALE, BORDER = "m", 8, 4


@dataclass(frozen=True, slots=True)
class Payload:
    """What a merchant-presented code says: who is paid, and, dynamic, how much for which
    session."""

    merchant_id: uuid.UUID
    mcc: str
    currency: str
    country: str
    name: str
    city: str
    amount_minor: int | None = None
    session_id: str | None = None

    @property
    def dynamic(self) -> bool:
        return self.session_id is not None


def printable(text: str) -> bool:
    """Whether a code's field may hold `text` (EMV's "ans" set: printable ASCII)."""
    return bool(_ANS.match(text))


def crc16(text: str) -> str:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF) as 4 uppercase hex digits."""
    return f"{binascii.crc_hqx(text.encode('ascii'), 0xFFFF):04X}"


def encode(payload: Payload) -> str:
    """The payload's text, CRC included. Static without a session and an amount; dynamic with
    both. Raises ValueError for a value the format cannot hold (the merchant's profile and the
    session are checked before they get here)."""
    if (payload.session_id is None) != (payload.amount_minor is None):
        raise ValueError("a dynamic code has both a session and an amount, a static one neither")
    account = _field("00", GUID) + _field("01", str(payload.merchant_id))
    text = _field("00", "01") + _field("01", DYNAMIC if payload.dynamic else STATIC)
    text += _field("26", account) + _field("52", payload.mcc)
    text += _field("53", CURRENCIES[payload.currency])
    if payload.amount_minor is not None:
        text += _field("54", _decimal(payload.amount_minor, payload.currency))
    text += _field("58", payload.country) + _field("59", payload.name[:NAME_MAX])
    text += _field("60", payload.city[:CITY_MAX])
    if payload.session_id is not None:
        text += _field("62", _field("05", payload.session_id))
    text += "6304"
    return text + crc16(text)


def decode(text: str) -> Payload:
    """The payload a code's text says, checked; ValidationFailed naming the field otherwise."""
    if not isinstance(text, str) or not 0 < len(text) <= _MAX_PAYLOAD or not _ANS.match(text):
        raise _refused(None, "is not the text of a QR code (printable ASCII, at most 512)")
    if len(text) < 8 or text[-8:-4] != "6304":
        raise _refused("63", "has no CRC at its end")
    if crc16(text[:-4]) != text[-4:].upper():
        raise _refused("63", "fails its CRC: the code was misread or changed")
    fields = _fields(text[:-8], None)
    if fields.get("00") != "01":
        raise _refused("00", "must be the payload format 01")
    initiation = _required(fields, "01")
    if initiation not in (STATIC, DYNAMIC):
        raise _refused("01", "must be 11 (static) or 12 (dynamic)")
    merchant_id = _merchant(fields)
    mcc = _required(fields, "52")
    if not (len(mcc) == 4 and mcc.isascii() and mcc.isdigit()):
        raise _refused("52", "must be a 4-digit merchant category code")
    numeric = _required(fields, "53")
    currency = next((c for c, n in CURRENCIES.items() if n == numeric), None)
    if currency is None:
        raise _refused("53", f"names a currency Billfold does not take ({numeric!r})")
    country = _required(fields, "58")
    if not (len(country) == 2 and country.isascii() and country.isalpha() and country.isupper()):
        raise _refused("58", "must be a 2-letter country code")
    name, city = _required(fields, "59"), _required(fields, "60")
    if len(name) > NAME_MAX or len(city) > CITY_MAX:
        raise _refused("59" if len(name) > NAME_MAX else "60", "is too long")
    amount, session = _amount(fields), _session(fields)
    if initiation == STATIC and (amount is not None or session is not None):
        raise _refused("54" if amount is not None else "62", "has no place in a static code")
    if initiation == DYNAMIC and (amount is None or session is None):
        raise _refused("54" if amount is None else "62", "is required in a dynamic code")
    return Payload(merchant_id, mcc, currency, country, name, city, amount, session)


def _field(tag: str, value: str) -> str:
    if not value or len(value) > 99 or not _ANS.match(value):
        raise ValueError(f"field {tag} cannot hold {value!r}")
    return f"{tag}{len(value):02d}{value}"


def _fields(text: str, template: str | None) -> dict[str, str]:
    """The fields of `text` by ID, each once, each length honest."""
    found: dict[str, str] = {}
    at = 0
    while at < len(text):
        head = text[at : at + 4]
        where = f"{template}.{head[:2]}" if template else head[:2]
        if len(head) < 4 or not (head.isascii() and head.isdigit()):
            raise _refused(template, f"has a malformed field at character {at}")
        length = int(head[2:])
        value = text[at + 4 : at + 4 + length]
        if length == 0 or len(value) != length:
            raise _refused(where, "has a length its value does not have")
        if head[:2] in found:
            raise _refused(where, "appears twice")
        found[head[:2]] = value
        at += 4 + length
    return found


def _required(fields: dict[str, str], tag: str) -> str:
    value = fields.get(tag)
    if value is None:
        raise _refused(tag, "is missing")
    return value


def _merchant(fields: dict[str, str]) -> uuid.UUID:
    ours = None
    for tag in (f"{n:02d}" for n in range(26, 52)):
        if tag in fields:
            account = _fields(fields[tag], tag)
            if account.get("00", "").lower() == GUID:
                ours = (tag, account)
                break
    if ours is None:
        raise _refused("26", "holds no Billfold merchant account: the code is another network's")
    tag, account = ours
    try:
        return uuid.UUID(_required_in(account, tag, "01"))
    except ValueError:
        raise _refused(f"{tag}.01", "is not a merchant id") from None


def _required_in(fields: dict[str, str], template: str, tag: str) -> str:
    value = fields.get(tag)
    if value is None:
        raise _refused(f"{template}.{tag}", "is missing")
    return value


def _amount(fields: dict[str, str]) -> int | None:
    text = fields.get("54")
    if text is None:
        return None
    if not _AMOUNT.match(text) or text in ("0", "0.0", "0.00"):
        raise _refused("54", f"must be an amount above zero with at most 2 decimals ({text!r})")
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def _session(fields: dict[str, str]) -> str | None:
    data = fields.get("62")
    if data is None:
        return None
    return _fields(data, "62").get("05")


def image(text: str, kind: str) -> bytes:
    """The payload drawn as a QR code: `kind` png or svg (IMAGE_TYPES)."""
    if kind not in IMAGE_TYPES:
        raise ValueError(f"no image of kind {kind!r}")
    # boost_error off: the level stays M, as documented, whatever room the version has.
    code = segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)
    out = io.BytesIO()
    code.save(out, kind=kind, scale=SCALE, border=BORDER)
    return out.getvalue()


def _decimal(minor: int, currency: str) -> str:
    if minor <= 0:
        raise ValueError("a code's amount is above zero")
    return format_amount(minor, currency)


def _refused(tag: str | None, why: str) -> ValidationFailed:
    field = f"{FIELD}.{tag}" if tag else FIELD
    what = f"field {tag} of the QR payload" if tag else "the QR payload"
    return ValidationFailed(f"{what} {why}", field=field)
