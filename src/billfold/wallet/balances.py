"""Wallet balances cached in Redis, kept current after each commit.

The ledger hands over every committed balance with its account version. A Lua script stores it
only if its version is newer than the one cached, so a slow writer (or a reader filling a miss
from the database) can never put an older balance over a newer one. Reads use the cache; money
is never authorised from it: the engine reads balances under lock in PostgreSQL.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.ledger.model import AccountBalance

log = logging.getLogger(__name__)

# Keys expire after a day without writes, so the cache holds the active wallets only.
TTL_S = 86_400
# Newer means a higher version, or the same version with less money pending: an account's
# version counts its entries, and the one change that writes no entry is a void, which only
# ever lowers what is pending. So (version, -pending) orders an account's states.
_PUT_IF_NEWER = """
local current = redis.call('HMGET', KEYS[1], 'version', 'pending_debits', 'pending_credits')
if current[1] then
    local version, new_version = tonumber(current[1]), tonumber(ARGV[1])
    if version > new_version then
        return 0
    end
    local pending = tonumber(current[2]) + tonumber(current[3])
    if version == new_version and pending <= tonumber(ARGV[3]) + tonumber(ARGV[4]) then
        return 0
    end
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'posted', ARGV[2],
           'pending_debits', ARGV[3], 'pending_credits', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _key(account_id: int) -> str:
    return f"balance:{account_id}"


class BalanceCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._put = redis.register_script(_PUT_IF_NEWER)

    async def put_many(self, balances: list[AccountBalance]) -> None:
        """Store each balance unless a newer one is cached; Redis trouble is logged, not raised."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for b in balances:
                    await self._put(
                        keys=[_key(b.account_id)],
                        args=[
                            b.version,
                            b.posted_minor,
                            b.pending_debits_minor,
                            b.pending_credits_minor,
                            TTL_S,
                        ],
                        client=pipe,
                    )
                await pipe.execute()
        except RedisError as error:
            log.warning("balance cache not updated: %s", error)

    async def get(self, account_id: int) -> AccountBalance | None:
        try:
            cached = await self._redis.hgetall(_key(account_id))
        except RedisError:
            return None
        if not cached:
            return None
        return AccountBalance(
            account_id,
            int(cached["posted"]),
            int(cached["pending_debits"]),
            int(cached["pending_credits"]),
            int(cached["version"]),
        )
