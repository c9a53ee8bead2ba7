"""What the API benchmarks send and how they count it: each person's app tokens, a P2P transfer
request and a merchant payment as an app sends them, the CPU of each process, and the p99 of a
phase."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from billfold.platform.security import device_key, issue_token, sign_device
from billfold_bench.cpu import processes_cpu, servers_cpu

SLICE_S = 5.0  # the transfer phases' p99 is also reported for each slice of this many seconds
COUNTRY = "US"


@dataclass(frozen=True)
class AppTokens:
    """What each person's app sends: their access token and their phone's device token."""

    access: list[str]
    device: list[str]


def app_tokens(people: list[str], key: str, ttl_s: int) -> AppTokens:
    ids = [uuid.UUID(p) for p in people]
    devices = device_key(key)
    return AppTokens(
        [issue_token(user_id, key, ttl_s) for user_id in ids],
        [sign_device(devices, user_id, f"device-{user_id}") for user_id in ids],
    )


def phase_cpu(server: int | None) -> dict[str, float | None]:
    """CPU seconds so far of the load generator (this process), the server with its workers,
    and the database and cache servers if they run here."""
    return {
        "generator": time.process_time(),
        "server": processes_cpu(tree=server) if server is not None else None,
        **servers_cpu(),
    }


def p99_ms(latencies: list[float], digits: int) -> float:
    """The 99th percentile of latencies in seconds, in milliseconds (sorts the list)."""
    latencies.sort()
    return round(latencies[int(len(latencies) * 0.99)] * 1000, digits)


class Request(NamedTuple):
    """A POST as a load generator sends it."""

    path: str
    headers: dict[str, str]
    body: bytes


# What a generator's client sends next, drawn with its own random numbers.
Send = Callable[[random.Random], Request]


def transfer_request(
    rng: random.Random, people: list[str], tokens: AppTokens
) -> tuple[dict[str, str], bytes]:
    """The headers and body of a P2P transfer between two random people, as their app sends
    it (a fresh Idempotency-Key, their device, their country)."""
    sender = rng.randrange(len(people))
    recipient = (sender + 1 + rng.randrange(len(people) - 1)) % len(people)
    body = orjson.dumps(
        {
            "sender_id": people[sender],
            "recipient": f"bench_{recipient + 1}",
            "amount": random_amount(rng),
        }
    )
    return _app_headers(tokens, sender), body


def random_amount(rng: random.Random) -> str:
    """An amount as a person types it, 1.00 to 500.99."""
    return f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}"


def payment_request(rng: random.Random, payers: int, tokens: AppTokens, qr_payload: str) -> Request:
    """`POST /api/v1/payments` by a random one of the first `payers` people (their tokens), of
    a merchant's static QR code and an amount, as their app sends it."""
    payer = rng.randrange(payers)
    body = orjson.dumps({"qr_payload": qr_payload, "amount": random_amount(rng)})
    return Request("/api/v1/payments", _app_headers(tokens, payer), body)


def _app_headers(tokens: AppTokens, person: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {tokens.access[person]}",
        "Idempotency-Key": uuid.uuid4().hex,
        "Content-Type": "application/json",
        "X-Device-Id": tokens.device[person],
        "X-Client-Country": COUNTRY,
    }
