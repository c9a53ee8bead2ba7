"""What `billfold merchants ...` runs on: a pool of its own on the settings' database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path

from billfold.config import Settings
from billfold.merchants.sales import Totals, write_settlement
from billfold.platform.db import create_pool
from billfold.platform.embedded import ensure_database


async def settlement(settings: Settings, day: date, out: Path) -> dict[uuid.UUID, Totals]:
    """`billfold merchants settlement`: the day's report written to `out`."""
    dsn = await asyncio.to_thread(ensure_database, settings)
    pool = await create_pool(dsn, settings)
    try:
        return await write_settlement(pool, day, out)
    finally:
        await pool.close()
