"""Access tokens: the verifying reader and its memory of verified tokens."""

from __future__ import annotations

import time
import uuid

import pytest

from billfold.platform import security
from billfold.platform.security import TokenReader, Unauthenticated, issue_token

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
