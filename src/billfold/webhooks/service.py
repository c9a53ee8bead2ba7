"""What the webhooks context needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from billfold.config import Settings
from billfold.platform.crypto import KeyRing


@dataclass(frozen=True)
class Webhooks:
    """The pool, the settings, and the keys that seal the endpoints' signing secrets."""

    pool: asyncpg.Pool
    settings: Settings
    keys: KeyRing

    @classmethod
    def start(cls, pool: asyncpg.Pool, settings: Settings) -> Webhooks:
        return cls(pool, settings, KeyRing.from_settings(settings))
