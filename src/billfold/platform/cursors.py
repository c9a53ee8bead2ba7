"""Paging cursors over a bigint key (a history's account sequence, a notification's or a
delivery's id): opaque to clients, a tag that says which listing gave it, and checked strictly
on the way back (ASCII digits only, at most 18: always a bigint)."""

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
