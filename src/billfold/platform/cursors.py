"""Paging cursors over a bigint key (a history's account sequence, a notification's or a
delivery's id), or a pair of them (a moment in microseconds and the id breaking its ties):
opaque to clients, a tag that says which listing gave it, and checked strictly on the way back
(ASCII digits only, at most 18 each: always a bigint)."""

from __future__ import annotations

import base64
import binascii

from billfold.platform.errors import ValidationFailed
from billfold.platform.strict import ascii_digits, shown

MAX_DIGITS = 18


def encode(tag: str, key: int) -> str:
    """The cursor of `key` for the listing `tag` (one letter)."""
    return base64.urlsafe_b64encode(f"{tag}{key}".encode()).decode().rstrip("=")


def decode(tag: str, cursor: str) -> int:
    """The key of a cursor `encode(tag, ...)` gave; a 422 naming it for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(tag) or not ascii_digits(text[len(tag) :], MAX_DIGITS):
            raise ValueError(text)
        return int(text[len(tag) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            f"cursor {shown(cursor)} is not one this API gave out", field="cursor"
        ) from None


def encode_pair(tag: str, first: int, second: int) -> str:
    """The cursor of the position (`first`, `second`) for the listing `tag`."""
    return base64.urlsafe_b64encode(f"{tag}{first}.{second}".encode()).decode().rstrip("=")


def decode_pair(tag: str, cursor: str) -> tuple[int, int]:
    """The position a cursor `encode_pair(tag, ...)` gave; a 422 naming it for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        first, dot, second = text[len(tag) :].partition(".")
        if not text.startswith(tag) or not dot:
            raise ValueError(text)
        if not (ascii_digits(first, MAX_DIGITS) and ascii_digits(second, MAX_DIGITS)):
            raise ValueError(text)
        return int(first), int(second)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            f"cursor {shown(cursor)} is not one this API gave out", field="cursor"
        ) from None
