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
# KEYS: the balances' keys; ARGV: the TTL, then version, posted, pending debits and pending
# credits of each key in turn. One call stores a whole commit's balances.
_PUT_IF_NEWER = """
local ttl = ARGV[1]
local stored = 0
for i, key in ipairs(KEYS) do
    local at = 4 * (i - 1) + 1
    local version, posted = ARGV[at + 1], ARGV[at + 2]
    local debits, credits = ARGV[at + 3], ARGV[at + 4]
    local current = redis.call('HMGET', key, 'version', 'pending_debits', 'pending_credits')
    local newer = true
    if current[1] then
        local cached = tonumber(current[1])
        local pending = tonumber(current[2]) + tonumber(current[3])
        newer = cached < tonumber(version)
            or (cached == tonumber(version) and pending > tonumber(debits) + tonumber(credits))
    end
    if newer then
        redis.call('HSET', key, 'version', version, 'posted', posted,
                   'pending_debits', debits, 'pending_credits', credits)
        redis.call('EXPIRE', key, ttl)
        stored = stored + 1
    end
end
return stored
"""


def _key(account_id: int) -> str:
    return f"balance:{account_id}"


class BalanceCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._put = redis.register_script(_PUT_IF_NEWER)

    async def put_many(self, balances: list[AccountBalance]) -> None:
        """Store each balance unless a newer one is cached, all in one script call; Redis
        trouble is logged, not raised."""
        if not balances:
            return
        args: list[int] = [TTL_S]
        for b in balances:
            args += [b.version, b.posted_minor, b.pending_debits_minor, b.pending_credits_minor]
        try:
            await self._put(keys=[_key(b.account_id) for b in balances], args=args)
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
