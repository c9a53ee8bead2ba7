"""Fixed-cost rate limits in Redis (GCRA), checked and counted in one round trip.

Each limit allows a burst of `requests` and then one request every `period_s / requests`, so the
(requests + 1)th request in a burst is refused and a steady client gets `requests` per period.
A limit costs one Redis key holding one number, whatever its size.

Redis holds no money, so it is never a reason to refuse one: if it cannot be reached, requests go
through unthrottled and a warning is logged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.platform.errors import TooManyRequests
from billfold.platform.logging import get_logger

log = get_logger("billfold.ratelimit")
KEY_PREFIX = "rate-limit"
# While Redis is down every request would log; one line per this many seconds says enough.
WARNING_INTERVAL_S = 10.0

# KEYS[i] allows ARGV[2i-1] requests per ARGV[2i] microseconds. A key holds its theoretical
# arrival time (TAT) in microseconds of Redis's clock, so that every worker shares one clock. The
# interval is rounded up and the burst is a whole number of intervals, so that exactly `requests`
# pass at once. A request counts against every key or, if any key refuses it, against none.
# Returns {0, 0} when allowed, else {i, wait_us} for the key that frees last.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_tats = {}
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local requests = tonumber(ARGV[2 * i - 1])
  local interval = math.ceil(tonumber(ARGV[2 * i]) / requests)
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  local allow_at = tat + interval - interval * requests
  if allow_at > now and allow_at - now > wait then
    refused, wait = i, allow_at - now
  end
  next_tats[i] = tat + interval
end
if refused > 0 then
  return {refused, wait}
end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.ceil((next_tats[i] - now) / 1000)
  redis.call('SET', key, string.format('%.0f', next_tats[i]), 'PX', ttl_ms)
end
return {0, 0}
"""

_last_warning_at = -math.inf


class RateLimited(TooManyRequests):
    code = "rate_limited"


@dataclass(frozen=True)
class Limit:
    """At most `requests` per `period_s` for one `subject` (a user id, an address) of one limit.

    `name` (say `money_per_user`) is named in the 429. Zero `requests` turns the limit off.
    """

    name: str
    subject: str
    requests: int
    period_s: int

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}:{self.name}:{self.subject}"


async def hit(redis: Redis, *limits: Limit) -> None:
    """Count one request against every limit, atomically, or raise RateLimited naming the limit
    that frees last (and count it against none)."""
    active = [limit for limit in limits if limit.requests > 0]
    if not active:
        return
    script = redis.register_script(_GCRA)
    args: list[int] = []
    for limit in active:
        args += [limit.requests, limit.period_s * 1_000_000]
    try:
        refused, wait_us = await script(keys=[limit.key for limit in active], args=args)
    except (RedisError, OSError) as error:
        _warn_unthrottled(error)
        return
    if refused:
        limit = active[int(refused) - 1]
        retry_after_s = max(1, math.ceil(int(wait_us) / 1_000_000))
        raise RateLimited(
            f"more than {limit.requests} requests in {limit.period_s} seconds "
            f"({limit.name}); retry in {retry_after_s} seconds",
            limit=limit.name,
            limit_requests=limit.requests,
            period_s=limit.period_s,
            retry_after_s=retry_after_s,
        )


def _warn_unthrottled(error: Exception) -> None:
    global _last_warning_at
    now = time.monotonic()
    if now - _last_warning_at >= WARNING_INTERVAL_S:
        _last_warning_at = now
        log.warning("rate limits unavailable; requests go unthrottled", error=str(error))
