"""Velocity counters in Redis: the exact sliding windows the hard rules count.

One Lua script records a movement and reads every window in one round trip, atomically, so
two movements at the same moment each see the other at most once, never neither: a sender's
movements in the last minute and hour, and the distinct senders, and new-account senders, to a
recipient in the last day (sorted sets of timestamps). The model's longer windows are computed
from PostgreSQL by the training code (risk.serving), not from counters here; the hour and day
buckets and per-device counters that once fed them cost Redis more than the rest together and
are gone.

The same call can first claim a request's idempotency key as in flight (the transfer path's
mark, see risk.gate.RiskEngine): a request whose key another one holds is neither counted nor
scored, and the transfer path spends one Redis round trip, not two.

Redis is never the source of truth for money: losing these counters makes the risk engine
forget recent activity, nothing more. Every key expires after its window.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from billfold.risk.gate import KeyInFlight

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Many movements in one call, each as if alone and in order. For movement i (from 0):
# KEYS[4i+1..4i+4]: sender times, recipient senders, recipient new senders, the key to claim;
# ARGV[6i+1..6i+6]: now_ms, event id, sender id, sender is new (0/1), has recipient (0/1),
# claim TTL ms (0: no claim; its key is then not touched).
# Returns four numbers per movement: its windows, or -1, 0, 0, 0 when the key to claim is held
# already (nothing counted).
_OBSERVE = """
local out = {}
for i = 0, #KEYS / 4 - 1 do
    local k, a = 4 * i, 6 * i
    local now = tonumber(ARGV[a + 1])
    if ARGV[a + 6] ~= '0'
        and not redis.call('SET', KEYS[k + 4], '1', 'NX', 'PX', ARGV[a + 6]) then
        out[#out + 1] = -1; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
    else
        redis.call('ZADD', KEYS[k + 1], now, ARGV[a + 2])
        redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', now - 3600000)
        redis.call('PEXPIRE', KEYS[k + 1], 3600000)
        out[#out + 1] = redis.call('ZCOUNT', KEYS[k + 1], now - 60000, '+inf')
        out[#out + 1] = redis.call('ZCARD', KEYS[k + 1])
        if ARGV[a + 5] == '1' then
            redis.call('ZADD', KEYS[k + 2], now, ARGV[a + 3])
            redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now - 86400000)
            redis.call('PEXPIRE', KEYS[k + 2], 86400000)
            if ARGV[a + 4] == '1' then
                redis.call('ZADD', KEYS[k + 3], now, ARGV[a + 3])
            end
            redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now - 86400000)
            redis.call('PEXPIRE', KEYS[k + 3], 86400000)
            out[#out + 1] = redis.call('ZCARD', KEYS[k + 2])
            out[#out + 1] = redis.call('ZCARD', KEYS[k + 3])
        else
            out[#out + 1] = 0; out[#out + 1] = 0
        end
    end
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
        (answer,) = await self.observe_many([event])
        if isinstance(answer, KeyInFlight):
            raise answer
        return answer

    async def observe_many(self, events: list[Observation]) -> list[Counters | KeyInFlight]:
        """`observe` for each event, in order, in one round trip (platform.coalesce batches the
        movements of concurrent requests this way)."""
        p = self._prefix
        keys: list[str] = []
        args: list[int | str] = []
        for event in events:
            if event.claim is not None and event.claim_ttl_ms <= 0:
                raise ValueError(f"claim {event.claim!r} needs a TTL")
            recipient = event.recipient_id or "-"
            # One Redis, not a cluster: the script reads keys of many owners at once.
            keys += [
                f"{p}:u:{event.sender_id}:t",
                f"{p}:r:{recipient}:s",
                f"{p}:r:{recipient}:n",
                event.claim or f"{p}:u:{event.sender_id}:t",  # untouched without a claim
            ]
            args += [
                event.now_ms,
                event.event_id,
                event.sender_id,
                int(event.sender_is_new),
                int(event.recipient_id is not None),
                event.claim_ttl_ms if event.claim is not None else 0,
            ]
        values = [int(v) for v in await self._observe(keys=keys, args=args)]
        answers: list[Counters | KeyInFlight] = []
        for event, at in zip(events, range(0, len(values), 4), strict=True):
            if values[at] == -1:
                answers.append(KeyInFlight(event.claim))
            else:
                answers.append(Counters(*values[at : at + 4]))
        return answers
