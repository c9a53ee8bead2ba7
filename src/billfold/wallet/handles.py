"""Handles a person is found by: a username, an email address or a phone number."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from billfold.platform.errors import ValidationFailed

USERNAME = re.compile(r"[a-z0-9_.]{3,30}")
# Deliberately loose: one @, something on each side, a dot in the domain, no spaces. Whether the
# address works is for a confirmation email to find out, not a regular expression.
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_EMAIL_LENGTH = 254
DEFAULT_REGION = "US"
HANDLE_KINDS = ("username", "email", "phone")


@dataclass(frozen=True)
class Handle:
    kind: str  # "username", "email" or "phone"
    value: str


def normalise_username(raw: str) -> str:
    value = raw.strip().lower().removeprefix("@")
    if not USERNAME.fullmatch(value):
        raise ValidationFailed(
            f"username '{raw[:40]}' must be 3 to 30 of a-z, 0-9, '_' and '.'", field="username"
        )
    return value


def normalise_email(raw: str) -> str:
    value = raw.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL.fullmatch(value):
        raise ValidationFailed(f"email '{raw[:60]}' is not an email address", field="email")
    return value


def normalise_phone(raw: str) -> str:
    """The number in E.164 (+14155550123); numbers without a country code are taken as US."""
    try:
        number = phonenumbers.parse(raw.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationFailed(f"phone '{raw[:40]}' is not a valid phone number", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_handle(raw: str) -> Handle:
    """Which handle a recipient string is: an email has '@' inside, a phone is mostly digits,
    anything else is a username (a leading '@' allowed)."""
    text = raw.strip()
    if "@" in text.lstrip("@"):
        return Handle("email", normalise_email(text))
    if text and re.fullmatch(r"[+0-9 ().-]{7,25}", text):
        return Handle("phone", normalise_phone(text))
    return Handle("username", normalise_username(text))
