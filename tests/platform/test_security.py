"""Access tokens (the verifying reader and its memory of verified tokens) and device tokens."""

from __future__ import annotations

import time
import uuid

import pytest

from billfold.platform import security
from billfold.platform.security import (
    DeviceToken,
    TokenReader,
    Unauthenticated,
    device_key,
    issue_token,
    new_device_id,
    read_device_token,
    sign_device,
)

KEY = "k" * 48


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token read once is found again without its signature check, but not past its expiry."""
    user_id = uuid.uuid4()
    reader = TokenReader(KEY)
    token = issue_token(user_id, KEY, 60)
    assert reader.read(token) == user_id
    assert reader.read(token) == user_id
    later = time.time() + 61
    monkeypatch.setattr(security.time, "time", lambda: later)
    with pytest.raises(Unauthenticated, match="expired"):
        reader.read(token)


def test_only_the_verified_token_is_remembered() -> None:
    """A token signed with another key, or altered, is refused even after a good one was read."""
    user_id = uuid.uuid4()
    reader = TokenReader(KEY)
    good = issue_token(user_id, KEY, 60)
    reader.read(good)
    forged = issue_token(user_id, "x" * 48, 60)
    altered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    for token in (forged, altered):
        with pytest.raises(Unauthenticated, match="not valid"):
            reader.read(token)


def test_a_device_token_names_its_user_and_device_only_when_signed_by_our_key() -> None:
    """A token reads back as the user and device it was signed for; a changed signature, a
    changed user or device, another key's token, an unsigned value and a non-canonical user
    id all read as None."""
    key, user, other = device_key("k" * 48), uuid.uuid4(), uuid.uuid4()
    token = sign_device(key, user, "phone-1")
    assert read_device_token(key, token) == DeviceToken(user, "phone-1")
    version, user_hex, device, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    forged = [
        f"{version}.{user_hex}.{device}.{flipped}",
        f"{version}.{other.hex}.{device}.{signature}",
        f"{version}.{user_hex}.phone-2.{signature}",
        sign_device(device_key("j" * 48), user, "phone-1"),
        "phone-1",
        f"{version}.{user}.{device}.{signature}",  # the id with hyphens: not the signed text
        "",
    ]
    assert [read_device_token(key, value) for value in forged] == [None] * len(forged)


def test_device_ids_are_random_and_the_device_key_is_not_the_secret_key() -> None:
    """Two new device ids differ (128 random bits each); the device key is derived, so a token
    signed with the secret key itself does not verify."""
    assert new_device_id() != new_device_id()
    user = uuid.uuid4()
    raw = sign_device(("k" * 48).encode(), user, "phone-1")
    assert read_device_token(device_key("k" * 48), raw) is None
