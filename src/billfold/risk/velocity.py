"""Velocity counters in Redis: how much a user, a recipient and a device have done lately.

One Lua script records a movement and reads every window in one round trip, atomically, so
two movements at the same moment each see the other at most once, never neither.

- Exact sliding windows (sorted sets of timestamps) for what the hard rules count: a sender's
  movements in the last minute and hour, the distinct senders to a recipient in the last day
  and how many of them are new accounts.
- Buckets (hashes) for the longer sums and counts: 24 hours in hour buckets, 7 days in day
  buckets (reading 168 hour buckets on every movement cost Redis more than the rest of the
  script), so exact to the hour and to the day: what the model and the softer rules read.

Redis is never the source of truth for money: losing these counters makes the risk engine
forget recent activity, nothing more. Every key expires after its longest window.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

# KEYS: sender times, sender hours, recipient senders, recipient new senders, recipient hours,
#       device times, device hours
# ARGV: now_ms, event id, amount_minor, sender id, sender is new (0/1), has recipient (0/1),
#       has device (0/1)
_OBSERVE = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
local amount = tonumber(ARGV[3])
local hour = math.floor(now / 3600000)
local day = math.floor(now / 86400000)

local function add_time(key, keep_ms)
    local added = redis.call('ZADD', key, now, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep_ms)
    redis.call('PEXPIRE', key, keep_ms)
    return added
end

-- Only a movement seen for the first time adds to the buckets: a retry counts once.
local fresh = 0
local function add_hour(key)
    if fresh == 1 then
        redis.call('HINCRBY', key, 'c' .. hour, 1)
        redis.call('HINCRBY', key, 's' .. hour, amount)
        redis.call('HINCRBY', key, 'C' .. day, 1)
        redis.call('HINCRBY', key, 'S' .. day, amount)
    end
    redis.call('PEXPIRE', key, 691200000)
end

-- Sums of the buckets `span` deep: hour buckets (c, s) or day buckets (C, S).
local function buckets(key, span, count_field, sum_field, current)
    local fields = {}
    for b = current - span + 1, current do
        fields[#fields + 1] = count_field .. b
        fields[#fields + 1] = sum_field .. b
    end
    local values = redis.call('HMGET', key, unpack(fields))
    local count, total = 0, 0
    for i = 1, #values, 2 do
        count = count + tonumber(values[i] or 0)
        total = total + tonumber(values[i + 1] or 0)
    end
    return {count, total}
end

local function hours(key, span)
    return buckets(key, span, 'c', 's', hour)
end

local function days(key, span)
    return buckets(key, span, 'C', 'S', day)
end

fresh = add_time(KEYS[1], 3600000)
add_hour(KEYS[2])
local out = {
    redis.call('ZCOUNT', KEYS[1], now - 60000, '+inf'),
    redis.call('ZCOUNT', KEYS[1], now - 3600000, '+inf'),
}
local last24, week = hours(KEYS[2], 24), days(KEYS[2], 7)
out[#out + 1] = last24[1]; out[#out + 1] = last24[2]
out[#out + 1] = week[1]; out[#out + 1] = week[2]

if ARGV[6] == '1' then
    redis.call('ZADD', KEYS[3], now, ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 86400000)
    redis.call('PEXPIRE', KEYS[3], 86400000)
    if ARGV[5] == '1' then
        redis.call('ZADD', KEYS[4], now, ARGV[4])
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 86400000)
    redis.call('PEXPIRE', KEYS[4], 86400000)
    add_hour(KEYS[5])
    local rday = hours(KEYS[5], 24)
    out[#out + 1] = redis.call('ZCARD', KEYS[3])
    out[#out + 1] = redis.call('ZCARD', KEYS[4])
    out[#out + 1] = rday[1]; out[#out + 1] = rday[2]
else
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
end

if ARGV[7] == '1' then
    redis.call('ZADD', KEYS[6], now, id)
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - 3600000)
    redis.call('PEXPIRE', KEYS[6], 3600000)
    add_hour(KEYS[7])
    local dday = hours(KEYS[7], 24)
    out[#out + 1] = redis.call('ZCOUNT', KEYS[6], now - 3600000, '+inf')
    out[#out + 1] = dday[1]; out[#out + 1] = dday[2]
else
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
end
return out
"""


@dataclass(frozen=True)
class Observation:
    """One movement, as the counters see it."""

    event_id: str  # unique per movement: recorded twice (a retry), it counts once
    sender_id: str
    amount_minor: int
    now_ms: int
    recipient_id: str | None = None
    device_id: str | None = None
    sender_is_new: bool = False


@dataclass(frozen=True)
class Counters:
    """The windows after recording the movement (it counts itself)."""

    sender_count_1m: int
    sender_count_1h: int
    sender_count_24h: int
    sender_sum_24h_minor: int
    sender_count_7d: int
    sender_sum_7d_minor: int
    recipient_senders_24h: int
    recipient_new_senders_24h: int
    recipient_count_24h: int
    recipient_sum_24h_minor: int
    device_count_1h: int
    device_count_24h: int
    device_sum_24h_minor: int


class Velocity:
    def __init__(self, redis: Redis, prefix: str = "vel") -> None:
        self._observe = redis.register_script(_OBSERVE)
        self._prefix = prefix

    async def observe(self, event: Observation) -> Counters:
        """Record the movement and read every window, in one round trip."""
        p = self._prefix
        recipient = event.recipient_id or "-"
        device = event.device_id or "-"
        # One Redis, not a cluster: the script reads keys of three owners at once.
        keys = [
            f"{p}:u:{event.sender_id}:t",
            f"{p}:u:{event.sender_id}:h",
            f"{p}:r:{recipient}:s",
            f"{p}:r:{recipient}:n",
            f"{p}:r:{recipient}:h",
            f"{p}:d:{device}:t",
            f"{p}:d:{device}:h",
        ]
        args: list[int | str] = [
            event.now_ms,
            event.event_id,
            event.amount_minor,
            event.sender_id,
            int(event.sender_is_new),
            int(event.recipient_id is not None),
            int(event.device_id is not None),
        ]
        values = await self._observe(keys=keys, args=args)
        return Counters(*(int(v) for v in values))
