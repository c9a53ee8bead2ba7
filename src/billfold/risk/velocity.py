"""Velocity counters in Redis: the exact sliding windows the hard rules count.

One Lua script records a movement and reads every window in one round trip, atomically, so
two movements at the same moment each see the other at most once, never neither: a sender's
movements in the last minute and hour, and the distinct senders, and new-account senders, to a
recipient in the last day (sorted sets of timestamps). The model's longer windows are computed
from PostgreSQL by the training code (risk.serving), not from counters here; the hour and day
buckets and per-device counters that once fed them cost Redis more than the rest together and
are gone.

The same call can first claim a request's idempotency key as in flight (the transfer path's
mark, see wallet.risk.claim_key): a request whose key another one holds is neither counted nor
scored, and the transfer path spends one Redis round trip, not two.

Redis is never the source of truth for money: losing these counters makes the risk engine
forget recent activity, nothing more. Every key expires after its window.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from billfold.wallet.risk import KeyInFlight

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# KEYS: sender times, recipient senders, recipient new senders[, the key to claim]
# ARGV: now_ms, event id, sender id, sender is new (0/1), has recipient (0/1)[, claim TTL ms]
# Returns the four windows, or {-1} when the key to claim is held already (nothing counted).
_OBSERVE = """
if KEYS[4] and not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[6]) then
    return {-1}
end
local now = tonumber(ARGV[1])

redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
redis.call('PEXPIRE', KEYS[1], 3600000)
local out = {
    redis.call('ZCOUNT', KEYS[1], now - 60000, '+inf'),
    redis.call('ZCARD', KEYS[1]),
}
if ARGV[5] == '1' then
    redis.call('ZADD', KEYS[2], now, ARGV[3])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 86400000)
    redis.call('PEXPIRE', KEYS[2], 86400000)
    if ARGV[4] == '1' then
        redis.call('ZADD', KEYS[3], now, ARGV[3])
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 86400000)
    redis.call('PEXPIRE', KEYS[3], 86400000)
    out[3] = redis.call('ZCARD', KEYS[2])
    out[4] = redis.call('ZCARD', KEYS[3])
else
    out[3] = 0; out[4] = 0
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
    sender_is_new: bool = False
    claim: str | None = None  # a key to set first, unless set already (then nothing counts)
    claim_ttl_ms: int = 0


@dataclass(frozen=True)
class Counters:
    """The windows after recording the movement (it counts itself)."""

    sender_count_1m: int
    sender_count_1h: int
    recipient_senders_24h: int
    recipient_new_senders_24h: int


class Velocity:
    def __init__(self, redis: Redis, prefix: str = "vel") -> None:
        self._observe = redis.register_script(_OBSERVE)
        self._prefix = prefix

    async def observe(self, event: Observation) -> Counters:
        """Record the movement and read every window, in one round trip; with a claim, set its
        key first, or raise KeyInFlight."""
        p = self._prefix
        recipient = event.recipient_id or "-"
        # One Redis, not a cluster: the script reads keys of two owners at once.
        keys = [f"{p}:u:{event.sender_id}:t", f"{p}:r:{recipient}:s", f"{p}:r:{recipient}:n"]
        args: list[int | str] = [
            event.now_ms,
            event.event_id,
            event.sender_id,
            int(event.sender_is_new),
            int(event.recipient_id is not None),
        ]
        if event.claim is not None:
            keys.append(event.claim)
            args.append(event.claim_ttl_ms)
        values = await self._observe(keys=keys, args=args)
        if values[0] == -1:
            raise KeyInFlight(event.claim)
        return Counters(*(int(v) for v in values))
