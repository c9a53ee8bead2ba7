"""The overload phase of `bench api`: transfers offered past the server's capacity, as many
clients would offer them.

The other phases' clients are `clients` keep-alive connections, each waiting for an answer
before it sends again. Past capacity the requests that fall due then wait in the load generator,
and the server never holds more than `clients` of them: the seconds of latency the steady phase
showed at 2,000/s offered were mostly the generator's own backlog. Real clients are many, each
on its own connection, and past capacity their requests wait in the server. Here each transfer
is sent when it falls due (open loop, at an even pace), on an idle connection or a new one, so
that the server meets the whole offered load and must shed it or queue it.

A refused request (503 `overloaded`, or any 503 or 429 problem) is counted, not retried: a
retry would be one more request offered, and the offered rate is what the phase sets. Latency
counts from when a request fell due.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import orjson

from billfold_bench.cpu import per_unit_us
from billfold_bench.http import Connection
from billfold_bench.traffic import SLICE_S, AppTokens, p99_ms, phase_cpu, transfer_request

# Connections the generator may hold open at once; past it a due request waits for one (and
# its latency, counted from when it fell due, shows the wait). Without shedding, the 2x phase
# needs more than this within seconds.
MAX_CONNECTIONS = 2_000
# Statuses that refuse cleanly: nothing done, a problem+json with a code, try again later.
CLEAN_REFUSALS = (429, 503)


async def drive_open_loop(
    port: int,
    people: list[str],
    tokens: AppTokens,
    rate: float,
    seconds: float,
    server: int | None = None,
) -> dict[str, Any]:
    """Transfers at `rate` per second for `seconds`, each sent when due on a connection of its
    own for the time it takes; the figures of `bench api`'s overload phase."""
    rng = random.Random(0)
    idle: list[Connection] = []
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    admitted: list[float] = []
    refused: list[float] = []
    slices: dict[int, list[float]] = {}  # admitted latencies by SLICE_S of the phase
    statuses: dict[str, int] = {}
    codes: dict[str, int] = {}  # of the clean refusals
    opened = 0

    async def send(due: float) -> None:
        nonlocal opened
        headers, body = transfer_request(rng, people, tokens)
        async with slots:
            if idle:
                connection = idle.pop()
            else:
                connection = Connection("127.0.0.1", port)
                opened += 1
            try:
                status, answer = await connection.request(
                    "POST", "/api/v1/transfers", headers, body
                )
            except (OSError, asyncio.IncompleteReadError):
                await connection.close()
                statuses["failed"] = statuses.get("failed", 0) + 1
                return
            idle.append(connection)
        latency = time.perf_counter() - due
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 201:
            admitted.append(latency)
            slices.setdefault(int((due - started) // SLICE_S), []).append(latency)
        elif status in CLEAN_REFUSALS:
            refused.append(latency)
            code = _code(answer)
            codes[code] = codes.get(code, 0) + 1

    cpu_started = phase_cpu(server)
    started = time.perf_counter()
    total = int(rate * seconds)
    sent: set[asyncio.Task[None]] = set()
    for n in range(total):
        due = started + n / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(send(due))
        sent.add(task)
        task.add_done_callback(sent.discard)
    await asyncio.gather(*sent)
    elapsed = time.perf_counter() - started
    cpu = per_unit_us(cpu_started, phase_cpu(server), total)
    for connection in idle:
        await connection.close()
    clean = sum(codes.values()) - codes.get("(none)", 0)
    return {
        "offered_per_s": round(rate, 1),
        "transfers_per_s": round(len(admitted) / elapsed, 1),
        "requests": total,
        "statuses": dict(sorted(statuses.items())),
        "refused": len(refused),
        "refused_codes": dict(sorted(codes.items())),
        # Anything but a transfer made or a clean refusal: other errors, a 503 without a
        # problem's code, a connection that failed.
        "unclean": total - len(admitted) - clean,
        "admitted_latency_ms_p50": _median_ms(admitted),
        "admitted_latency_ms_p99": p99_ms(admitted, 2) if admitted else None,
        "admitted_latency_ms_p99_by_slice": [p99_ms(slices[n], 1) for n in sorted(slices)],
        "refused_latency_ms_p99": p99_ms(refused, 2) if refused else None,
        "connections_opened": opened,
        "cpu_us_per_request": cpu,
    }


def _code(body: bytes) -> str:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "(none)"
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else "(none)"


def _median_ms(latencies: list[float]) -> float | None:
    return round(statistics.median(latencies) * 1000, 2) if latencies else None
